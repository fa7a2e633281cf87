"""The studio's SQLite history. The only module that writes SQL.

WAL mode so readers never wait for a writer, foreign keys on, and every run's
rows (the run, its outputs, its ranks) written in one transaction, so a crash
mid-write leaves either the whole run or none of it.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable, Iterator

import sqlite_utils

from db.migrations import migrate
from runner.paths import default_db_path

JSON_COLUMNS = ("config", "environment", "phases", "plan", "pids", "gpu_counts", "settings", "timeline")
ACTIVE = ("queued", "running")


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


def _decode(row: dict) -> dict:
    for key in JSON_COLUMNS:
        if isinstance(row.get(key), str):
            try:
                row[key] = json.loads(row[key])
            except ValueError:
                pass
    return row


def _json(value: Any) -> str | None:
    return None if value is None else json.dumps(value)


class Store:
    def __init__(self, path: str | Path | None = None):
        self.path = Path(path) if path else default_db_path()
        if str(self.path) != ":memory:":
            self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(str(self.path), check_same_thread=False, isolation_level=None, timeout=30)
        conn.execute("PRAGMA busy_timeout = 30000")
        conn.execute("PRAGMA foreign_keys = ON")
        self.db = sqlite_utils.Database(conn)
        if str(self.path) != ":memory:":
            self.db.enable_wal()
        conn.execute("PRAGMA synchronous = NORMAL")
        self._lock = threading.RLock()
        with self._lock:
            migrate(conn)

    @property
    def conn(self) -> sqlite3.Connection:
        return self.db.conn

    def close(self) -> None:
        self.conn.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self.conn.execute("BEGIN IMMEDIATE")
            try:
                yield self.conn
            except BaseException:
                self.conn.execute("ROLLBACK")
                raise
            self.conn.execute("COMMIT")

    def _rows(self, sql: str, params: Iterable = ()) -> list[dict]:
        with self._lock:
            cursor = self.conn.execute(sql, tuple(params))
            names = [d[0] for d in cursor.description]
            return [_decode(dict(zip(names, row))) for row in cursor.fetchall()]

    # sweeps ---------------------------------------------------------------
    def create_sweep(self, settings: dict, gpu_counts: list[int], repeats: int, *, name: str = "",
                     status: str = "running", external: bool = False, source: str | None = None) -> int:
        with self.transaction() as conn:
            cursor = conn.execute(
                "INSERT INTO sweeps (created_at, name, status, model, mode, batch_size, max_new_tokens, "
                "num_prompts, gpu_counts, repeats, settings, external, source) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (now(), name, status, settings.get("model"), settings.get("mode"), settings.get("batch_size"),
                 settings.get("max_new_tokens"), settings.get("num_prompts"), _json(list(gpu_counts)), repeats,
                 _json(settings), int(external), source),
            )
            return cursor.lastrowid

    def finish_sweep(self, sweep_id: int, status: str) -> None:
        with self.transaction() as conn:
            conn.execute("UPDATE sweeps SET status = ?, finished_at = ? WHERE id = ?", (status, now(), sweep_id))

    def get_sweep(self, sweep_id: int) -> dict | None:
        rows = self._rows("SELECT * FROM sweeps WHERE id = ?", (sweep_id,))
        if not rows:
            return None
        sweep = rows[0]
        sweep["runs"] = self._rows(
            "SELECT * FROM runs WHERE sweep_id = ? ORDER BY num_nodes * num_gpus, repeat_index, id", (sweep_id,)
        )
        return sweep

    def list_sweeps(self, limit: int = 500) -> list[dict]:
        return self._rows(
            "SELECT s.*, COUNT(r.id) AS run_count FROM sweeps s LEFT JOIN runs r ON r.sweep_id = s.id "
            "GROUP BY s.id ORDER BY s.id DESC LIMIT ?", (limit,)
        )

    # runs -----------------------------------------------------------------
    def create_run(self, config: dict, *, sweep_id: int | None = None, repeat_index: int = 0,
                   status: str = "queued") -> int:
        with self.transaction() as conn:
            cursor = conn.execute(
                "INSERT INTO runs (sweep_id, repeat_index, created_at, status, model, mode, batch_size, "
                "max_new_tokens, num_gpus, num_nodes, num_prompts, config, label) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (sweep_id, repeat_index, now(), status, config["model"], config["mode"], config["batch_size"],
                 config["max_new_tokens"], config["num_gpus"], config.get("num_nodes", 1), len(config["prompts"]),
                 json.dumps(config), config.get("label", "")),
            )
            return cursor.lastrowid

    def mark_running(self, run_id: int, pids: list[int] | None = None) -> None:
        with self.transaction() as conn:
            conn.execute(
                "UPDATE runs SET status = 'running', started_at = COALESCE(started_at, ?), pids = ? WHERE id = ?",
                (now(), _json(pids), run_id),
            )

    def set_pids(self, run_id: int, pids: list[int]) -> None:
        with self.transaction() as conn:
            conn.execute("UPDATE runs SET pids = ? WHERE id = ?", (_json(pids), run_id))

    def finish_run(self, run_id: int, result) -> None:
        """Store a RunResult: the run row, its outputs and its ranks, all at once."""
        succeeded = result.status == "succeeded"
        with self.transaction() as conn:
            conn.execute("DELETE FROM outputs WHERE run_id = ?", (run_id,))
            conn.execute("DELETE FROM ranks WHERE run_id = ?", (run_id,))
            conn.execute(
                "UPDATE runs SET status = ?, finished_at = ?, world_size = ?, device = ?, dtype = ?, tokens = ?, "
                "raw_tokens = ?, padding_tokens = ?, seconds = ?, tokens_per_second = ?, imbalance = ?, "
                "environment = ?, phases = ?, plan = ?, error = ?, stderr_tail = ?, exit_code = ?, partial = ? "
                "WHERE id = ?",
                (
                    result.status, now(), result.world_size, result.device, result.dtype,
                    result.tokens if succeeded else None,
                    result.raw_tokens if succeeded else None,
                    result.padding_tokens if succeeded else None,
                    result.seconds if succeeded else None,
                    result.tokens_per_second if succeeded else None,
                    result.imbalance if succeeded else None,
                    _json(result.environment or None), _json(result.phases or None), _json(result.plan),
                    result.error, result.stderr_tail, result.exit_code, int(result.partial), run_id,
                ),
            )
            conn.executemany(
                "INSERT INTO outputs (run_id, prompt_index, rank, prompt, output, tokens, raw_tokens) "
                "VALUES (?,?,?,?,?,?,?)",
                [(run_id, o["prompt_index"], o["rank"], o["prompt"], o["output"], o["tokens"], o.get("raw_tokens"))
                 for o in result.outputs],
            )
            conn.executemany(
                "INSERT INTO ranks (run_id, rank, node, hostname, num_prompts, tokens, raw_tokens, seconds, "
                "peak_memory_bytes, timeline) VALUES (?,?,?,?,?,?,?,?,?,?)",
                [(run_id, r["rank"], r.get("node", 0), r.get("hostname"), r["num_prompts"], r["tokens"],
                  r.get("raw_tokens"), r["seconds"], r.get("peak_memory_bytes"), _json(r.get("timeline")))
                 for r in result.ranks],
            )

    def set_phase(self, run_id: int, name: str, seconds: float) -> None:
        with self.transaction() as conn:
            row = conn.execute("SELECT phases FROM runs WHERE id = ?", (run_id,)).fetchone()
            phases = json.loads(row[0]) if row and row[0] else {}
            phases[name] = seconds
            conn.execute("UPDATE runs SET phases = ? WHERE id = ?", (json.dumps(phases), run_id))

    def mark_stale_interrupted(self) -> list[int]:
        """Runs a previous server left queued or running can never finish now."""
        with self.transaction() as conn:
            ids = [r[0] for r in conn.execute("SELECT id FROM runs WHERE status IN ('queued', 'running')")]
            conn.execute(
                "UPDATE runs SET status = 'interrupted', finished_at = ?, "
                "error = COALESCE(error, 'the studio server stopped before this run finished') "
                "WHERE status IN ('queued', 'running')", (now(),)
            )
            conn.execute("UPDATE sweeps SET status = 'interrupted', finished_at = ? WHERE status = 'running'", (now(),))
            return ids

    def get_run(self, run_id: int) -> dict | None:
        rows = self._rows("SELECT * FROM runs WHERE id = ?", (run_id,))
        if not rows:
            return None
        run = rows[0]
        run["outputs"] = self._rows("SELECT * FROM outputs WHERE run_id = ? ORDER BY prompt_index", (run_id,))
        run["ranks"] = self._rows("SELECT * FROM ranks WHERE run_id = ? ORDER BY rank", (run_id,))
        return run

    def list_runs(self, *, model: str | None = None, mode: str | None = None, batch_size: int | None = None,
                  status: str | None = None, since: str | None = None, until: str | None = None,
                  sweep_id: int | None = None, ids: Iterable[int] | None = None, limit: int = 1000) -> list[dict]:
        where, params = [], []
        for column, value in (("model", model), ("mode", mode), ("batch_size", batch_size), ("status", status),
                              ("sweep_id", sweep_id)):
            if value not in (None, ""):
                where.append(f"{column} = ?")
                params.append(value)
        if since:
            where.append("created_at >= ?")
            params.append(since)
        if until:
            where.append("created_at < ?")
            params.append(until)
        if ids is not None:
            ids = [int(i) for i in ids]
            where.append(f"id IN ({','.join('?' * len(ids)) or 'NULL'})")
            params.extend(ids)
        sql = "SELECT * FROM runs" + (" WHERE " + " AND ".join(where) if where else "")
        sql += " ORDER BY id DESC LIMIT ?"
        return self._rows(sql, [*params, limit])

    def delete_runs(self, run_ids: Iterable[int]) -> int:
        ids = [int(i) for i in run_ids]
        if not ids:
            return 0
        with self.transaction() as conn:
            marks = ",".join("?" * len(ids))
            active = conn.execute(f"SELECT id FROM runs WHERE id IN ({marks}) AND status IN ('queued','running')",
                                  ids).fetchall()
            if active:
                raise ValueError(f"run {active[0][0]} is still {'queued or running'}; stop it before deleting it")
            return conn.execute(f"DELETE FROM runs WHERE id IN ({marks})", ids).rowcount

    def delete_sweep(self, sweep_id: int) -> int:
        runs = [r["id"] for r in self._rows("SELECT id FROM runs WHERE sweep_id = ?", (sweep_id,))]
        count = self.delete_runs(runs)
        with self.transaction() as conn:
            conn.execute("DELETE FROM sweeps WHERE id = ?", (sweep_id,))
        return count

    def distinct(self, column: str) -> list:
        if column not in ("model", "mode", "batch_size", "status", "device"):
            raise ValueError(f"cannot list values of {column}")
        return [r[column] for r in self._rows(f"SELECT DISTINCT {column} FROM runs ORDER BY {column}")]

    def integrity(self) -> str:
        with self._lock:
            return self.conn.execute("PRAGMA integrity_check").fetchone()[0]


def open_store(path: str | Path | None = None) -> Store:
    return Store(path)

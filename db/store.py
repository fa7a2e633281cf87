"""The studio's SQLite history. The only module that writes SQL, and it
computes nothing: what it stores was worked out before (a RunResult carries its
derived figures).

WAL mode so readers never wait for a writer, foreign keys on, and every run's
rows (the run, its outputs, its ranks) written in one transaction, so a crash
mid-write leaves either the whole run or none of it. Rows go in through
sqlite-utils (dicts in, lists and dicts stored as JSON); queries that filter,
join or update many rows at once are plain SQL.
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

from db.migrate import migrate
from runner.metrics import RUN_FIELDS as LATENCY_RUN_FIELDS
from runner.paths import default_db_path

ENERGY_FIELDS = ("energy_joules", "joules_per_token", "joules_per_position", "average_power_watts", "energy_note")
# peak memory, one thing per column (ranks.peak_memory_bytes keeps its older mixed meaning)
RANK_MEMORY_FIELDS = ("device_allocated_peak_bytes", "device_reserved_peak_bytes", "host_rss_peak_bytes")
JSON_COLUMNS = ("config", "environment", "phases", "plan", "pids", "gpu_counts", "settings", "timeline", "owner",
                "roofline", "agreement_detail", "token_ids")


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


def _stored(value: Any) -> Any:
    """A value as a column holds it: dicts and lists as JSON text."""
    return json.dumps(value) if isinstance(value, (dict, list)) else value


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
            return [_decode(row) for row in self.db.query(sql, tuple(params))]

    # sweeps ---------------------------------------------------------------
    def create_sweep(self, settings: dict, gpu_counts: list[int], repeats: int, *, name: str = "",
                     status: str = "running", external: bool = False, source: str | None = None,
                     origin: str | None = None, owner: dict | None = None) -> int:
        with self.transaction():
            return self.db["sweeps"].insert({
                "created_at": now(), "name": name, "status": status, "model": settings.get("model"),
                "mode": settings.get("mode"), "batch_size": settings.get("batch_size"),
                "max_new_tokens": settings.get("max_new_tokens"), "num_prompts": settings.get("num_prompts"),
                "gpu_counts": list(gpu_counts), "repeats": repeats, "settings": settings, "external": int(external),
                "source": source, "origin": origin, "owner": owner,
            }).last_pk

    def finish_sweep(self, sweep_id: int, status: str) -> None:
        with self.transaction() as conn:
            conn.execute("UPDATE sweeps SET status = ?, finished_at = ? WHERE id = ?", (status, now(), sweep_id))

    def record_stop(self, sweep_id: int) -> None:
        """Stored before a Stop is acknowledged, so a server killed just after never resumes it."""
        with self.transaction() as conn:
            conn.execute("UPDATE sweeps SET status = 'cancelled', finished_at = ? WHERE id = ? AND status = 'running'",
                         (now(), sweep_id))
            conn.execute("UPDATE runs SET status = 'cancelled', finished_at = ?, error = 'cancelled before it started' "
                         "WHERE sweep_id = ? AND status = 'queued' AND started_at IS NULL", (now(), sweep_id))

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

    # external (read-only) sweeps: published figures to compare against ----
    def sweep_by_source(self, source: str) -> dict | None:
        rows = self._rows("SELECT * FROM sweeps WHERE source = ? AND external = 1 ORDER BY id LIMIT 1", (source,))
        return rows[0] if rows else None

    def add_external_sweep(self, settings: dict, points: list[dict], *, name: str, source: str,
                           published: str | None = None) -> tuple[int, bool]:
        """Store published figures as a read-only sweep, once per `source`, dated
        `published` (ISO date of the publication) rather than today.

        Each point is {num_gpus, seconds, tokens_per_second} plus optional run
        columns. Returns (sweep id, created now?)."""
        with self.transaction() as conn:
            row = conn.execute("SELECT id FROM sweeps WHERE source = ? AND external = 1", (source,)).fetchone()
            if row:
                return row[0], False
            counts = sorted({int(p["num_gpus"]) for p in points})
            stamp = published or now()
            sweep_id = conn.execute(
                "INSERT INTO sweeps (created_at, finished_at, name, status, model, mode, batch_size, max_new_tokens, "
                "num_prompts, gpu_counts, repeats, settings, external, source) "
                "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,1,?)",
                (stamp, stamp, name, "external", settings.get("model"), settings.get("mode"),
                 settings.get("batch_size"), settings.get("max_new_tokens"), settings.get("num_prompts"),
                 _json(counts), 1, _json(settings), source),
            ).lastrowid
            for p in points:
                config = {**settings, "gpus_per_node": int(p["num_gpus"]), "external": True, "source": source}
                conn.execute(
                    "INSERT INTO runs (sweep_id, repeat_index, created_at, started_at, finished_at, status, model, "
                    "mode, batch_size, max_new_tokens, num_gpus, world_size, device, dtype, num_prompts, tokens, "
                    "seconds, tokens_per_second, config, environment, label) "
                    "VALUES (?,0,?,?,?,'succeeded',?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                    (sweep_id, stamp, stamp, stamp, settings["model"], settings["mode"], settings["batch_size"],
                     settings["max_new_tokens"], int(p["num_gpus"]), int(p["num_gpus"]), settings.get("device"),
                     settings.get("dtype"), settings["num_prompts"], p.get("tokens"), p["seconds"],
                     p["tokens_per_second"], _json(config), _json(p.get("environment")), name),
                )
            return sweep_id, True

    def _rows_by_run(self, table: str, order: str, run_ids: Iterable[int]) -> dict[int, list[dict]]:
        ids = [int(i) for i in run_ids]
        out: dict[int, list[dict]] = {i: [] for i in ids}
        if ids:
            marks = ",".join("?" * len(ids))
            for row in self._rows(f"SELECT * FROM {table} WHERE run_id IN ({marks}) ORDER BY run_id, {order}", ids):
                out[row["run_id"]].append(row)
        return out

    def ranks_for_runs(self, run_ids: Iterable[int]) -> dict[int, list[dict]]:
        """Rank rows (with their timelines) of several runs, keyed by run id."""
        return self._rows_by_run("ranks", "rank", run_ids)

    def outputs_for_runs(self, run_ids: Iterable[int]) -> dict[int, list[dict]]:
        """Output rows (with their per-request latency) of several runs, keyed by run id."""
        return self._rows_by_run("outputs", "prompt_index", run_ids)

    # runs -----------------------------------------------------------------
    def create_run(self, config: dict, *, sweep_id: int | None = None, repeat_index: int = 0,
                   status: str = "queued", dp_size: int | None = None) -> int:
        """`dp_size`: the copies of the model the run holds (RunConfig.dp_size), given by the caller."""
        with self.transaction():
            return self.db["runs"].insert({
                "sweep_id": sweep_id, "repeat_index": repeat_index, "created_at": now(), "status": status,
                "model": config["model"], "mode": config["mode"], "batch_size": config["batch_size"],
                "max_new_tokens": config["max_new_tokens"],
                # the column keeps its first name: GPUs (processes) per node, as RunConfig.gpus_per_node
                "num_gpus": config["gpus_per_node"] if "gpus_per_node" in config else config["num_gpus"],
                "num_nodes": config.get("num_nodes", 1), "num_prompts": len(config["prompts"]), "config": config,
                "prompt_tokens": config.get("prompt_tokens"),
                "tp_size": config.get("tp_size", 1), "dp_size": dp_size,
                "label": config.get("label", ""),
            }).last_pk

    def mark_running(self, run_id: int, pids: list[int] | None = None) -> None:
        with self.transaction() as conn:
            conn.execute(
                "UPDATE runs SET status = 'running', started_at = COALESCE(started_at, ?), pids = ? WHERE id = ?",
                (now(), _json(pids), run_id),
            )

    def set_pids(self, run_id: int, pids: list[int]) -> None:
        with self.transaction() as conn:
            conn.execute("UPDATE runs SET pids = ? WHERE id = ?", (_json(pids), run_id))

    def set_pids_of_unfinished(self, run_ids: Iterable[int], pids: list[int]) -> None:
        """The processes of a shared launch, on each of its runs not ended yet (so a
        restart, or Stop, reaches them whichever run is under way)."""
        ids = [int(i) for i in run_ids]
        with self.transaction() as conn:
            conn.execute(f"UPDATE runs SET pids = ? WHERE id IN ({','.join('?' * len(ids)) or 'NULL'}) "
                         "AND status IN ('queued', 'running')", (_json(pids), *ids))

    # launches -------------------------------------------------------------
    def create_launch(self, sweep_id: int | None, run_ids: Iterable[int], world_size: int,
                      relaunch_of: int | None = None) -> int:
        """A launch shared by `run_ids`, which now name it."""
        ids = [int(i) for i in run_ids]
        with self.transaction() as conn:
            launch_id = self.db["launches"].insert({
                "sweep_id": sweep_id, "created_at": now(), "status": "running", "world_size": world_size,
                "num_runs": len(ids), "relaunch_of": relaunch_of,
            }).last_pk
            conn.execute(f"UPDATE runs SET launch_id = ? WHERE id IN ({','.join('?' * len(ids)) or 'NULL'})",
                         (launch_id, *ids))
            return launch_id

    def finish_launch(self, launch_id: int, status: str, phases: dict | None, error: str | None = None) -> None:
        with self.transaction() as conn:
            conn.execute("UPDATE launches SET status = ?, finished_at = ?, phases = ?, error = ? WHERE id = ?",
                         (status, now(), _json(phases), error, launch_id))

    def get_launch(self, launch_id: int) -> dict | None:
        rows = self._rows("SELECT * FROM launches WHERE id = ?", (launch_id,))
        if not rows:
            return None
        launch = rows[0]
        launch["run_ids"] = [r["id"] for r in self._rows("SELECT id FROM runs WHERE launch_id = ? ORDER BY id",
                                                         (launch_id,))]
        return launch

    def finish_run(self, run_id: int, result) -> None:
        """Store a RunResult: the run row, its outputs and its ranks, all at once."""
        succeeded = result.status == "succeeded"

        def measured(value):  # a run that did not succeed reports no figures, whatever ran
            return value if succeeded else None

        roofline = measured(result.roofline) or {}
        latency = measured(result.latency) or {}
        energy = measured(result.energy) or {}
        with self.transaction() as conn:
            conn.execute("DELETE FROM outputs WHERE run_id = ?", (run_id,))
            conn.execute("DELETE FROM ranks WHERE run_id = ?", (run_id,))
            self.db["runs"].update(run_id, {
                "status": result.status, "finished_at": now(), "world_size": result.world_size,
                "device": result.device, "dtype": result.dtype, "tokens": measured(result.tokens),
                "raw_tokens": measured(result.raw_tokens), "padding_tokens": measured(result.padding_tokens),
                "seconds": measured(result.seconds), "tokens_per_second": measured(result.tokens_per_second),
                "imbalance": measured(result.imbalance), "environment": _json(result.environment or None),
                "phases": _json(result.phases or None), "plan": _json(result.plan), "error": result.error,
                "stderr_tail": result.stderr_tail, "exit_code": result.exit_code, "partial": int(result.partial),
                "bandwidth_gbps": roofline.get("achieved_gbps"), "bandwidth_utilisation": roofline.get("utilisation"),
                "roofline": _json(roofline or None), "comm_fraction": measured(result.comm_fraction),
                "roofline_weight_bytes": roofline.get("weight_bytes_moved"),
                "roofline_kv_bytes": roofline.get("kv_bytes_moved"), "roofline_cache": roofline.get("cache"),
                **{name: latency.get(name) for name in LATENCY_RUN_FIELDS},
                **{name: energy.get(name) for name in ENERGY_FIELDS},
            })
            self.db["outputs"].insert_all(
                {"run_id": run_id, "prompt_index": o["prompt_index"], "rank": o["rank"], "prompt": o["prompt"],
                 "output": o["output"], "tokens": o["tokens"], "raw_tokens": o.get("raw_tokens"),
                 "token_ids": _json(o.get("token_ids")),
                 **{name: o.get(name) for name in ("queue_ms", "ttft_ms", "tpot_ms", "latency_ms")}}
                for o in result.outputs)
            self.db["ranks"].insert_all(
                {"run_id": run_id, "rank": r["rank"], "node": r.get("node", 0), "hostname": r.get("hostname"),
                 "num_prompts": r["num_prompts"], "tokens": r["tokens"], "raw_tokens": r.get("raw_tokens"),
                 "seconds": r["seconds"], "peak_memory_bytes": r.get("peak_memory_bytes"),
                 **{name: r.get(name) for name in RANK_MEMORY_FIELDS},
                 "energy_joules": (r.get("energy") or {}).get("joules"), "timeline": _json(r.get("timeline"))}
                for r in result.ranks)

    def set_agreement(self, run_id: int, agreement: float | None, reference: int | None,
                      detail: dict | None) -> None:
        """The correctness gate's verdict on a run (computed by studio.sweeps.agreement)."""
        with self.transaction():
            self.db["runs"].update(run_id, {"agreement": agreement, "agreement_reference": reference,
                                            "agreement_detail": _json(detail)})

    def set_phase(self, run_id: int, name: str, seconds: float) -> None:
        with self.transaction() as conn:
            row = conn.execute("SELECT phases FROM runs WHERE id = ?", (run_id,)).fetchone()
            phases = json.loads(row[0]) if row and row[0] else {}
            phases[name] = seconds
            conn.execute("UPDATE runs SET phases = ? WHERE id = ?", (json.dumps(phases), run_id))

    def active_runs(self) -> list[dict]:
        """Runs marked queued or running, with their recorded process IDs."""
        return self._rows(
            "SELECT id, sweep_id, status, pids, started_at FROM runs WHERE status IN ('queued', 'running')")

    def unfinished_sweeps(self) -> list[dict]:
        """Sweeps still marked running, with the process that owns them."""
        return self._rows("SELECT id, owner FROM sweeps WHERE status = 'running' AND external = 0")

    def resumable_sweeps(self, exclude: Iterable[int] = ()) -> list[int]:
        """Sweeps a server made and left running with runs that never started:
        those runs touched no hardware, so a restarted server can run them."""
        skip = {int(i) for i in exclude}
        rows = self._rows(
            "SELECT DISTINCT s.id FROM sweeps s JOIN runs r ON r.sweep_id = s.id WHERE s.origin = 'server' "
            "AND s.status = 'running' AND s.external = 0 AND r.status = 'queued' AND r.started_at IS NULL "
            "ORDER BY s.id")
        return [row["id"] for row in rows if row["id"] not in skip]

    def mark_stale_interrupted(self, keep_sweeps: Iterable[int] = (), resume_sweeps: Iterable[int] = ()) -> list[int]:
        """Runs a previous server left queued or running can never finish now.
        `keep_sweeps`: sweeps another live process (a CLI, another server) is still running.
        `resume_sweeps`: sweeps whose queued runs will be resumed; only their running runs end here."""
        keep = [int(i) for i in keep_sweeps]
        resume = [int(i) for i in resume_sweeps]
        spared = f" AND COALESCE(sweep_id, -1) NOT IN ({','.join('?' * len(keep))})" if keep else ""
        if resume:
            spared += f" AND NOT (status = 'queued' AND COALESCE(sweep_id, -1) IN ({','.join('?' * len(resume))}))"
        spared_sweeps = f" AND id NOT IN ({','.join('?' * len(keep + resume))})" if keep + resume else ""
        with self.transaction() as conn:
            ids = [r[0] for r in conn.execute(
                "SELECT id FROM runs WHERE status IN ('queued', 'running')" + spared, (*keep, *resume))]
            conn.execute(
                "UPDATE runs SET status = 'interrupted', finished_at = ?, "
                "error = COALESCE(error, 'the studio server stopped before this run finished') "
                "WHERE status IN ('queued', 'running')" + spared, (now(), *keep, *resume)
            )
            conn.execute("UPDATE sweeps SET status = 'interrupted', finished_at = ? WHERE status = 'running'"
                         + spared_sweeps, (now(), *keep, *resume))
            # the shared launches those runs were in ended with them
            marks = ",".join("?" * len(ids)) or "NULL"
            conn.execute("UPDATE launches SET status = 'interrupted', finished_at = ? WHERE status = 'running' AND "
                         f"id IN (SELECT launch_id FROM runs WHERE id IN ({marks}))", (now(), *ids))
            return ids

    def get_run(self, run_id: int) -> dict | None:
        rows = self._rows("SELECT * FROM runs WHERE id = ?", (run_id,))
        if not rows:
            return None
        run = rows[0]
        run["outputs"] = self._rows("SELECT * FROM outputs WHERE run_id = ? ORDER BY prompt_index", (run_id,))
        run["ranks"] = self._rows("SELECT * FROM ranks WHERE run_id = ? ORDER BY rank", (run_id,))
        run["launch"] = self.get_launch(run["launch_id"]) if run.get("launch_id") else None
        return run

    def list_runs(self, *, model: str | None = None, mode: str | None = None, batch_size: int | None = None,
                  status: str | None = None, since: str | None = None, until: str | None = None,
                  sweep_id: int | None = None, ids: Iterable[int] | None = None, limit: int = 1000,
                  tool: str | None = None, scenario: str | None = None) -> list[dict]:
        where, params = [], []
        for column, value in (("model", model), ("mode", mode), ("batch_size", batch_size), ("status", status),
                              ("sweep_id", sweep_id), ("tool", tool), ("scenario", scenario)):
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
            external = conn.execute(
                f"SELECT r.id FROM runs r JOIN sweeps s ON s.id = r.sweep_id WHERE r.id IN ({marks}) "
                "AND s.external = 1", ids).fetchall()
            if external:
                raise ValueError(f"run {external[0][0]} is a published reference figure (read-only); "
                                 "leave it out of the selection")
            return conn.execute(f"DELETE FROM runs WHERE id IN ({marks})", ids).rowcount

    def delete_sweep(self, sweep_id: int) -> int:
        if self._rows("SELECT id FROM sweeps WHERE id = ? AND external = 1", (sweep_id,)):
            raise ValueError(f"sweep {sweep_id} holds published reference figures and is read-only; "
                             "it cannot be deleted")
        runs = [r["id"] for r in self._rows("SELECT id FROM runs WHERE sweep_id = ?", (sweep_id,))]
        count = self.delete_runs(runs)
        with self.transaction() as conn:
            conn.execute("DELETE FROM launches WHERE sweep_id = ?", (sweep_id,))
            conn.execute("DELETE FROM sweeps WHERE id = ?", (sweep_id,))
        return count

    def distinct(self, column: str) -> list:
        if column not in ("model", "mode", "batch_size", "status", "device", "tool", "scenario"):
            raise ValueError(f"cannot list values of {column}")
        return [r[column] for r in self._rows(f"SELECT DISTINCT {column} FROM runs ORDER BY {column}")]

    # export / import (studio export, studio import) ---------------------
    def export_rows(self, *, run_ids: Iterable[int] | None = None,
                    sweep_id: int | None = None) -> tuple[list[dict], list[dict]]:
        """Finished runs (all, these ids, or one sweep's) with their outputs and ranks,
        and the sweeps they belong to; queued or running runs are left out."""
        where, params = ["status NOT IN ('queued', 'running')"], []
        if run_ids is not None:
            ids = [int(i) for i in run_ids]
            where.append(f"id IN ({','.join('?' * len(ids)) or 'NULL'})")
            params.extend(ids)
        if sweep_id is not None:
            where.append("sweep_id = ?")
            params.append(int(sweep_id))
        runs = self._rows(f"SELECT * FROM runs WHERE {' AND '.join(where)} ORDER BY id", params)
        for run in runs:
            run["outputs"] = self._rows("SELECT * FROM outputs WHERE run_id = ? ORDER BY prompt_index", (run["id"],))
            run["ranks"] = self._rows("SELECT * FROM ranks WHERE run_id = ? ORDER BY rank", (run["id"],))
        sweep_ids = sorted({r["sweep_id"] for r in runs if r["sweep_id"] is not None})
        sweeps = self._rows(
            f"SELECT * FROM sweeps WHERE id IN ({','.join('?' * len(sweep_ids)) or 'NULL'}) ORDER BY id", sweep_ids
        )
        return sweeps, runs

    def _columns(self, table: str) -> list[str]:
        return list(self.db[table].columns_dict)

    def import_rows(self, sweeps: list[dict], runs: list[dict]) -> dict:
        """Insert exported sweeps and runs under new ids, in one transaction.

        Nothing stored is ever changed: a run already here (same created_at and
        config) is skipped, and a sweep already here (same created_at, name and
        settings) receives only the runs it lacks. Columns this database does not
        have are dropped; rows are assumed validated (studio.exchange.runs_file).
        """
        report = {"sweeps_added": 0, "runs_added": 0, "runs_skipped": 0, "run_ids": []}
        with self.transaction() as conn:
            # origin and owner name the program that ran a sweep where it came from; here nothing may resume it
            sweep_columns = [c for c in self._columns("sweeps") if c not in ("id", "origin", "owner")]
            run_columns = [c for c in self._columns("runs") if c not in ("id", "sweep_id", "pids", "launch_id")]
            output_columns = [c for c in self._columns("outputs") if c not in ("id", "run_id")]
            rank_columns = [c for c in self._columns("ranks") if c not in ("id", "run_id")]
            sweep_map: dict[int, int] = {}
            for sweep in sweeps:
                row = conn.execute(
                    "SELECT id FROM sweeps WHERE created_at = ? AND COALESCE(name, '') = ? AND settings IS ?",
                    (sweep["created_at"], sweep.get("name") or "", _stored(sweep.get("settings"))),
                ).fetchone()
                if row:
                    sweep_map[sweep["id"]] = row[0]
                    continue
                record = {c: _stored(sweep[c]) for c in sweep_columns if c in sweep}
                sweep_map[sweep["id"]] = self.db["sweeps"].insert(record).last_pk
                report["sweeps_added"] += 1
            for run in runs:
                config = _stored(run["config"])
                same = conn.execute("SELECT id FROM runs WHERE created_at = ? AND config = ?",
                                    (run["created_at"], config)).fetchone()
                if same:
                    report["runs_skipped"] += 1
                    continue
                sweep_id = sweep_map.get(run.get("sweep_id")) if run.get("sweep_id") is not None else None
                record = {"sweep_id": sweep_id, **{c: _stored(run[c]) for c in run_columns if c in run}}
                run_id = self.db["runs"].insert(record).last_pk
                for table, table_columns in (("outputs", output_columns), ("ranks", rank_columns)):
                    self.db[table].insert_all(
                        {"run_id": run_id, **{c: _stored(item[c]) for c in table_columns if c in item}}
                        for item in run.get(table) or [])
                report["runs_added"] += 1
                report["run_ids"].append(run_id)
        return report

    def integrity(self) -> str:
        with self._lock:
            return self.conn.execute("PRAGMA integrity_check").fetchone()[0]


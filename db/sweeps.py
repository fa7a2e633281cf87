"""Sweeps in the store: made, finished, stopped, read back with their runs, and the
published reference figures stored once each as read-only sweeps."""

from __future__ import annotations

import json
from typing import Iterable

from db.connection import StoreBase, _json, now


class SweepStore(StoreBase):
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

    def set_sweep_prices(self, sweep_id: int, prices: dict | None) -> None:
        """Keep the prices per GPU-hour (studio.analysis.cost) with a sweep, as given."""
        with self.transaction() as conn:
            conn.execute("UPDATE sweeps SET prices = ? WHERE id = ?",
                         (None if prices is None else json.dumps(prices), sweep_id))

    def sweep_prices(self, sweep_id: int) -> dict | None:
        row = self.db.execute("SELECT prices FROM sweeps WHERE id = ?", [sweep_id]).fetchone()
        return json.loads(row[0]) if row and row[0] else None

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
        sweep["runs"] = self._runs(
            "SELECT * FROM runs WHERE sweep_id = ? ORDER BY num_nodes * num_gpus, repeat_index, id", (sweep_id,)
        )
        return sweep

    def list_sweeps(self, limit: int = 500) -> list[dict]:
        return self._rows(
            "SELECT s.*, COUNT(r.id) AS run_count FROM sweeps s LEFT JOIN runs r ON r.sweep_id = s.id "
            "GROUP BY s.id ORDER BY s.id DESC LIMIT ?", (limit,)
        )

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

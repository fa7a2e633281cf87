"""Runs read from the store, each a RunRow (db.rows): one run with its outputs,
ranks and launch, runs filtered, the outputs and ranks of several runs at once."""

from __future__ import annotations

from typing import Iterable

from db.connection import StoreBase
from db.rows import RunRow


class RunReads(StoreBase):
    def get_run(self, run_id: int) -> RunRow | None:
        rows = self._runs("SELECT * FROM runs WHERE id = ?", (run_id,))
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
                  tool: str | None = None, scenario: str | None = None) -> list[RunRow]:
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
        return self._runs(sql, [*params, limit])

    def active_runs(self) -> list[dict]:
        """Runs marked queued or running, with their recorded process IDs."""
        return self._rows(
            "SELECT id, sweep_id, status, pids, started_at FROM runs WHERE status IN ('queued', 'running')")

    def get_launch(self, launch_id: int) -> dict | None:
        rows = self._rows("SELECT * FROM launches WHERE id = ?", (launch_id,))
        if not rows:
            return None
        launch = rows[0]
        launch["run_ids"] = [r["id"] for r in self._rows("SELECT id FROM runs WHERE launch_id = ? ORDER BY id",
                                                         (launch_id,))]
        return launch

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

    def distinct(self, column: str) -> list:
        if column not in ("model", "mode", "batch_size", "status", "device", "tool", "scenario"):
            raise ValueError(f"cannot list values of {column}")
        return [r[column] for r in self._rows(f"SELECT DISTINCT {column} FROM runs ORDER BY {column}")]

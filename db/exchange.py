"""Runs moved between studios (`studio export`, `studio import`): the rows as the
database holds them out, and rows from another database in under new ids,
never changing one stored here."""

from __future__ import annotations

from typing import Iterable

from db.connection import StoreBase, _stored


class Exchange(StoreBase):
    def export_rows(self, *, run_ids: Iterable[int] | None = None,
                    sweep_id: int | None = None) -> tuple[list[dict], list[dict]]:
        """Finished runs (all, these ids, or one sweep's) with their outputs and ranks,
        and the sweeps they belong to; queued or running runs are left out. Plain rows,
        not RunRows: the file carries what is stored (a NULL stays NULL), so the database
        that imports it stores the same and works the layout out when it reads."""
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

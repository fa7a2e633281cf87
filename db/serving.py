"""Runs of the server scenario (issue 26): one run per load of a server cell, with
its per-request timings as outputs, written in one transaction per cell so a cell
is stored whole or not at all. The rows arrive worked out (studio.exchange.serving);
like db.store, this module computes nothing."""

from __future__ import annotations

from db.connection import _stored, now
from db.store import Store

MODE = "server"


def add_server_runs(store: Store, sweep_id: int | None, runs: list[dict]) -> list[int]:
    """Insert the runs (run columns, each with "outputs": per-request rows); their ids."""
    ids = []
    with store.transaction():
        stamp = now()
        for run in runs:
            columns = {k: _stored(v) for k, v in run.items() if k != "outputs"}
            run_id = store.db["runs"].insert({"created_at": stamp, "finished_at": stamp, **columns,
                                              "mode": MODE, "sweep_id": sweep_id}).last_pk
            store.db["outputs"].insert_all({"run_id": run_id, **{k: _stored(v) for k, v in o.items()}}
                                           for o in run.get("outputs") or [])
            ids.append(run_id)
    return ids


def server_runs(store: Store, sweep_id: int) -> list[dict]:
    """A sweep's server runs in the order they ran."""
    return store._rows("SELECT * FROM runs WHERE sweep_id = ? AND mode = ? ORDER BY id", (sweep_id, MODE))

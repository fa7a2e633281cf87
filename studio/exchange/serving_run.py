"""Running a server sweep (issue 26): each cell of a `ServerPlan` through
`run_server_cell` (runner.host.serving), its loads counted (studio.exchange.serving)
and stored as runs of one sweep (db.serving), then the curves, knees and the
highest rate within the SLO (studio.analysis.serving)."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Callable

from db.serving import add_server_runs, server_runs
from db.store import Store
from runner.host.hardware_lock import HardwareLock, describe_holder
from runner.processes import owner_env
from studio.analysis.serving import Curve, curves, sentence
from studio.exchange.serving import run_rows
from studio.sweeps.server_settings import ServerPlan


@dataclass
class ServerOutcome:
    sweep_id: int
    status: str  # succeeded | failed | cancelled
    run_ids: list[int] = field(default_factory=list)
    curves: list[Curve] = field(default_factory=list)
    sentence: str = ""
    errors: list[str] = field(default_factory=list)


def run_server_sweep(plan: ServerPlan, store: Store, *, origin: str = "cli", sweep_id: int | None = None,
                     on_progress: Callable[[dict], None] | None = None, stop: threading.Event | None = None,
                     run_cell: Callable | None = None, program: str = "cli") -> ServerOutcome:
    """Run every cell in turn; a failed cell is stored as failed and the next one still runs,
    a stop ends the load in flight and runs no further cell. `on_progress` gets the cell's
    progress dicts with `cell` (its index) and `gpus`, `tp_size`, `replicas` added.
    `sweep_id`: the sweep's row, where the caller made it when the sweep was queued."""
    if run_cell is None:  # imported here: the page's process imports this module without the runner's serving code
        from runner.host.serving.cell import run_server_cell as run_cell
    stop = stop or threading.Event()
    if sweep_id is None:
        sweep_id = store.create_sweep(plan.settings, plan.gpu_counts, 1, name=plan.name, origin=origin,
                                      owner=owner_env())
    outcome = ServerOutcome(sweep_id, "succeeded")
    for index, spec in enumerate(plan.cells):
        if stop.is_set():
            outcome.status = "cancelled"
            break
        where = {"cell": index, "cells": len(plan.cells), "gpus": spec.gpus, "tp_size": spec.tp_size,
                 "replicas": spec.replicas}

        def progress(event: dict, where=where) -> None:
            if on_progress:
                on_progress({**event, **where})

        # a server launched here holds the machine as an offline run does: two jobs side by side skew both
        lock = HardwareLock() if spec.url is None else None
        if lock is not None and not lock.acquire(
                {"program": program, "sweep_id": sweep_id}, cancel=stop,
                on_wait=lambda holder, progress=progress, lock=lock: progress(
                    {"phase": "waiting", "holder": describe_holder(holder), "position": lock.position,
                     "rate": None, "done": 0, "total": 0})):
            outcome.status = "cancelled"
            break
        try:
            cell = run_cell(spec, on_progress=progress, stop=stop)
        finally:
            if lock is not None:
                lock.release()
        outcome.run_ids += add_server_runs(store, sweep_id, run_rows(
            cell, model=plan.model, max_new_tokens=plan.max_new_tokens, slo=plan.slo, label=plan.name))
        if cell.get("status") == "cancelled":
            outcome.status = "cancelled"
            break
        if cell.get("status") != "succeeded":
            outcome.status = "failed"
            outcome.errors.append(f"{spec.gpus} GPU(s), tp {spec.tp_size}: {cell.get('error')}")
    store.finish_sweep(sweep_id, outcome.status)
    outcome.curves = curves(server_runs(store, sweep_id), plan.slo)
    outcome.sentence = sentence(outcome.curves, plan.slo)
    return outcome

"""Running a sweep's plan (`studio.sweeps.plan`): its runs one after another or
in shared launches, each stored as it ends. Shared by the CLI and the web
supervisor; torch-free."""

from __future__ import annotations

import os
import socket
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable

from db.store import Store
from runner.config import ConfigError
from runner.host.hardware_lock import HardwareLock, describe_holder
from runner.host.launch_groups import group_launches
from runner.host.launcher import LaunchHooks, launch, launch_many
from runner.host.validate import Prepared
from runner.paths import runs_dir
from runner.processes import owner_env
from runner.result import RunResult
from studio.sweeps.agreement import record_agreement
from studio.sweeps.plan import SweepPlan, auto_plan

EventCallback = Callable[[dict], None]


def sweep_status(statuses: Iterable[str]) -> str:
    """A sweep's status from its runs': a Stop first, then the worst of the rest."""
    statuses = set(statuses)
    return next((s for s in ("cancelled", "failed", "interrupted") if s in statuses), "succeeded")


@dataclass
class SweepOutcome:
    sweep_id: int
    run_ids: list[int]
    results: list[RunResult]
    ended_before: tuple[str, ...] = ()

    @property
    def status(self) -> str:
        return sweep_status([*self.ended_before, *(r.status for r in self.results)])


def run_sweep(
    plan: SweepPlan,
    store: Store,
    *,
    on_event: EventCallback | None = None,
    cancel: threading.Event | None = None,
    sweep_id: int | None = None,
    run_ids: list[int] | None = None,
    submitted_at: float | None = None,
    program: str = "process",
) -> SweepOutcome:
    """Run the plan's runs one after another, storing each as it ends.

    `sweep_id` and `run_ids` let a caller (the web supervisor) create the rows up
    front as `queued`; otherwise they are created here.
    """
    emit = on_event or (lambda event: None)
    if sweep_id is None:
        sweep_id, run_ids = create_rows(plan, store)
    order = plan.order
    results: dict[int, RunResult] = {}
    for group in group_launches([plan.prepared[c].config for c, _ in order], plan.launch_mode):
        if plan.launch_mode == "per-run" or len(group) == 1:  # a launch of one run stores as it always did
            position = group[0]
            results[position] = _run_alone(plan, store, position, run_ids[position], sweep_id, emit, cancel,
                                           submitted_at, program)
        else:
            results.update(run_shared(plan, store, group, run_ids, sweep_id, emit, cancel,
                                      submitted_at if not results else None, program))
    results = [results[i] for i in range(len(order))]
    # launches need not end in run order: a run whose reference had not ended yet is compared now
    runs = (store.get_sweep(sweep_id) or {"runs": []})["runs"]
    for run in runs:
        if run["status"] == "succeeded" and run.get("agreement") is None:
            record_agreement(store, run["id"], runs)
    outcome = SweepOutcome(sweep_id=sweep_id, run_ids=list(run_ids), results=results, ended_before=plan.ended_before)
    store.finish_sweep(sweep_id, outcome.status)
    return outcome


def _run_alone(plan: SweepPlan, store: Store, position: int, run_id: int, sweep_id: int, emit: EventCallback,
               cancel: threading.Event | None, submitted_at: float | None, program: str) -> RunResult:
    """One run in a launch of its own (`--launch per-run`, and multi-node runs)."""
    count_index, repeat = plan.order[position]
    prepared = plan.prepared[count_index]
    if cancel is not None and cancel.is_set():
        return _never_started(store, [(run_id, prepared)])[0]
    queued = (time.time() - submitted_at) if (submitted_at and position == 0) else 0.0
    emit(_run_start(plan, position, run_id, sweep_id))
    result = run_one(prepared, store, run_id, on_event=emit, cancel=cancel, queued_seconds=queued, program=program)
    emit(_run_end(prepared, run_id, sweep_id, result))
    return result


def _run_start(plan: SweepPlan, position: int, run_id: int, sweep_id: int) -> dict:
    count_index, repeat = plan.order[position]
    config = plan.prepared[count_index].config
    return {"event": "run-start", "run_id": run_id, "sweep_id": sweep_id, "num_gpus": config.gpus_per_node,
            "repeat": repeat, "position": position, "of": len(plan.order), "num_prompts": len(config.prompts)}


def _run_end(prepared: Prepared, run_id: int, sweep_id: int, result: RunResult) -> dict:
    return {"event": "run-end", "run_id": run_id, "sweep_id": sweep_id, "status": result.status,
            "num_gpus": prepared.config.gpus_per_node, "tokens_per_second": result.tokens_per_second,
            "error": result.error}


def run_shared(plan: SweepPlan, store: Store, positions: list[int], run_ids: list[int], sweep_id: int,
               emit: EventCallback, cancel: threading.Event | None, submitted_at: float | None,
               program: str) -> dict[int, RunResult]:
    """The runs at `positions` of the sweep's order in one shared launch (and, if it
    ends early, one relaunch of those left), once this machine's hardware is free.
    Each run is stored as it ends, with its own phases; the launch's own phases
    (queue, launch, imports, load) are stored once, on its `launches` row."""
    cells = [plan.prepared[plan.order[p][0]] for p in positions]
    ids = [run_ids[p] for p in positions]
    results: dict[int, RunResult] = {}
    if cancel is not None and cancel.is_set():
        return dict(zip(positions, _never_started(store, list(zip(ids, cells)))))
    queued = (time.time() - submitted_at) if submitted_at else 0.0
    emit(_run_start(plan, positions[0], ids[0], sweep_id))  # the launch starts for its first run
    lock = HardwareLock()
    waiting_since = time.time()
    holds = lock.acquire(
        {"program": program, "run_id": ids[0]}, cancel=cancel,
        on_wait=lambda holder: emit({"event": "waiting", "run_id": ids[0], "holder": describe_holder(holder),
                                     "position": lock.position}))
    if not holds:
        return dict(zip(positions, _never_started(store, list(zip(ids, cells)))))
    queued += time.time() - waiting_since
    current = [0]  # the cell under way: launch-wide events (load, logs) are shown on its run
    pids_now: list[int] = []
    launches: list[int] = []
    ended: set[int] = set()
    started: set[int] = {0}

    def on_launch_start(indices: list[int], world: int) -> int:
        launch_id = store.create_launch(sweep_id, [ids[i] for i in indices], world,
                                        relaunch_of=launches[-1] if launches else None)
        launches.append(launch_id)
        current[0] = indices[0]
        store.mark_running(ids[indices[0]], pids_now)
        return launch_id

    def on_launch_end(launch_id: int, info: dict) -> None:
        phases = {**({"queue": queued} if launch_id == launches[0] else {}), **info["phases"]}
        store.finish_launch(launch_id, info["status"], phases, info.get("error"))
        ended.add(launch_id)

    def on_cell_start(index: int, launch_id: int) -> None:
        store.mark_running(ids[index], pids_now)

    def on_cell_end(index: int, result: RunResult) -> None:
        results[positions[index]] = result
        _store_ended(store, ids[index], result)
        emit(_run_end(cells[index], ids[index], sweep_id, result))

    def route(event: dict) -> None:  # on the launcher's reader thread, in the order the worker said it
        index = event.get("cell", current[0])
        if event["event"] == "cell-start" and index not in started:
            current[0] = index
            started.add(index)
            # stored as started before its progress is shown: the launcher's own hook comes a poll later,
            # and a server killed in between would resume a run whose progress a page had already seen
            store.mark_running(ids[index], pids_now)
            emit(_run_start(plan, positions[index], ids[index], sweep_id))
        emit({**event, "run_id": ids[index]})

    def on_pids(pids: list[int]) -> None:
        pids_now[:] = pids
        store.set_pids_of_unfinished(ids, pids)

    try:
        out = launch_many(cells, runs_dir() / f"launch-{sweep_id}-{ids[0]}", plans=[auto_plan(p) for p in cells],
                          on_event=route, cancel=cancel, on_pids=on_pids,
                          hooks=LaunchHooks(on_launch_start=on_launch_start, on_launch_end=on_launch_end,
                                            on_cell_start=on_cell_start, on_cell_end=on_cell_end))
    except BaseException:  # Ctrl+C in the CLI: launch_many has ended the processes
        for launch_id in set(launches) - ended:
            store.finish_launch(launch_id, "cancelled", None, "stopped with Ctrl+C")
        raise
    finally:
        lock.release()
    for index, result in enumerate(out):
        if positions[index] not in results:  # every run is stored; this one was not yet
            on_cell_end(index, result)
    return results


def create_rows(plan: SweepPlan, store: Store, origin: str | None = None) -> tuple[int, list[int]]:
    if plan.base.node_rank > 0:
        # only node 0 ends up with a multi-node run's figures; rows made here would never finish
        raise ConfigError("node_rank", f"node {plan.base.node_rank} stores nothing: node 0 stores multi-node runs "
                          "(this node's part is run by `studio run` with --node-rank)")
    settings = plan.settings()
    sweep_id = store.create_sweep(settings, plan.gpu_counts, plan.repeats, name=plan.name, origin=origin,
                                  owner=owner_env())
    run_ids = [
        store.create_run(plan.prepared[c].config.to_dict(), sweep_id=sweep_id, repeat_index=r,
                         dp_size=plan.prepared[c].config.dp_size)
        for c, r in plan.order
    ]
    return sweep_id, run_ids


def run_one(
    prepared: Prepared,
    store: Store,
    run_id: int,
    *,
    on_event: EventCallback | None = None,
    cancel: threading.Event | None = None,
    queued_seconds: float = 0.0,
    run_dir: Path | None = None,
    program: str = "process",
) -> RunResult:
    """Launch one run, once this machine's hardware is free, and store what came
    of it, success or not."""
    emit = on_event or (lambda event: None)
    # node 0 holds the machine for a multi-node run; the other nodes lend it their processes
    lock = HardwareLock() if prepared.config.node_rank == 0 else None
    if lock is not None:
        waiting_since = time.time()
        holds = lock.acquire(
            {"program": program, "run_id": run_id}, cancel=cancel,
            on_wait=lambda holder: emit({"event": "waiting", "run_id": run_id, "holder": describe_holder(holder),
                                         "position": lock.position}))
        if not holds:
            return _never_started(store, [(run_id, prepared)])[0]
        queued_seconds += time.time() - waiting_since
    try:
        store.mark_running(run_id)
        result = launch(
            prepared,
            run_dir or runs_dir() / f"run-{run_id}",
            on_event=lambda event: emit({**event, "run_id": run_id}),
            cancel=cancel,
            plan=auto_plan(prepared),
            on_pids=lambda pids: store.set_pids(run_id, pids),
        )
    finally:
        if lock is not None:
            lock.release()
    result.phases = {"queue": queued_seconds, **(result.phases or {})}
    _store_ended(store, run_id, result)
    return result


def _store_ended(store: Store, run_id: int, result: RunResult) -> None:
    """A run that ran, stored with the time storing it took, then checked against
    its sweep's reference output (`studio.sweeps.agreement`)."""
    started = time.perf_counter()
    store.finish_run(run_id, result)
    store.set_phase(run_id, "store", time.perf_counter() - started)
    record_agreement(store, run_id)


def _not_started(prepared: Prepared) -> RunResult:
    return RunResult.failure(prepared.config.to_dict(), "cancelled", "cancelled before it started")


def _never_started(store: Store, runs: list[tuple[int, Prepared]]) -> list[RunResult]:
    """Runs a Stop reached before their launch: stored as cancelled, nothing measured."""
    results = []
    for run_id, prepared in runs:
        results.append(_not_started(prepared))
        store.finish_run(run_id, results[-1])
    return results


def run_node_part(plan: SweepPlan, *, on_event: EventCallback | None = None,
                  cancel: threading.Event | None = None) -> list[RunResult]:
    """A non-main node's share of a multi-node sweep: the same runs in the same order
    as node 0's `run_sweep`, storing nothing (node 0 gathers and stores every run).

    Returns one result per run: a receipt with no figures when this node's processes
    finished, a failure otherwise.
    """
    emit = on_event or (lambda event: None)
    node_rank = plan.base.node_rank
    if plan.base.num_nodes < 2 or node_rank == 0:
        raise ConfigError("node_rank", "run_node_part is for nodes 1.. of a multi-node run; node 0 runs run_sweep")
    # Nodes on one machine or a shared home folder must not share a run folder.
    stem = f"node{node_rank}-{socket.gethostname()}-{os.getpid()}-{int(time.time())}"
    results: list[RunResult] = []
    for position, (count_index, repeat) in enumerate(plan.order):
        prepared = plan.prepared[count_index]
        if cancel is not None and cancel.is_set():
            results.append(_not_started(prepared))
            continue
        emit({"event": "run-start", "run_id": f"node {node_rank}", "num_gpus": prepared.config.gpus_per_node,
              "repeat": repeat, "position": position, "of": len(plan.order),
              "num_prompts": len(prepared.config.prompts)})
        result = launch(prepared, runs_dir() / f"{stem}-{position}", on_event=emit, cancel=cancel,
                        plan=auto_plan(prepared))
        results.append(result)
        emit({"event": "run-end", "run_id": f"node {node_rank}", "status": result.status,
              "num_gpus": prepared.config.gpus_per_node, "tokens_per_second": None, "error": result.error})
    return results

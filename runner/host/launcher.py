"""Runs a prepared run as an `accelerate launch` process.

The argv, environment, accelerate config and job file come from
`runner.host.launch_command` (pure); what the launch left becomes RunResults in
`runner.host.cell_results`, and why it failed in `runner.host.failures`. This is
the thin part between: `launch` writes the job file, starts the process in its
own session, streams events and returns a RunResult, whatever happened:
succeeded, or failed/cancelled/interrupted with the error, the stderr tail and the
outputs finished before it stopped.

`launch_many` runs several runs of a sweep in one launch of the largest run's
world (`runner.host.launch_groups`): one RunResult per run, each as it ends, a run
that fails alone inside the live launch, and one relaunch of the runs a launch
that ended early had not reached. `launch` is a launch of one run.
"""

from __future__ import annotations

import json
import socket
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from runner.host import cell_results
from runner.host.failures import explain_failure, rendezvous_hint
from runner.host.launch_command import build_job, build_launch_command, build_launch_job
from runner.host.launch_streams import Streams
from runner.host.validate import Prepared
from runner.processes import kill_tree, owner_env
from runner.result import RunResult

# A rank seen gone this long without a `done` event died (its last events had time to arrive).
RANK_DEATH_CONFIRM_S = 1.0

EventCallback = Callable[[dict], None]


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def launch(
    prepared: Prepared,
    run_dir: Path,
    *,
    on_event: EventCallback | None = None,
    cancel: threading.Event | None = None,
    timeout: float | None = None,
    plan: dict | None = None,
    on_pids: Callable[[list[int]], None] | None = None,
) -> RunResult:
    """One run in a launch of its own: its result carries the launch's phases
    (launch, imports, load) and its ranks' imports and load spans, as it always did."""
    outcome = _launch_once([prepared], [plan], list(range(1)), Path(run_dir), on_event=on_event, cancel=cancel,
                           timeout=timeout, on_pids=on_pids, single=True)
    result = outcome.results[0]
    if result.status == "succeeded" and prepared.config.node_rank == 0:
        spans = cell_results.launch_spans(outcome.events)
        for rank in result.ranks:
            rank["timeline"] = spans.get(int(rank["rank"]), []) + rank.get("timeline", [])
    if prepared.config.node_rank == 0 or result.status != "succeeded":
        own = {k: v for k, v in (result.phases or {}).items() if k != "total"}
        result.phases = {**{k: v for k, v in outcome.phases.items() if k != "total"}, **own,
                         "total": outcome.phases["total"]}
    return result


@dataclass
class LaunchHooks:
    """What a caller hears of a shared launch, run by run (indices into its cells)."""

    on_launch_start: Callable[[list[int], int], object] | None = None  # (cells, world size) -> launch token
    on_launch_end: Callable[[object, dict], None] | None = None  # (token, {phases, status, error, ...})
    on_cell_start: Callable[[int, object], None] | None = None  # (cell, launch token)
    on_cell_end: Callable[[int, RunResult], None] | None = None


def launch_many(
    cells: list[Prepared],
    run_dir: Path,
    *,
    plans: list[dict | None] | None = None,
    on_event: EventCallback | None = None,
    cancel: threading.Event | None = None,
    on_pids: Callable[[list[int]], None] | None = None,
    hooks: LaunchHooks | None = None,
) -> list[RunResult]:
    """Several runs in one `accelerate launch` of the largest run's world
    (`runner.host.launch_groups`): loaded once, run in order, one RunResult each.

    A run that fails inside the live launch fails alone. A launch that ends under
    its runs (a rank died, a rank's own error, a timeout) fails the run it was in;
    the runs after it are relaunched once, and if that launch ends early too they
    fail with the reason. A fault before any run started fails them all (a model
    that will not load will not load twice). Stop ends everything."""
    plans = list(plans) if plans is not None else [None] * len(cells)
    run_dir = Path(run_dir)
    first = _launch_once(cells, plans, list(range(len(cells))), run_dir, on_event=on_event, cancel=cancel,
                         on_pids=on_pids, hooks=hooks)
    results = dict(first.results)
    if first.pending and not (cancel is not None and cancel.is_set()):
        again = _launch_once(cells, plans, first.pending, run_dir / "relaunch", on_event=on_event, cancel=cancel,
                             on_pids=on_pids, hooks=hooks)
        results.update(again.results)
        for index in again.pending:
            result = cell_results.failed(
                cells[index], plans[index], "failed",
                f"not run: its shared launch ended early ({first.reason}) and the relaunch of the runs left "
                f"ended early too ({again.reason})")
            results[index] = result
            if hooks and hooks.on_cell_end:
                hooks.on_cell_end(index, result)
    return [results[i] for i in range(len(cells))]


@dataclass
class _Outcome:
    results: dict  # cell index -> RunResult
    pending: list  # cells not run, to relaunch
    reason: str  # why the launch ended early, if it did
    phases: dict  # the launch's own: launch, imports, load, total
    events: list


def _launch_once(cells: list[Prepared], plans: list, indices: list[int], run_dir: Path, *,
                 on_event: EventCallback | None = None, cancel: threading.Event | None = None,
                 timeout: float | None = None, on_pids: Callable[[list[int]], None] | None = None,
                 hooks: LaunchHooks | None = None, single: bool = False) -> _Outcome:
    """One `accelerate launch` running the cells `indices` (in that order)."""
    hooks = hooks or LaunchHooks()
    run_dir.mkdir(parents=True, exist_ok=True)
    mine = [cells[i] for i in indices]
    world = max(mine, key=lambda p: p.config.gpus_per_node)  # the launch's world: its largest run's
    config = world.config
    port = config.main_port or free_port()
    job_path, config_path = run_dir / "job.json", run_dir / "accelerate.yaml"
    result_paths = [run_dir / ("result.json" if single else f"result-{i}.json") for i in indices]
    command = build_launch_command(world, job_path=job_path, config_path=config_path, port=port)
    job = build_job(world, result_paths[0], plans[indices[0]]) if single else build_launch_job(
        world, [(cells[i], path, plans[i]) for i, path in zip(indices, result_paths)])
    job_path.write_text(json.dumps(job))
    config_path.write_text(command.accelerate_config)
    for path in result_paths:
        path.unlink(missing_ok=True)
    token = hooks.on_launch_start(list(indices), config.gpus_per_node) if hooks.on_launch_start else None

    def deliver(event: dict) -> None:  # the worker counts its cells from 0; the caller knows them by index
        if on_event is not None:
            on_event({**event, "cell": indices[event["cell"]]} if "cell" in event else event)

    timeout = mine[0].config.timeout_s if timeout is None else timeout
    popen_time = time.time()
    # the ranks watch this process (the server or CLI) and end with it, however it dies
    env = {**command.env, **owner_env()}
    try:
        proc = subprocess.Popen(
            command.argv, env=env, cwd=run_dir, stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, errors="replace", bufsize=1,
            start_new_session=True,
        )
    except OSError as exc:
        message = f"could not start accelerate launch: {exc}"
        results = {i: cell_results.failed(cells[i], plans[i], "failed", message) for i in indices}
        return _end(hooks, token, results, [], message, {"total": 0.0}, [])
    streams = Streams(proc, run_dir, deliver)
    if on_pids is not None:
        on_pids([proc.pid])  # recorded at once: a server that dies now can still reap it on restart
    reported: set[int] = set()
    stopped_because = None
    died: list[int] = []  # the ranks first seen gone, before the others were stopped
    gone_since: float | None = None
    deadline = time.monotonic() + timeout
    results: dict[int, RunResult] = {}
    current: list[int] = []  # local index of the cell under way, if any
    seen = 0

    def follow_cells() -> None:
        """Start and end of each cell, from rank 0's events, as they come."""
        nonlocal seen, deadline
        with streams._lock:
            fresh, seen_now = streams.events[seen:], len(streams.events)
        seen = seen_now
        for event in fresh:
            if event["event"] == "cell-start" and int(event.get("rank", 0)) == 0:
                local = int(event["cell"])
                current[:] = [local]
                if local > 0:  # each run has its own time limit; the first one's includes the load
                    deadline = time.monotonic() + mine[local].config.timeout_s
                if hooks.on_cell_start:
                    hooks.on_cell_start(indices[local], token)
            elif event["event"] == "cell-end" and not single:
                local = int(event["cell"])
                results[indices[local]] = cell_results.cell_outcome(cells[indices[local]], plans[indices[local]],
                                                        result_paths[local], streams.events, local)
                current[:] = []
                if hooks.on_cell_end:
                    hooks.on_cell_end(indices[local], results[indices[local]])

    try:
        while proc.poll() is None:
            follow_cells()
            if on_pids is not None and set(streams.rank_pids.values()) - reported:
                reported = set(streams.rank_pids.values())
                on_pids([proc.pid, *sorted(reported)])
            if cancel is not None and cancel.is_set():
                stopped_because = "cancelled"
            elif time.monotonic() > deadline:
                stopped_because = "timeout"
            elif streams.worker_errors():
                # a rank reported its own failure: do not wait for torchrun's monitor
                stopped_because = "rank-error"
            elif streams.dead_ranks():
                # a rank vanished without a word (killed, OOM): the others would wait for it
                # at the next collective until a timeout, so end the run now
                if gone_since is None:
                    gone_since, died = time.monotonic(), streams.dead_ranks()
                elif time.monotonic() - gone_since >= RANK_DEATH_CONFIRM_S:
                    stopped_because = "rank-died"
            else:
                gone_since, died = None, []
            if stopped_because:
                grace = {"rank-error": 5.0, "rank-died": 2.0}.get(stopped_because, 3.0)
                kill_tree(proc.pid, streams.rank_procs.values(), grace=grace)
                break
            time.sleep(0.05)
    except BaseException:
        # Ctrl+C in the CLI, or any error here: nothing of the run may outlive it
        kill_tree(proc.pid, streams.rank_procs.values(), grace=2.0)
        raise
    exit_code = proc.wait()
    kill_tree(proc.pid, streams.rank_procs.values(), grace=0.5)  # nothing may outlive the run
    streams.join()
    follow_cells()
    end_time = time.time()
    phases = cell_results.launch_phases(popen_time, end_time, streams.events)
    tail = "\n".join(streams.stderr)

    if config.node_rank > 0 and exit_code == 0 and stopped_because is None:
        # A non-main node only lends its processes: global rank 0 (on node 0)
        # gathers every rank's figures and outputs and writes the one result.
        # What comes back here is a receipt, with no figures, never to be stored.
        receipt = {indices[0]: cell_results.worker_node_receipt(world, popen_time, end_time)}
        return _end(hooks, token, receipt, [], "", phases, streams.events)

    if exit_code == 0 and stopped_because is None:
        for local, index in enumerate(indices):
            if index not in results:
                results[index] = cell_results.cell_outcome(cells[index], plans[index], result_paths[local],
                                                           streams.events, local)
                if hooks.on_cell_end and not single:
                    hooks.on_cell_end(index, results[index])
        return _end(hooks, token, results, [], "", phases, streams.events)

    status, message, tail = explain_failure(
        stopped_because=stopped_because, cancel_reason=getattr(cancel, "reason", ""), exit_code=exit_code,
        timeout=timeout, streams=streams, died=died, tail=tail,
    )
    if status != "cancelled" and not streams.started_times():
        message += rendezvous_hint(config)
    ended, pending = cell_results.ended_early(cells, plans, indices, results, current[0] if current else None, status,
                                              message, tail=tail, exit_code=exit_code, events=streams.events,
                                              single=single)
    for index, result in ended.items():
        results[index] = result
        if hooks.on_cell_end and not single:
            hooks.on_cell_end(index, result)
    return _end(hooks, token, results, pending, message, phases, streams.events,
                status=status, exit_code=exit_code)


def _end(hooks: LaunchHooks, token, results: dict, pending: list, reason: str, phases: dict, events: list,
         status: str = "succeeded", exit_code: int | None = 0) -> _Outcome:
    if hooks.on_launch_end:
        hooks.on_launch_end(token, {"phases": phases, "status": status if reason else "succeeded",
                                    "error": reason or None, "exit_code": exit_code})
    return _Outcome(results=results, pending=pending, reason=reason, phases=phases, events=events)

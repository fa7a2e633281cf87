"""From what a launch left (its runs' result files, its events) to one RunResult
per run, and the launch's own phases: the result collection of
`runner.host.launcher`. Torch-free.

A launch's fixed costs (accelerate launch, imports, model load) are paid once
for all its runs: they are the launch's phases, stored once with it. A run's
phases are its own (warm-up, barrier, generation, bandwidth figures, gather, and
`total` from its start to its result inside the launch). A launch of one run
(`--launch per-run`, a single `studio run`) folds both together as before.
"""

from __future__ import annotations

import json
from pathlib import Path

from runner.environment import git_commit, host_fingerprint
from runner.host.rank_reports import run_comm_fraction, run_energy
from runner.host.validate import Prepared
from runner.result import RunResult
from runner.roofline import run_roofline

LAUNCH_PHASES = ("launch", "imports", "load")


def launch_phases(popen_time: float, end_time: float, events: list[dict]) -> dict:
    """Seconds per launch phase, each the slowest rank's: until the first rank
    started, its imports, its model load; and `total`, from launch to exit."""
    phases: dict[str, float] = {}
    starts = [e["time"] for e in events if e.get("event") == "started" and "time" in e]
    if starts:
        phases["launch"] = max(0.0, min(starts) - popen_time)
    for event in events:
        if event.get("event") != "launch-phases":
            continue
        for name in ("imports", "load"):
            start, end = event.get(name) or (0.0, 0.0)
            phases[name] = max(phases.get(name, 0.0), end - start)
    phases["total"] = end_time - popen_time
    return phases


def launch_spans(events: list[dict]) -> dict[int, list[dict]]:
    """Each rank's imports and load spans, for a launch of one run's rank timelines."""
    spans: dict[int, list[dict]] = {}
    for event in events:
        if event.get("event") == "launch-phases":
            spans[int(event["rank"])] = [{"phase": name, "start": event[name][0], "end": event[name][1]}
                                         for name in ("imports", "load") if event.get(name)]
    return spans


def run_phases(data: dict) -> dict:
    """A run's own phases inside its launch, each the slowest rank's."""
    phases: dict[str, float] = {}
    for rank in data.get("ranks", []):
        for span in rank.get("timeline", []):
            if span["phase"] == "generate":
                continue
            phases[span["phase"]] = max(phases.get(span["phase"], 0.0), span["end"] - span["start"])
    if data.get("seconds") is not None:
        phases["generate"] = data["seconds"]
    wall = data.get("wall")
    if wall:
        phases["total"] = wall[1] - wall[0]
    return phases


def succeeded(prepared: Prepared, data: dict, plan: dict | None, phases: dict) -> RunResult:
    environment = data.get("environment", {})
    environment.setdefault("nodes", [])
    environment["launcher"] = host_fingerprint()
    environment["git_commit"] = git_commit()
    return RunResult(
        status="succeeded",
        config=prepared.config.to_dict(),
        model=prepared.model.to_dict(),
        device=data["device"],
        dtype=data["dtype"],
        world_size=data["world_size"],
        tokens=data["tokens"],
        raw_tokens=data["raw_tokens"],
        seconds=data["seconds"],
        tokens_per_second=data["tokens_per_second"],
        ranks=data["ranks"],
        outputs=data["outputs"],
        environment=environment,
        phases=phases,
        plan=plan,
        roofline=run_roofline(data["ranks"]),
        energy=run_energy(data["ranks"], data["tokens"], data["raw_tokens"]),
        latency=data.get("latency"),
        comm_fraction=run_comm_fraction(data["ranks"]),
        exit_code=0,
    )


def failed(prepared: Prepared, plan: dict | None, status: str, message: str, **extra) -> RunResult:
    return RunResult.failure(prepared.config.to_dict(), status, message, plan=plan, model=prepared.model.to_dict(),
                             device=prepared.device, dtype=prepared.dtype, **extra)


def partial_outputs(events: list[dict], cell: int) -> list[dict]:
    """The outputs a run's ranks sent batch by batch before it stopped."""
    return sorted((o for e in events if e["event"] == "outputs" and e.get("cell", 0) == cell
                   for o in e.get("outputs", [])), key=lambda o: o["prompt_index"])


def cell_outcome(prepared: Prepared, plan: dict | None, path: Path, events: list, local: int) -> RunResult:
    """A run's result file as its RunResult: succeeded, or failed inside the live launch
    (with the outputs its ranks finished before, marked partial)."""
    if not path.exists():
        return failed(prepared, plan, "failed", "the launch ended without this run's result")
    data = json.loads(path.read_text())
    if data.get("status") == "failed":
        wall = data.get("wall") or [0.0, 0.0]
        partial = partial_outputs(list(events), local)
        return failed(prepared, plan, "failed", data.get("error") or "failed", outputs=partial,
                      partial=bool(partial), phases={"total": wall[1] - wall[0]})
    return succeeded(prepared, data, plan, run_phases(data))


def worker_node_receipt(prepared: Prepared, popen_time: float, end_time: float) -> RunResult:
    """What a node other than node 0 gets back: its processes finished, nothing more.

    No tokens, time or outputs (node 0 has them all); `environment["role"]` says
    so, and callers must not store it as a run.
    """
    config = prepared.config
    return RunResult(
        status="succeeded",
        config=config.to_dict(),
        model=prepared.model.to_dict(),
        device=prepared.device,
        dtype=prepared.dtype,
        world_size=config.world_size,
        environment={"role": "worker-node", "node_rank": config.node_rank, "launcher": host_fingerprint()},
        phases={"total": end_time - popen_time},
        exit_code=0,
    )


def ended_early(cells: list[Prepared], plans: list, indices: list[int], finished: dict, current: int | None,
                status: str, message: str, *, tail: str, exit_code: int | None, events: list,
                single: bool) -> tuple[dict[int, RunResult], list[int]]:
    """The runs without a result of a launch that ended early: the run it was in (or
    every run, if it reached none) fails with the reason and the outputs its ranks
    sent; after a Stop the others are cancelled, otherwise they are left to relaunch.
    Returns (RunResult by cell index, in order; cell indices to relaunch)."""
    started_any = any(e["event"] == "cell-start" for e in events)
    ended: dict[int, RunResult] = {}
    pending: list[int] = []
    for local, index in enumerate(indices):
        if index in finished:
            continue
        if local == current or not started_any:
            # the run it was in, or every run of a launch that never reached one
            partial = partial_outputs(events, local)
            ended[index] = failed(
                cells[index], plans[index], status, message, stderr_tail=tail, exit_code=exit_code,
                outputs=partial, partial=bool(partial), phases={} if single else {"total": 0.0})
        elif status in ("cancelled", "interrupted"):
            ended[index] = failed(cells[index], plans[index], "cancelled", "cancelled before it started")
        else:
            pending.append(index)
    return ended, pending

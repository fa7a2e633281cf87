"""From what a launch left (its runs' result files, its events) to one RunResult
per run, and the launch's own phases. Torch-free; used by `runner.host.launcher`.

A launch's fixed costs (accelerate launch, imports, model load) are paid once
for all its runs: they are the launch's phases, stored once with it. A run's
phases are its own (warm-up, barrier, generation, bandwidth figures, gather, and
`total` from its start to its result inside the launch). A launch of one run
(`--launch per-run`, a single `studio run`) folds both together as before.
"""

from __future__ import annotations

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

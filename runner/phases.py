"""Where a run's time went, for the run-detail view. Pure and torch-free.

`runs.phases` holds seconds per phase (each the slowest rank's): queue, launch,
imports, load, warmup, barrier, generate, roofline, comm-sample, gather, total, store.
Generation is the timed part; everything else is overhead the user waited for.
A run of a shared launch (`runner.host.launch_groups`) holds only its own phases; queue,
launch, imports and load are its launch's (`launches.phases`), paid once for all
its runs, and `describe_launch` says so.
"""

from __future__ import annotations

ORDER = ("queue", "launch", "imports", "load", "warmup", "barrier", "generate", "roofline", "comm-sample", "gather",
         "store")
LABELS = {
    "queue": "waiting in the queue",
    "launch": "accelerate launch until the first rank started",
    "imports": "Python imports (torch, transformers)",
    "load": "model load",
    "warmup": "warm-up generate (compiles, caches)",
    "barrier": "waiting for the other ranks",
    "generate": "generation (timed)",
    "roofline": "bandwidth probe for the roofline (after the timed window: not in tokens/s)",
    "comm-sample": "profiled sample batch (tensor-parallel collectives)",
    "gather": "gathering results to rank 0",
    "store": "writing to the database",
}


def breakdown(phases: dict | None) -> dict:
    """Rows in run order with their share of the click-to-stored time, the
    generation/overhead split, and `other` for time no phase accounts for
    (process teardown, the launcher's polling)."""
    phases = dict(phases or {})
    rows = [{"phase": name, "label": LABELS[name], "seconds": float(phases[name])}
            for name in ORDER if phases.get(name) is not None]
    # total runs from launch to the result; queue and store lie outside it
    end_to_end = float(phases.get("total") or 0.0) + float(phases.get("queue") or 0.0) + float(phases.get("store") or 0.0)
    accounted = sum(r["seconds"] for r in rows)
    other = max(0.0, end_to_end - accounted) if phases.get("total") is not None else 0.0
    if other > 0:
        rows.append({"phase": "other", "label": "unaccounted (process start-up and teardown)", "seconds": other})
    end_to_end = max(end_to_end, accounted)
    for row in rows:
        row["share"] = row["seconds"] / end_to_end if end_to_end else None
    generation = float(phases.get("generate") or 0.0)
    return {"rows": rows, "end_to_end": end_to_end, "generation": generation,
            "overhead": max(0.0, end_to_end - generation)}


def describe(phases: dict | None) -> str:
    """One line: overhead against generation."""
    b = breakdown(phases)
    if not b["end_to_end"]:
        return "Phases: not recorded."
    return (f"{b['end_to_end']:.1f} s from click to stored result: generation {b['generation']:.2f} s "
            f"({b['generation'] / b['end_to_end']:.0%}), overhead {b['overhead']:.1f} s.")


def describe_launch(launch: dict | None) -> str:
    """One line on the shared launch a run ran in: its fixed costs, paid once for all its runs."""
    if not launch:
        return ""
    got = launch.get("phases") or {}
    paid = ", ".join(f"{name} {float(got[name]):.1f} s" for name in ("launch", "imports", "load") if name in got)
    runs = launch.get("num_runs") or len(launch.get("run_ids") or [])
    return (f"launch {launch['id']} ({runs} run(s) on {launch.get('world_size')} process(es))"
            + (f": {paid}, paid once for all its runs" if paid else "")
            + (f"; relaunch of launch {launch['relaunch_of']}" if launch.get("relaunch_of") else ""))

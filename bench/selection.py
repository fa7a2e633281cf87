"""Which profiler events the studio counts as communication, shown event by event
for the acceptance run's one-rank all-reduce. Pure: it takes event-like objects
(`name`, `device_type`, `time_range.start/.end` in µs, as torch's FunctionEvent has).

It asks runner.rank.tensor_parallel itself: its pure selection (`profiled_events` and
`comm_seconds`) where the tree has it, else the older `collective_intervals`, and
says which it used, so the JSON shows what the studio of that commit counts.
"""

from __future__ import annotations


def _device(event) -> str:
    kind = getattr(event, "device_type", "")
    return getattr(kind, "name", str(kind))


def _selector(on_cuda: bool):
    """(name of the selection, counted(events) -> seconds or None)."""
    import runner.rank.tensor_parallel as tp

    if hasattr(tp, "comm_seconds") and hasattr(tp, "profiled_events"):
        return "comm_seconds", lambda events: tp.comm_seconds(tp.profiled_events(events), on_cuda)
    return "collective_intervals", lambda events: tp.merged_seconds(tp.collective_intervals(events))


def describe_events(events, on_cuda: bool) -> dict:
    """Every distinct (name, device type) with its count, total µs and whether the
    selection counts it; the communication seconds the selection gives for all."""
    events = list(events)
    selection, seconds_of = _selector(on_cuda)
    rows: dict[tuple[str, str], dict] = {}
    for event in events:
        key = (event.name or "", _device(event))
        row = rows.setdefault(key, {"name": key[0], "device_type": key[1], "count": 0, "total_us": 0.0,
                                    "counted": bool(seconds_of([event]))})
        row["count"] += 1
        row["total_us"] += event.time_range.end - event.time_range.start
    return {"selection": f"runner.rank.tensor_parallel.{selection}", "on_cuda": on_cuda,
            "comm_seconds": seconds_of(events), "events": sorted(rows.values(), key=lambda r: -r["total_us"])}

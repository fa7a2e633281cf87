"""What the host makes of its ranks' reports: each rank sends one JSON object
(`{"energy": ..., "comm": ..., "seconds": ...}`), and the run's figures are
worked out here, in the launching process, from those objects alone."""

from __future__ import annotations

import statistics


def run_energy(ranks: list[dict], tokens: int | None, positions: int | None) -> dict:
    """The run's energy from its ranks' `energy` readings ({"joules", "note"}) and
    `seconds`: total joules, per real token, per generated position (padding after
    EOS included) and average power (the ranks' average powers added up: the
    GPUs run side by side). All None with the reason unless every rank read one."""
    empty = {"energy_joules": None, "joules_per_token": None, "joules_per_position": None,
             "average_power_watts": None}
    if not ranks:
        return {**empty, "energy_note": "no ranks reported"}
    readings = [r.get("energy") or {} for r in ranks]
    missing = [(r.get("rank"), e.get("note")) for r, e in zip(ranks, readings) if e.get("joules") is None]
    if missing:
        notes = sorted({note or "no energy reading" for _, note in missing})
        which = "every rank" if len(missing) == len(ranks) else f"rank(s) {', '.join(str(r) for r, _ in missing)}"
        return {**empty, "energy_note": f"{which}: {'; '.join(notes)}"}
    joules = sum(e["joules"] for e in readings)
    power = sum(e["joules"] / r["seconds"] for r, e in zip(ranks, readings) if r.get("seconds"))
    return {
        "energy_joules": joules,
        "joules_per_token": joules / tokens if tokens else None,
        "joules_per_position": joules / positions if positions else None,
        "average_power_watts": power or None,
        "energy_note": None,
    }


def run_comm_fraction(ranks: list[dict]) -> float | None:
    """The run's share of decode time in collectives: the median over its ranks."""
    values = [r["comm"]["fraction"] for r in ranks if (r.get("comm") or {}).get("fraction") is not None]
    return statistics.median(values) if values else None

"""A server sweep's curves (issue 26): latency and TTFT against offered rate per GPU
count and layout, the knee, the highest rate that meets an SLO, and the sentence
that compares layouts. Pure functions of stored server runs (db.serving).

The knee, precisely: order a curve's loads by offered rate; a step from load i to
load i+1 is *saturated* when the throughput served grows by less than
`KNEE_SERVED` of the rate added (Δ achieved req/s ÷ Δ offered req/s) while the p50
latency grows by more than `KNEE_LATENCY` (L[i+1] ÷ L[i]). The knee is the offered
rate of load i at the first saturated step: past it, more offered load buys
latency, not throughput. No saturated step: no knee within the rates offered. A
throughput load (every request at once) offers no rate: it is drawn at the rate it
achieved but left out of the knee, whose served share it would meet by construction;
so is a load whose client fell behind its schedule (it did not offer the rate asked for).
"""

from __future__ import annotations

from dataclasses import dataclass

from db.rows import layout_of
from studio.sweeps.slo import meets

KNEE_SERVED = 0.5
KNEE_LATENCY = 1.2


@dataclass(frozen=True)
class Point:
    rate: float  # offered req/s (achieved where the load offered none: synchronous, throughput)
    served: float | None  # achieved req/s
    latency_ms_p50: float | None
    latency_ms_p99: float | None
    ttft_ms_p50: float | None
    ttft_ms_p99: float | None
    meets_slo: bool
    run_id: int | None = None
    profile: str | None = None  # 'throughput' offers no rate of its own: left out of the knee
    lagged: bool = False  # the client fell behind its schedule: the rate asked for was not offered


@dataclass
class Curve:
    gpus: int
    tp: int
    replicas: int
    points: list[Point]
    knee: float | None
    best_rate: float | None  # highest offered rate whose load met the SLO; None without one

    @property
    def name(self) -> str:
        return layout_words(self.gpus, self.tp, self.replicas)


def layout_words(gpus: int, tp: int, replicas: int) -> str:
    if gpus == 1:
        return "1 GPU"
    if tp == 1:
        return f"{gpus} GPUs as {replicas} replicas"
    return f"{gpus} GPUs as TP {tp}" if replicas == 1 else f"{gpus} GPUs as {replicas} replicas of TP {tp}"


def knee(points: list[Point]) -> float | None:
    """The offered rate past which latency grows without throughput (the module's definition)."""
    ordered = sorted((p for p in points if p.served is not None and p.latency_ms_p50 and p.profile != "throughput"
                      and not p.lagged),
                     key=lambda p: p.rate)
    for a, b in zip(ordered, ordered[1:]):
        if b.rate <= a.rate:
            continue
        served = (b.served - a.served) / (b.rate - a.rate)
        if served < KNEE_SERVED and b.latency_ms_p50 / a.latency_ms_p50 > KNEE_LATENCY:
            return a.rate
    return None


def curves(runs: list[dict], slo: dict | None = None) -> list[Curve]:
    """One curve per (GPU count, layout) of the succeeded server runs that have a rate, smallest first."""
    groups: dict[tuple[int, int, int], list[Point]] = {}
    for run in runs:
        if run.get("status") != "succeeded" or run.get("offered_rate") is None:
            continue
        layout = layout_of(run)
        ok = bool(slo) and meets(run, slo) and not run.get("errors")
        groups.setdefault((layout["world_size"], layout["tp_size"], layout["dp_size"]), []).append(Point(
            float(run["offered_rate"]), run.get("requests_per_second"), run.get("latency_ms_p50"),
            run.get("latency_ms_p99"), run.get("ttft_ms_p50"), run.get("ttft_ms_p99"), ok, run.get("id"), run.get("profile"),
            bool(run.get("client_lagged"))))
    out = []
    for (gpus, tp, dp), points in sorted(groups.items()):
        points.sort(key=lambda p: p.rate)
        best = max((p.rate for p in points if p.meets_slo), default=None)
        out.append(Curve(gpus, tp, dp, points, knee(points), best))
    return out


def _limit(slo: dict) -> str:
    def ms(value: float) -> str:
        return f"{value / 1000:g} s" if value >= 1000 else f"{value:g} ms"
    return f"TTFT p99 {ms(slo['ttft_ms'])} and TPOT p99 {ms(slo['tpot_ms'])}"


def sentence(found: list[Curve], slo: dict | None) -> str:
    """E.g. '2 GPUs as 2 replicas sustain 3.1 req/s within TTFT p99 2 s and TPOT p99 200 ms;
    4 GPUs as 4 replicas give 5.2 (0.84 per GPU of 2 GPUs as 2 replicas)'."""
    if not found:
        return "No server load with an offered rate succeeded: nothing to compare."
    if not slo:
        return ("Give latency limits for goodput (ttft=MS,tpot=MS) to find the highest rate each layout sustains "
                "within them.")
    meeting = [c for c in found if c.best_rate is not None]
    missed = [c.name for c in found if c.best_rate is None]
    if not meeting:
        return f"No layout met {_limit(slo)} at any rate offered ({', '.join(missed)})."
    first = meeting[0]
    parts = [f"{first.name} sustain{'s' if first.gpus == 1 else ''} {first.best_rate:.3g} req/s within {_limit(slo)}"]
    for c in meeting[1:]:
        per_gpu = (c.best_rate / c.gpus) / (first.best_rate / first.gpus)
        parts.append(f"{c.name} give {c.best_rate:.3g} ({per_gpu:.2f} per GPU of {first.name})")
    text = "; ".join(parts) + "."
    if missed:
        text += f" Not met at any rate offered: {', '.join(missed)}."
    return text

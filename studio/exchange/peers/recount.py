"""Recounting another tool's requests with the studio's own definitions
(runner.metrics: TTFT, TPOT with the first token excluded, latency to the last
token, p50/p90/p99 by linear interpolation, goodput), and setting the tool's own
aggregates beside them.

Every per-request figure comes from `runner.metrics.request_latencies` and every
percentile from `runner.metrics.percentile`: the studio has one definition of each,
and an imported run is held to it. Where the recount and the tool differ by more
than 1 %, the difference is named: first the percentile rule (the tool's rule applied
to the same requests reproduces its number), else the tool's definition of the metric.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from runner.metrics import PERCENTILES, goodput, percentile, request_latencies, run_summary
from studio.exchange.peers.record import ImportedFile, ImportedRun, Request

TOLERANCE_PCT = 1.0
FAMILIES = ("ttft", "tpot", "itl", "latency")
STUDIO_DEFINITIONS = {
    "ttft": "first token received − request sent",
    "tpot": "(last token − first token) ÷ (output tokens − 1): the first token excluded",
    "itl": "every gap between consecutive streamed chunks, pooled over the requests",
    "latency": "last token received − request sent",
    "tokens_per_second": "output tokens of the successful requests ÷ (last response − first request sent)",
    "percentile": "linear interpolation between closest ranks (numpy's default)",
}
TOOL_RULES = {"lower": "the first value whose cumulative share reaches q, no interpolation"}


@dataclass
class Difference:
    """One figure recounted by the studio beside the tool's own."""

    metric: str  # e.g. ttft_ms_p50
    studio: float
    tool: float
    tool_metric: str  # the tool's figure it is set against (e.g. itl_ms_p50 for the studio's tpot)
    percent: float
    cause: str | None  # None within the tolerance; else the definition that differs

    def as_dict(self) -> dict:
        return {"metric": self.metric, "studio": self.studio, "tool": self.tool, "tool_metric": self.tool_metric,
                "percent": self.percent, "cause": self.cause}


def request_figures(request: Request) -> dict | None:
    """One successful request in the studio's definitions, or None where its times are missing."""
    if not request.ok or request.start is None or request.first_token is None:
        return None
    tokens = request.output_tokens or 0
    last = request.last_token if request.last_token is not None else request.first_token
    figures = request_latencies(request.start, request.start, [request.first_token, last], tokens)
    return {"ttft_ms": figures["ttft_ms"], "tpot_ms": figures["tpot_ms"], "latency_ms": figures["latency_ms"],
            "tokens": tokens, "input_tokens": request.input_tokens}


def window_seconds(requests: list[Request]) -> float | None:
    """The run's window as the studio times one: first request sent to last response."""
    starts = [r.start for r in requests if r.start is not None]
    ends = [r.end if r.end is not None else r.last_token for r in requests]
    ends = [e for e in ends if e is not None]
    if not starts or not ends or max(ends) <= min(starts):
        return None
    return max(ends) - min(starts)


def recount(run: ImportedRun, slo: dict | None = None) -> tuple[dict, list[dict]]:
    """The studio's figures for a run with per-request times: (run figures, per-request rows)."""
    per_request = [f for f in (request_figures(r) for r in run.requests or []) if f is not None]
    seconds = window_seconds(run.requests or [])
    tokens = sum(f["tokens"] for f in per_request)
    out = dict(run_summary(per_request))
    gaps = [g for r in run.requests or [] if r.ok and r.gaps_ms for g in r.gaps_ms]
    for p in PERCENTILES:
        out[f"itl_ms_p{p}"] = percentile(gaps, p) if gaps else None
    out.update({"tokens": tokens, "seconds": seconds, "completed": len(per_request),
                "failed": sum(1 for r in run.requests or [] if not r.ok),
                "tokens_per_second": tokens / seconds if seconds else None,
                "requests_per_second": len(per_request) / seconds if seconds else None,
                "goodput": goodput(per_request, seconds, slo) if slo else None})
    return out, per_request


def lower_percentile(values: list[float], q: float) -> float | None:
    """GuideLLM's rule (guidellm/schemas/base/statistics.py, Percentiles.from_pdf): the
    first sorted value whose cumulative share reaches q. Used only to name a difference."""
    xs = sorted(v for v in values if v is not None and not math.isnan(v))
    if not xs:
        return None
    index = max(0, math.ceil(q / 100.0 * len(xs) - 1e-9) - 1)
    return xs[min(index, len(xs) - 1)]


def _percent(studio: float, tool: float) -> float | None:
    if tool == 0:
        return 0.0 if studio == 0 else None
    return (studio - tool) / abs(tool) * 100.0


def _cause(imported: ImportedFile, family: str, tool_family: str, p: int | None, values: list[float],
           tool: float) -> str:
    name = imported.tool
    if p is not None and imported.percentile_rule in TOOL_RULES:
        again = lower_percentile(values, p)
        if again is not None and abs(_percent(again, tool) or 0.0) <= TOLERANCE_PCT:
            return (f"percentile rule: {name} takes {TOOL_RULES[imported.percentile_rule]} ({again:.4g} on these "
                    f"requests); the studio: {STUDIO_DEFINITIONS['percentile']}")
    theirs = imported.definitions.get(tool_family)
    studio = STUDIO_DEFINITIONS.get(family, "")
    if theirs:
        return f"{family.upper() if family != 'tokens_per_second' else 'tokens/s'} definition: {name}: {theirs}; " \
               f"the studio: {studio}"
    return f"{name}'s {tool_family} is not defined as the studio's ({studio}); see docs/import.md"


def compare(imported: ImportedFile, studio: dict, per_request: list[dict], tool: dict[str, float]) -> list[Difference]:
    """Each figure both sides have, the difference in percent and, beyond 1 %, its cause."""
    found = []
    for family, tool_family in imported.same_quantity:
        if family == "tokens_per_second":
            pairs = [(family, tool_family, None)]
        else:
            pairs = [(f"{family}_ms_p{p}", f"{tool_family}_ms_p{p}", p) for p in PERCENTILES]
        for metric, tool_metric, p in pairs:
            mine, theirs = studio.get(metric), tool.get(tool_metric)
            if mine is None or theirs is None:
                continue
            percent = _percent(mine, theirs)
            if percent is None:
                continue
            values = [r.get(f"{family}_ms") for r in per_request] if p is not None else []
            cause = None if abs(percent) <= TOLERANCE_PCT else _cause(imported, family, tool_family, p, values,
                                                                     theirs)
            found.append(Difference(metric, mine, theirs, tool_metric, percent, cause))
    return found

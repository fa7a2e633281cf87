"""Per-request latency in the offline scenario: every prompt is submitted when the
rank's timer starts, and waits for its batch.

For each request: `queue_ms` (timer start to its batch's start), `ttft_ms` (its
batch's start to its first generated token on the host), `tpot_ms` (mean time
between its tokens after the first) and `latency_ms` (its batch's start to its
last real token, through its EOS). A run keeps p50, p90 and p99 of TTFT, TPOT
and latency over all its requests.

The token times come from `StepClock`, a logits processor that notes the host
clock at every decode step. It adds no device synchronisation: `generate`
already waits for each step's tokens to decide whether to stop, so the clock is
read after the step is done. Pure except for `StepClock` reading the clock.
"""

from __future__ import annotations

import math
import time
from typing import Iterable, Sequence

PERCENTILES = (50, 90, 99)
METRICS = ("ttft_ms", "tpot_ms", "latency_ms")
RUN_FIELDS = tuple(f"{m}_p{p}" for m in METRICS for p in PERCENTILES)


class StepClock:
    """A logits processor that changes nothing and notes when each step's scores
    reach it (the forward pass of that step is done)."""

    def __init__(self):
        self.times: list[float] = []

    def __call__(self, input_ids, scores):
        self.times.append(time.perf_counter())
        return scores


def request_latencies(timer_start: float, batch_start: float, token_times: Sequence[float],
                      tokens: int) -> dict:
    """One request's figures in milliseconds; `token_times[i]` is when its token i
    was on the host, `tokens` its real tokens (through EOS)."""
    out = {"queue_ms": (batch_start - timer_start) * 1000.0, "ttft_ms": None, "tpot_ms": None, "latency_ms": None}
    if tokens < 1 or not token_times:
        return out
    last = token_times[min(tokens, len(token_times)) - 1]
    out["ttft_ms"] = (token_times[0] - batch_start) * 1000.0
    out["latency_ms"] = (last - batch_start) * 1000.0
    if tokens > 1:
        out["tpot_ms"] = (last - token_times[0]) * 1000.0 / (tokens - 1)
    return out


def percentile(values: Sequence[float], q: float) -> float | None:
    """Linear interpolation between closest ranks (numpy's default)."""
    xs = sorted(v for v in values if v is not None and not math.isnan(v))
    if not xs:
        return None
    position = (len(xs) - 1) * q / 100.0
    low = math.floor(position)
    high = min(low + 1, len(xs) - 1)
    return xs[low] + (xs[high] - xs[low]) * (position - low)


def run_summary(requests: Iterable[dict]) -> dict:
    """p50, p90 and p99 of TTFT, TPOT and latency over a run's requests."""
    requests = list(requests)
    return {f"{m}_p{p}": percentile([r.get(m) for r in requests], p) for m in METRICS for p in PERCENTILES}


def goodput(requests: Iterable[dict], seconds: float | None, slo: dict) -> float | None:
    """Real tokens per second of the requests that met both limits (MLPerf's and
    AIPerf's goodput): TTFT within `slo["ttft_ms"]` and TPOT within `slo["tpot_ms"]`
    (a one-token request has no TPOT and meets that limit)."""
    if not seconds:
        return None
    good = sum(r.get("tokens") or 0 for r in requests
               if r.get("ttft_ms") is not None and r["ttft_ms"] <= slo["ttft_ms"]
               and (r.get("tpot_ms") is None or r["tpot_ms"] <= slo["tpot_ms"]))
    return good / seconds

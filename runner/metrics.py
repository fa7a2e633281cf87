"""Per-request latency in the offline scenario: every prompt is submitted when the
rank's timer starts, and waits for its batch.

For each request: `queue_ms` (timer start to its batch's start), `ttft_ms` (its
batch's start to its first generated token on the host), `tpot_ms` (mean time
between its tokens after the first) and `latency_ms` (its batch's start to its
last real token, through its EOS). A run keeps p50, p90 and p99 of TTFT, TPOT
and latency over all its requests.

The token times come from `runner.rank.token_clock.TokenClock`, a streamer
`generate` hands each step's tokens to. transformers calls its `put` right after copying the tokens to the
host (`tokens.cpu()`, which waits for the device), so each time is read when the
step's token really is on the host, on CUDA as on CPU; the batch's start is read
after a device sync (`runner.rank.generation`). It adds no synchronisation of its own:
`generate` already waits for each step's tokens to decide whether to stop.
(The logits processor used before read the clock after the step's forward was
only queued: on CUDA, launch time, with the prefill missing from TTFT.)
Pure and torch-free: the store takes its field names from here, and the web
process its goodput.
"""

from __future__ import annotations

import math
from typing import Iterable, Sequence

PERCENTILES = (50, 90, 99)
METRICS = ("ttft_ms", "tpot_ms", "latency_ms")
RUN_FIELDS = tuple(f"{m}_p{p}" for m in METRICS for p in PERCENTILES)


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

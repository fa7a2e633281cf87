"""The two reference clocks the acceptance run times a `generate` with, beside the
studio's own (`runner.rank.token_clock.TokenClock`). Kept here, not in runner/, because the
studio no longer uses them: they exist to be compared against.

- `LogitsClock`: the studio's old clock, a logits processor reading the host clock.
  It runs right after a step's forward is enqueued, before the step's only sync, so
  on CUDA it reads launch time: its first reading comes before the prefill has run.
- `EventClock`: a logits processor that records a CUDA event at the same place in
  the stream. The event completes when the step's forward has, so the events give
  device time; they are resolved after the run against one event recorded at the
  batch's start, right after a device sync and a host-clock reading.

Both import torch only when used; the summary arithmetic is pure.
"""

from __future__ import annotations

import time
from typing import Sequence


class LogitsClock:
    """A logits processor that changes nothing and notes the host clock at each step."""

    def __init__(self):
        self.times: list[float] = []

    def __call__(self, input_ids, scores):
        self.times.append(time.perf_counter())
        return scores


class EventClock:
    """A logits processor that records a CUDA event at each step; `start()` at the
    batch's start (after a device sync), `elapsed_ms()` once the run is over."""

    def __init__(self):
        import torch

        self._torch = torch
        self.begin = torch.cuda.Event(enable_timing=True)
        self.events: list = []

    def start(self) -> None:
        self.begin.record()

    def __call__(self, input_ids, scores):
        event = self._torch.cuda.Event(enable_timing=True)
        event.record()
        self.events.append(event)
        return scores

    def elapsed_ms(self) -> list[float]:
        self._torch.cuda.synchronize()
        return [self.begin.elapsed_time(e) for e in self.events]


def summary_ms(since_start_ms: Sequence[float]) -> dict:
    """TTFT (the first token's time) and mean TPOT (first to last over the gaps) of
    one batch, from its tokens' times in ms since the batch's start."""
    times = list(since_start_ms)
    if not times:
        return {"ttft_ms": None, "tpot_ms": None, "tokens": 0}
    tpot = (times[-1] - times[0]) / (len(times) - 1) if len(times) > 1 else None
    return {"ttft_ms": times[0], "tpot_ms": tpot, "tokens": len(times)}


def host_ms(start: float, times: Sequence[float]) -> list[float]:
    """perf_counter readings as ms since `start`."""
    return [(t - start) * 1000.0 for t in times]

"""One load against the servers: a profile's schedule of requests, sent by the
client, with warm-up and cool-down requests marked not measured (issue 26).

Kinds of load:
  synchronous   one request at a time (concurrency 1)
  concurrency   N requests in flight; each one is sent when one ends
  throughput    every request at once: the most the servers take
  constant      requests arrive at R per second, evenly spaced
  poisson       requests arrive at R per second on average, exponential gaps from a seeded RNG
"""

from __future__ import annotations

import asyncio
import random
import threading
import time
from datetime import datetime, timezone
from typing import Callable

from runner.host.serving.client import INTERRUPTED, Target, make_client, new_record, send

# Past this lag (actual minus scheduled send) the load was not the one asked for:
# at a tenth of a second it shifts a sub-second TTFT by more than the differences a
# sweep looks for, so the load is flagged.
LAG_LIMIT_S = 0.1
WATCH_S = 0.05


def arrival_times(kind: str, rate: float | None, count: int, seed: int) -> list[float]:
    """When each request of an open-loop load is scheduled, in seconds from its start."""
    if kind == "throughput":
        return [0.0] * count
    if kind == "constant":
        return [i / rate for i in range(count)]
    if kind == "poisson":
        rng = random.Random(seed)
        times, t = [], 0.0
        for _ in range(count):
            times.append(t)
            t += rng.expovariate(rate)
        return times
    raise ValueError(f"{kind} is not an open-loop load")


class LoadInterrupted(Exception):
    """Stop was pressed, or a server died; `reason` says which."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


async def _watch(stop: threading.Event | None, check: Callable[[], str | None] | None) -> str:
    """Returns once Stop is set or `check` reports a dead server (its message)."""
    while True:
        if stop is not None and stop.is_set():
            return "cancelled"
        problem = check() if check is not None else None
        if problem:
            return problem
        await asyncio.sleep(WATCH_S)


async def _open_loop(client, target, records, times, t0, on_done):
    async def one(record):
        await send(client, target, record, t0)
        on_done()

    tasks = []
    for record, at in zip(records, times):
        delay = at - (time.perf_counter() - t0)
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(record)))
    await asyncio.gather(*tasks)


async def _closed_loop(client, target, records, concurrency, t0, on_done):
    queue = list(records)

    async def worker():
        free_at = 0.0
        while queue:
            record = queue.pop(0)
            record["scheduled_s"] = free_at  # the moment this slot came free
            await send(client, target, record, t0)
            free_at = time.perf_counter() - t0
            on_done()

    await asyncio.gather(*(worker() for _ in range(concurrency)))


async def _run(target, kind, rate, concurrency, records, seed, stop, check, on_done):
    t0 = time.perf_counter()
    started_at = datetime.now(timezone.utc).isoformat()
    parallel = concurrency if kind in ("synchronous", "concurrency") else len(records)
    async with make_client(parallel) as client:
        if kind in ("synchronous", "concurrency"):
            load = _closed_loop(client, target, records, concurrency, t0, on_done)
        else:
            times = arrival_times(kind, rate, len(records), seed)
            for record, at in zip(records, times):
                record["scheduled_s"] = record["sent_s"] = at
            load = _open_loop(client, target, records, times, t0, on_done)
        load_task = asyncio.create_task(load)
        watch_task = asyncio.create_task(_watch(stop, check))
        done, _ = await asyncio.wait({load_task, watch_task}, return_when=asyncio.FIRST_COMPLETED)
        interrupted = None
        if watch_task in done:
            interrupted = watch_task.result()
            load_task.cancel()
            await asyncio.gather(load_task, return_exceptions=True)
        else:
            watch_task.cancel()
            await asyncio.gather(watch_task, return_exceptions=True)
            load_task.result()
    return started_at, interrupted


def run_load(target: Target, kind: str, *, rate: float | None = None, concurrency: int = 1, prompts: tuple[str, ...],
             measured: int, warmup: int = 0, cooldown: int = 0, seed: int = 0,
             stop: threading.Event | None = None, check: Callable[[], str | None] | None = None,
             on_done: Callable[[int, int], None] | None = None) -> tuple[dict, str | None]:
    """Runs one load to its end. Returns (the load's record as the contract has it,
    None or why it was interrupted: 'cancelled' or a dead server's message)."""
    total = warmup + measured + cooldown
    records = [new_record(i, prompts[i % len(prompts)], 0.0, warmup <= i < warmup + measured) for i in range(total)]
    finished = [0]

    def done() -> None:
        finished[0] += 1
        if on_done is not None:
            on_done(finished[0], total)

    if kind == "synchronous":
        concurrency = 1
    started_at, interrupted = asyncio.run(_run(target, kind, rate, concurrency, records, seed, stop, check, done))
    reason = "cancelled by Stop" if interrupted == "cancelled" else interrupted
    for record in records:
        if record["error"] == INTERRUPTED or (interrupted and record["end_s"] is None and record["error"] is None):
            record["error"] = reason  # in flight, or never sent, when the load was interrupted
    return summarise(kind, rate, concurrency, started_at, records), interrupted


def summarise(kind: str, rate: float | None, concurrency: int, started_at: str, records: list[dict]) -> dict:
    measured = [r for r in records if r["measured"]]
    sent = [r for r in measured if r["end_s"] is not None]
    # the measured window: from the first measured send to the last measured end
    duration = max(r["end_s"] for r in sent) - min(r["sent_s"] for r in sent) if sent else 0.0
    lags = [max(0.0, r["sent_s"] - r["scheduled_s"]) for r in sent]
    max_lag = max(lags, default=0.0)
    return {"profile": kind, "rate": rate if kind in ("constant", "poisson") else None,
            "concurrency": concurrency if kind in ("synchronous", "concurrency") else None,
            "started_at": started_at, "duration_s": duration, "client_lagged": max_lag > LAG_LIMIT_S,
            "max_client_lag_s": max_lag, "requests": records}


def achieved_rate(load: dict) -> float:
    """Measured requests that succeeded per second of the measured window."""
    good = sum(1 for r in load["requests"] if r["measured"] and r["error"] is None)
    return good / load["duration_s"] if load["duration_s"] > 0 else 0.0


def sweep_rates(sync_rate: float, max_rate: float, points: int) -> list[float]:
    """`points` constant rates evenly between the synchronous and the maximum rate, both
    excluded (GuideLLM's sweep)."""
    step = (max_rate - sync_rate) / (points + 1)
    return [sync_rate + step * (i + 1) for i in range(points)]

"""The clock a rank reads each generated step's tokens by (see `runner.metrics`
for what the times become). Runs in a rank only: it imports transformers."""

from __future__ import annotations

import time

from transformers.generation.streamers import BaseStreamer


class TokenClock(BaseStreamer):
    """Notes when each generated step's tokens reach the host (`times`, one per
    step, perf_counter seconds) and when `generate` ends (`ended`).

    `generate` puts the prompt first; that put is not a generated token and is
    skipped. Each later put comes right after the step's blocking copy to the
    host, so the clock is read first, before any work of its own."""

    def __init__(self):
        self.times: list[float] = []
        self.ended: float | None = None
        self._prompt_seen = False

    def put(self, value) -> None:
        now = time.perf_counter()
        if not self._prompt_seen:
            self._prompt_seen = True
            return
        self.times.append(now)

    def end(self) -> None:
        self.ended = time.perf_counter()

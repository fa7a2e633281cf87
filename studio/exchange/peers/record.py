"""What every reader of another tool's results hands back: the same typed records,
whichever tool wrote the file, so that recounting, storing and showing them is
written once.

Times are the tool's own clock in seconds (epoch or monotonic: only differences
are used); durations the tool wrote are kept in milliseconds under names ending
in `_ms`, as the studio's own columns are.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path


class PeerFileError(ValueError):
    """A file (or folder) that cannot be imported. The message starts with the file's
    name, never a server path, and says what to change; nothing was stored."""

    def __init__(self, name: str, reason: str):
        super().__init__(f"{name}: nothing imported: {reason}")
        self.name = name
        self.reason = reason


@dataclass(frozen=True)
class Request:
    """One request as the tool recorded it."""

    ok: bool
    start: float | None = None  # sent
    first_token: float | None = None  # first generated token received
    last_token: float | None = None  # last generated token received
    end: float | None = None  # response finished (at or after the last token)
    output_tokens: int | None = None
    input_tokens: int | None = None
    gaps_ms: tuple[float, ...] | None = None  # time between consecutive streamed chunks, where kept
    error: str | None = None


@dataclass(frozen=True)
class Scenario:
    """How the load was offered: the words History filters by."""

    kind: str  # offline | synchronous | concurrency | constant rate | poisson rate | throughput | rate sweep
    value: float | None = None

    def label(self) -> str:
        if self.value is None:
            return self.kind
        number = f"{self.value:g}"
        return f"{self.kind} {number}" + (" req/s" if "rate" in self.kind else "")

    @property
    def concurrency(self) -> int:
        """The runs table's batch size: requests in flight where the scenario fixes it,
        1 for one at a time, 0 for a request rate (no fixed number in flight)."""
        if self.kind == "concurrency" and self.value:
            return int(self.value)
        return 1 if self.kind == "synchronous" else 0


@dataclass
class ImportedRun:
    """One benchmark of a file: one stored run."""

    name: str  # the tool's own name for it (strategy, file, variation)
    scenario: Scenario
    model: str | None = None
    started_at: str | None = None  # ISO 8601 UTC, when the tool says
    duration_s: float | None = None  # the tool's own benchmark window
    requests: list[Request] | None = None  # None: the file holds aggregates only
    completed: int | None = None
    failed: int | None = None
    output_tokens: int | None = None  # of the successful requests
    input_tokens: int | None = None
    requested_output_tokens: int | None = None
    tool_metrics: dict[str, float] = field(default_factory=dict)  # studio-style names, the tool's numbers
    settings: dict = field(default_factory=dict)  # what the tool says about how it ran, as it says it
    gpus: int | None = None
    gpu_type: str | None = None
    engine: str | None = None
    labels: dict[str, str] = field(default_factory=dict)


@dataclass
class ImportedFile:
    """Everything read from one file or folder, before anything is stored."""

    tool: str  # guidellm | aiperf | vllm | inference-benchmarker
    version: str | None
    format: str  # e.g. "guidellm benchmarks.json v2", "vllm bench serve"
    file_name: str  # shown to users: the file's (or folder's) own name, never its path
    content_hash: str
    runs: list[ImportedRun]
    # how the tool defines what it reports, per metric family, where that is not the studio's
    definitions: dict[str, str] = field(default_factory=dict)
    # the tool's percentile rule: "linear" (numpy's default, the studio's) or "lower" (first value
    # whose cumulative share reaches q, GuideLLM's)
    percentile_rule: str = "linear"
    # (studio family, tool family): the tool's number that measures what the studio's does
    same_quantity: tuple[tuple[str, str], ...] = (("ttft", "ttft"), ("tpot", "tpot"), ("itl", "itl"),
                                                  ("latency", "latency"), ("tokens_per_second", "tokens_per_second"))


def display_name(path: Path) -> str:
    """A path as a message may show it: its last part only."""
    return path.name or str(path)


def finite(value, name: str, where: str) -> float | None:
    """A number from a file, None where absent; refuses text, booleans, NaN and infinity,
    which json reads from `NaN` and `1e999` and which no figure may hold."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise PeerFileError(where, f"{name} is {str(value)[:40]!r}, not a number; the file is damaged or "
                            "not what its fields say")
    if not math.isfinite(value):
        raise PeerFileError(where, f"{name} is {value}, not a finite number; the file is damaged")
    return float(value)


def whole(value, name: str, where: str) -> int | None:
    number = finite(value, name, where)
    if number is None:
        return None
    if number < 0 or number != int(number):
        raise PeerFileError(where, f"{name} is {value!r}, not a whole count")
    return int(number)

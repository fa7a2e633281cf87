"""RunResult: what one run produced, as it travels from the launcher to storage."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field


@dataclass
class RunResult:
    status: str  # succeeded | failed | cancelled | interrupted
    config: dict
    model: dict | None = None
    device: str | None = None
    dtype: str | None = None
    world_size: int | None = None
    tokens: int | None = None
    raw_tokens: int | None = None
    seconds: float | None = None  # slowest rank's generation time
    tokens_per_second: float | None = None
    ranks: list[dict] = field(default_factory=list)
    outputs: list[dict] = field(default_factory=list)
    environment: dict = field(default_factory=dict)
    phases: dict = field(default_factory=dict)
    plan: dict | None = None
    roofline: dict | None = None  # bandwidth figures of a succeeded run (runner.roofline.run_roofline)
    latency: dict | None = None  # p50/p90/p99 of TTFT, TPOT and latency (runner.metrics.run_summary)
    energy: dict | None = None  # joules, per token, per position, power, or the reason none (runner.rank.energy.run_energy)
    comm_fraction: float | None = None  # share of a sample decode in tensor-parallel collectives (runner.comm)
    error: str | None = None
    stderr_tail: str | None = None
    exit_code: int | None = None
    partial: bool = False

    @property
    def padding_tokens(self) -> int | None:
        if self.tokens is None or self.raw_tokens is None:
            return None
        return self.raw_tokens - self.tokens

    @property
    def imbalance(self) -> float | None:
        """Slowest rank's generation time over the mean: 1.0 is perfect balance."""
        times = [r["seconds"] for r in self.ranks if r.get("seconds")]
        if not times:
            return None
        return max(times) / (sum(times) / len(times))

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "RunResult":
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})

    @classmethod
    def failure(cls, config: dict, status: str, error: str, **extra) -> "RunResult":
        """A run that did not finish: no throughput is reported, whatever ran."""
        return cls(status=status, config=config, error=error, **extra)

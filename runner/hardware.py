"""What devices this machine has, found without importing torch."""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import lru_cache

from runner.environment import nvidia_smi


@dataclass(frozen=True)
class Inventory:
    gpu_count: int
    gpu_names: tuple[str, ...]
    gpu_memory_mib: tuple[int, ...]
    cpu_cores: int

    @property
    def default_device(self) -> str:
        return "cuda" if self.gpu_count else "cpu"

    def max_processes(self, device: str) -> int:
        if device == "cuda":
            return self.gpu_count
        # CPU "GPUs" are processes; past a few per core they only measure the scheduler.
        return max(8, 2 * self.cpu_cores)


def _visible(count: int) -> list[int]:
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is None:
        return list(range(count))
    ids = [v.strip() for v in visible.split(",") if v.strip() and v.strip() != "-1"]
    return [int(v) for v in ids if v.isdigit() and int(v) < count]


@lru_cache(maxsize=1)
def detect() -> Inventory:
    gpus = nvidia_smi()
    picked = [gpus[i] for i in _visible(len(gpus))]
    return Inventory(
        gpu_count=len(picked),
        gpu_names=tuple(g["name"] for g in picked),
        gpu_memory_mib=tuple(g["memory_mib"] or 0 for g in picked),
        cpu_cores=os.cpu_count() or 1,
    )

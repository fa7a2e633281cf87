"""How a run's ranks are laid out: data-parallel copies of the model, each a
tensor-parallel group of `tp_size` consecutive ranks. Pure, torch-free.

With `tp_size` dividing the GPUs of a node and torchrun numbering a node's ranks
consecutively, every tensor group lies inside one node: its all-reduces stay on
the node's fast links, and only the prompt split and the gather cross nodes.
"""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass
from functools import lru_cache


def tp_fits(tp_size: int, gpus: int) -> bool:
    """Whether tensor groups of `tp_size` ranks fill `gpus` GPUs exactly: the one test of a
    layout's shape, shared by RunConfig, the sweep grid, the charts and the ranks."""
    return tp_size >= 1 and gpus % tp_size == 0


def tp_sizes_for(gpus: int) -> list[int]:
    """Every tensor-parallel size that fits `gpus` GPUs."""
    return [t for t in range(1, gpus + 1) if tp_fits(t, gpus)]


@dataclass(frozen=True)
class Layout:
    world_size: int
    tp_size: int = 1

    def __post_init__(self) -> None:
        if not tp_fits(self.tp_size, self.world_size):
            raise ValueError(f"tp {self.tp_size} does not divide the world of {self.world_size} ranks")

    @property
    def dp(self) -> int:
        """Copies of the model: the data-parallel groups the prompts are split between."""
        return self.world_size // self.tp_size

    def dp_rank(self, rank: int) -> int:
        """Which copy of the model `rank` belongs to."""
        return rank // self.tp_size

    def tp_rank(self, rank: int) -> int:
        """`rank`'s place inside its tensor group; 0 is the group's leader, which reports its outputs."""
        return rank % self.tp_size

    def tp_group(self, rank: int) -> list[int]:
        """The ranks that hold the same copy of the model as `rank`."""
        first = self.dp_rank(rank) * self.tp_size
        return list(range(first, first + self.tp_size))

    def tp_groups(self) -> list[list[int]]:
        return [self.tp_group(d * self.tp_size) for d in range(self.dp)]


def heads_problem(tp: int, heads: int, kv_heads: int) -> str | None:
    """Why a model's attention cannot be split over `tp` ranks, or None: each rank
    must hold whole query heads and whole key-value heads."""
    if tp == 1:
        return None
    fits = [t for t in range(1, heads + 1) if heads % t == 0 and kv_heads % t == 0]
    if heads % tp:
        return f"tp {tp} does not divide the model's {heads} attention heads; use tp {_or_list(fits)}"
    if kv_heads % tp:
        return f"tp {tp} does not divide the model's {kv_heads} key-value heads; use tp {_or_list(fits)}"
    return None


def _or_list(values: list[int]) -> str:
    words = [str(v) for v in values]
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " or " + words[-1]


def layout_memory_bytes(weight_bytes: int, kv_bytes_per_token: int, tokens_per_sequence: int, batch: int,
                        tp: int, replicated_bytes: int = 0) -> int:
    """What one GPU of a `tp` group holds: its share of the split weights and of the
    KV cache of a full batch (key-value heads are split across the group too), and
    the `replicated_bytes` of weights the tp plan keeps whole on every rank."""
    split = weight_bytes - replicated_bytes + kv_bytes_per_token * tokens_per_sequence * batch
    return replicated_bytes + split // tp


def smallest_fitting_tp(weight_bytes: int, kv_bytes_per_token: int, tokens_per_sequence: int, batch: int,
                        budget: int, heads: int, kv_heads: int, most: int = 64, replicated_bytes: int = 0) -> int | None:
    """The smallest tp whose per-GPU share fits `budget` and splits the heads, up to `most` GPUs."""
    for tp in range(1, most + 1):
        if heads_problem(tp, heads, kv_heads) is None and layout_memory_bytes(
                weight_bytes, kv_bytes_per_token, tokens_per_sequence, batch, tp, replicated_bytes) <= budget:
            return tp
    return None


@lru_cache(maxsize=32)
def tp_plan_of(model_type: str) -> dict | None:
    """transformers' tensor-parallel plan for a model type, or None where it has
    none. Asked in a child process: a model's config class imports torch, which
    the page's process never loads."""
    code = ("import json, sys\nfrom transformers import AutoConfig\n"
            "try:\n    plan = AutoConfig.for_model(sys.argv[1]).base_model_tp_plan\n"
            "except (KeyError, ValueError):\n    plan = None\nprint(json.dumps(plan or None))")
    try:
        done = subprocess.run([sys.executable, "-c", code, model_type], capture_output=True, text=True, timeout=120)
        return json.loads(done.stdout.strip().splitlines()[-1]) if done.returncode == 0 else None
    except (OSError, subprocess.TimeoutExpired, ValueError, IndexError):
        return None


def layout_name(gpus: int, tp: int | None) -> str:
    """A layout for people: '4 replicas', '2 × tp 2', 'tp 4' (or '1 GPU'); no tp named is replicas."""
    gpus, tp = int(gpus), int(tp or 1)
    if not tp_fits(tp, gpus):
        raise ValueError(f"tp {tp} does not divide {gpus} GPU(s): no such layout")
    if tp == 1:
        return "1 GPU" if gpus == 1 else f"{gpus} replicas"
    if tp == gpus:
        return f"tp {tp}"
    return f"{gpus // tp} × tp {tp}"


def tp_label(tp: int | None) -> str:
    """A tensor-parallel size as a legend names it: 'tp 1 (replicas)', 'tp 2'."""
    tp = int(tp or 1)
    return "tp 1 (replicas)" if tp == 1 else f"tp {tp}"

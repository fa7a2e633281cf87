"""Which runs of a sweep can share one `accelerate launch`. Pure and torch-free.

A launch holds a loaded model in every rank; runs that need the same thing loaded
the same way (model, dtype, device, attention and cache path, compile, tensor-
parallel size, ...) can run one after another inside it. A run on fewer ranks
than the launch has (a smaller GPU count) runs on ranks 0..n-1 over a process
sub-group while the others wait outside its timed region, so one launch of the
largest count serves every count of a sweep.
"""

from __future__ import annotations

from typing import Sequence

from runner.config import RunConfig

LAUNCH_MODES = ("shared", "per-run")
DEFAULT_LAUNCH = "shared"

# What a rank holds after set-up, or what decides how it was set up: runs that
# differ in any of these need a launch of their own.
KEY_FIELDS = (
    "model", "dtype", "device", "attention", "cache", "compile", "continuous_batching", "trust_remote_code",
    "cpu_threads", "num_nodes", "node_rank", "main_address", "main_port", "rdzv_backend", "tp_size",
    # the seed draws the random weights of an `arch:` model at load
    "seed",
)


def launch_key(config: RunConfig) -> tuple:
    """What must be equal for two runs to share a launch. A tensor-parallel run's
    ranks hold shards cut for its own layout, so it shares a launch only with runs
    of the same GPU count (its repeats): no sub-worlds for tensor parallelism."""
    key = tuple((name, getattr(config, name)) for name in KEY_FIELDS)
    if config.tp_size > 1:
        key += (("gpus_per_node", config.gpus_per_node),)
    return key


def can_share(config: RunConfig) -> bool:
    """Multi-node runs keep one launch per run: every node would have to plan the
    same groups, and a node's failure would need relaunching on every node."""
    return config.num_nodes == 1


def group_launches(configs: Sequence[RunConfig], mode: str = DEFAULT_LAUNCH) -> list[list[int]]:
    """Positions of a sweep's runs (in the sweep's order) grouped into launches.

    `per-run`: one launch per run. `shared`: one launch per launch key, in the
    order each key first appears; inside a launch the runs keep the sweep's order
    (counts inside repeats), so drift on the machine still spreads over every count.
    """
    if mode not in LAUNCH_MODES:
        raise ValueError(f"launch must be one of {', '.join(LAUNCH_MODES)}; got {mode!r}")
    if mode == "per-run":
        return [[i] for i in range(len(configs))]
    groups: dict[tuple, list[int]] = {}
    alone: list[list[int]] = []
    order: list[tuple] = []
    for i, config in enumerate(configs):
        if not can_share(config):
            alone.append([i])
            order.append(("alone", len(alone) - 1))
            continue
        key = launch_key(config)
        if key not in groups:
            groups[key] = []
            order.append(("key", key))
        groups[key].append(i)
    return [alone[ref] if kind == "alone" else groups[ref] for kind, ref in order]


def launch_world(configs: Sequence[RunConfig]) -> int:
    """Processes per node of a launch: its largest run's."""
    return max(c.gpus_per_node for c in configs)

"""Process sub-groups for the runs of a shared launch (runner.host.launch_groups).

A run of n ranks inside a launch of more runs on ranks 0..n-1: its barrier and
its gather go over a sub-group of those ranks, never the world, so the ranks
above wait outside its timed region. Every collective here is reached by every
rank of its group whatever happened on it (a failure travels as a value), so a
run that fails on one rank never leaves another waiting. Imports torch lazily;
only workers use it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence


@dataclass
class SubWorlds:
    world: int
    groups: dict  # n -> process group (None: the whole world, or a world of one)
    waiting: object = None  # the whole world over gloo, where ranks outside a run wait for it

    def group(self, n: int):
        return self.groups.get(n)


def make_subworlds(world: int, counts: Sequence[int], wait_s: float = 3600.0,
                   timeout_s: float | None = None) -> SubWorlds:
    """One group per distinct count below the world, and a waiting room: the world
    again, over gloo with a timeout as long as the launch's runs may take (the
    default group's, 10-30 minutes, would end ranks that wait out a long run; and
    on GPUs a waiting rank then holds no kernel spinning on its device).
    Every other group of this rank (the default, a tensor-parallel mesh's, the
    runs') gets `timeout_s`, the longest a run may take: see `bound_groups`.
    torch.distributed.new_group must be called by every rank, in the same order:
    once per launch, sorted."""
    from datetime import timedelta

    import torch.distributed as dist

    groups: dict = {}
    waiting = None
    if world > 1 and dist.is_initialized():
        timeout = timedelta(seconds=timeout_s) if timeout_s else None
        for n in sorted(set(counts)):
            if 1 < n < world:
                groups[n] = dist.new_group(ranks=list(range(n)), timeout=timeout)
        if timeout_s:
            bound_groups(timeout_s)
        waiting = dist.new_group(backend="gloo", timeout=timedelta(seconds=wait_s))
    return SubWorlds(world=world, groups=groups, waiting=waiting)


def bound_groups(seconds: float) -> None:
    """Every process group this rank is in times out after `seconds`. A group made
    without a timeout gets the backend's default whatever the default group's is
    (new_group does not inherit it): 10 minutes on NCCL, 30 on gloo. Longer than the
    run's limit it only outlives the run; shorter, it ends a run that is allowed to
    take longer. torch.distributed has no public setter: `_set_pg_timeout` is the one
    DeviceMesh users are pointed to."""
    from datetime import timedelta

    from torch.distributed import distributed_c10d as c10d

    for group in list(c10d._world.pg_map):
        c10d._set_pg_timeout(timedelta(seconds=seconds), group)


def _active(n: int) -> bool:
    import torch.distributed as dist

    return n > 1 and dist.is_initialized()


def all_gather(value: Any, n: int, subworlds: SubWorlds) -> list:
    """Every rank's `value`, on every rank of the n-rank group (rank order)."""
    import torch.distributed as dist

    if not _active(n):
        return [value]
    out: list = [None] * n
    dist.all_gather_object(out, value, group=subworlds.group(n))
    return out


def gather_to_first(value: Any, n: int, rank: int, subworlds: SubWorlds) -> list | None:
    """Every rank's `value` on rank 0 (rank order); None on the others."""
    import torch.distributed as dist

    if not _active(n):
        return [value]
    out = [None] * n if rank == 0 else None
    dist.gather_object(value, out, dst=0, group=subworlds.group(n))
    return out


def barrier(n: int, subworlds: SubWorlds) -> None:
    import torch.distributed as dist

    if _active(n):
        dist.barrier(group=subworlds.group(n))


def world_barrier(subworlds: SubWorlds) -> None:
    """Where ranks outside a run wait for it to end."""
    import torch.distributed as dist

    if subworlds.waiting is not None:
        dist.barrier(group=subworlds.waiting)


def free_memory(device: str) -> None:
    """What a run left behind (a failed one especially), before the next run."""
    import gc

    gc.collect()
    if device.startswith("cuda"):
        import torch

        torch.cuda.empty_cache()

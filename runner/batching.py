"""Pure functions that decide which prompts go together: torch-free, shared by
the worker, the planner and the analysis."""

from __future__ import annotations

from typing import Sequence


def split_contiguous(num_items: int, world_size: int) -> list[range]:
    """The split `accelerate`'s `split_between_processes` makes: contiguous
    slices, the first `num_items % world_size` ranks taking one item more."""
    base, extra = divmod(num_items, world_size)
    slices, start = [], 0
    for rank in range(world_size):
        size = base + (1 if rank < extra else 0)
        slices.append(range(start, start + size))
        start += size
    return slices


def make_batches(
    indices: Sequence[int],
    batch_size: int,
    lengths: Sequence[int] | None = None,
    sort_by_length: bool = False,
) -> list[list[int]]:
    """Chunks of `batch_size` prompt indices. Sorting by length (longest first)
    puts prompts of similar length together, so less of each batch is padding;
    the caller restores the original order from the indices."""
    order = list(indices)
    if sort_by_length:
        if lengths is None:
            raise ValueError("sorting by length needs the prompt lengths")
        order.sort(key=lambda i: (-lengths[i], i))
    return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]


def padded_positions(batches: Sequence[Sequence[int]], lengths: Sequence[int]) -> int:
    """Prompt positions that are padding when each batch is padded to its longest prompt."""
    waste = 0
    for batch in batches:
        longest = max(lengths[i] for i in batch)
        waste += sum(longest - lengths[i] for i in batch)
    return waste


def warmup_shapes(batches: Sequence[Sequence[int]], every_size: bool) -> list[list[int]]:
    """The batches a rank warms up with before its timer starts.

    Eager generate needs one: the first call pays the one-time costs (allocator,
    kernel selection). A compiled generate needs one batch of every size it will
    be timed on: transformers compiles only the decode step, whose shape with a
    static cache (one length for the whole run) is the batch size alone; prefill
    runs uncompiled, so prompt length adds no shape."""
    if not batches:
        return []
    if not every_size:
        return [list(batches[0])]
    by_size: dict[int, list[int]] = {}
    for batch in batches:
        by_size.setdefault(len(batch), list(batch))
    return list(by_size.values())

"""One run ("cell") of a launch on this rank: its batches, its warm-up, the barrier
and the timed generate loop, then every rank's record gathered to rank 0, which
writes the run's result (`runner.rank.result_file`)."""

from __future__ import annotations

import os
import socket
import time
import traceback
from dataclasses import dataclass

from runner.batching import make_batches, split_contiguous, warmup_shapes
from runner.config import RunConfig
from runner.events import emit
from runner.layout import Layout
from runner.metrics import request_latencies
from runner.rank import fault_hooks
from runner.rank.accounting import count_generated
from runner.rank.generation import BatchOutput, Generator, path_name
from runner.rank.rank_process import leave_failed_tensor_group, rank_uuid
from runner.rank.rank_roofline import rank_roofline
from runner.rank.result_file import finish_failed, write_result

COMM_SAMPLE_TOKENS = 8  # new tokens of the profiled sample batch: enough decode steps, little time


class Timeline:
    def __init__(self) -> None:
        self.spans: list[dict] = []

    def span(self, phase: str, start: float, end: float, **extra) -> None:
        self.spans.append({"phase": phase, "start": start, "end": end, **extra})


@dataclass
class Loaded:
    """What a launch holds for all its runs: set up once, used by every cell."""

    state: object
    rank: int
    device: str  # torch device of this rank
    device_kind: str  # "cuda" | "cpu", as the job said
    dtype_name: str
    model: object
    tokenizer: object
    eos: list
    expected: list
    subworlds: object
    warmed: set  # shapes this rank has already generated (`Generator.warm_shape`)


def my_batches(cell: dict, config: RunConfig, rank: int, lengths: list[int]) -> list[list[int]]:
    """This rank's batches of the run: its copy of the model's (its data-parallel
    group's) share of the prompts, the plan's (mode auto) or the contiguous split
    `accelerate` makes; every rank of a tensor group runs the same batches."""
    layout = Layout(config.world_size, config.tp_size)
    group = layout.dp_rank(rank)
    plan = cell.get("plan")
    if plan and plan.get("assignment"):
        batches = [list(b) for b in plan["assignment"][group]]
    else:
        mine = list(split_contiguous(len(config.prompts), layout.dp)[group])
        size = 1 if config.mode == "simple" else config.batch_size
        batches = make_batches(mine, size, lengths, sort_by_length=config.sort_by_length and size > 1)
    if config.continuous_batching and batches:
        # the continuous-batching manager schedules a rank's prompts itself
        batches = [[i for b in batches for i in b]]
    return batches


def warmup_batches(cell: dict, rank: int, batches: list[list[int]], compiled: bool) -> list[list[int]]:
    """This rank's warm-up batches: the plan's (mode auto), else `warmup_shapes`."""
    planned = cell.get("warmup_batches")
    if planned:
        return planned[rank] if rank < len(planned) else []
    return warmup_shapes(batches, every_size=compiled)


def run_cell(index: int, cell: dict, config: RunConfig, held: Loaded) -> None:
    """One run of the launch on ranks 0..n-1: its warm-up for shapes this rank has
    not run yet, barrier, timer, gather and result file (written by rank 0).

    A failure on any rank (out of memory at a large batch, say) fails the run, not
    the launch: it travels to the run's other ranks at its next collective, so none
    waits for a rank that gave up; rank 0 writes it as the run's result."""
    from accelerate.utils import set_seed

    from runner.environment import node_fingerprint
    from runner.rank.cuda import legacy_peak_bytes, memory_peaks, synchronize
    from runner.rank.energy import EnergyMeter
    from runner.rank.subworld import all_gather, barrier, gather_to_first

    rank, n, device, sub = held.rank, config.world_size, held.device, held.subworlds
    layout = Layout(n, config.tp_size)
    # the leader of each tensor group reports its group's outputs; the others hold the same tokens
    leader = layout.tp_rank(rank) == 0
    cell_start = time.time()
    timeline = Timeline()
    error = None
    try:
        lengths = [len(ids) for ids in held.tokenizer(list(config.prompts))["input_ids"]]
        batches = my_batches(cell, config, rank, lengths)
        my_count = sum(len(b) for b in batches)
        # One static-cache length for the whole run, so compiled decode shapes repeat.
        generate = Generator(held.model, held.tokenizer, config, device, config.prompts,
                             static_cache_len=max(lengths) + config.max_new_tokens)
        set_seed(config.seed)
        if config.warmup and batches:
            t = time.time()
            emit("phase", rank=rank, phase="warmup", cell=index)
            for batch in warmup_batches(cell, layout.dp_rank(rank), batches, compiled=config.compile):
                # on the static path the shape includes this run's pooled cache, which the timed batches reuse
                shape = generate.warm_shape(len(batch), max(lengths[i] for i in batch), config.max_new_tokens)
                if shape not in held.warmed:  # a shape this process ran before is warm already
                    generate(batch, min(config.max_new_tokens, cell.get("warmup_tokens") or 8))
                    held.warmed.add(shape)
            timeline.span("warmup", t, time.time())
    except Exception as exc:
        error = f"{type(exc).__name__}: {exc}"
        traceback.print_exc()
        leave_failed_tensor_group(layout.tp_size, rank, error)
    ready = all_gather(error, n, sub)  # every rank of the run reports before any times
    if any(ready):
        return finish_failed(index, cell, rank, ready, cell_start)

    if held.device_kind == "cuda":
        import torch

        torch.cuda.reset_peak_memory_stats()
    meter = EnergyMeter(device, rank_uuid(device, held.expected, held.state.local_process_index))
    meter.open()  # NVML's start-up takes a different time on each rank: never between barrier and timer
    t = time.time()
    # kernels still queued from loading (or warm-up) must not run on the timed clock
    synchronize(device)
    barrier(n, sub)
    # one seed per copy of the model: the ranks of a tensor group must sample the same tokens
    set_seed(config.seed + layout.dp_rank(rank))
    synchronize(device)  # an NCCL barrier queues work of its own
    timeline.span("barrier", t, time.time())
    emit("phase", rank=rank, phase="generate", total=my_count, cell=index)
    # the timer starts last: every request is submitted now, so the first batch waits for nothing
    meter.start()
    start = time.perf_counter()
    outputs, done, prompt_positions = [], 0, 0
    calls: list[tuple[list[int], int]] = []  # (padded prompt lengths, decode steps) per timed call
    try:
        for b, batch in enumerate(batches):
            fault_hooks.fail_cell(index, rank, n)
            t = time.time()
            out: BatchOutput = generate(batch, config.max_new_tokens)
            prompt_positions += out.prompt_positions
            calls.append((out.prompt_lengths, out.steps))
            for row, (i, seq) in enumerate(zip(batch, out.generated)):
                count = count_generated(seq, held.eos)
                text = held.tokenizer.decode(seq[: count.tokens], skip_special_tokens=True)
                latency = (request_latencies(start, out.starts[row], out.token_times[row], count.tokens)
                           if config.latency and out.starts else {})
                outputs.append({"prompt_index": i, "rank": rank, "prompt": config.prompts[i], "output": text,
                                "tokens": count.tokens, "raw_tokens": count.raw_tokens,
                                "token_ids": [int(t) for t in seq[: count.tokens]], **latency})
            timeline.span("generate", t, time.time(), batch=b, size=len(batch))
            done += len(batch)
            if leader:  # this batch's outputs now, so a run that fails later still keeps them (partial)
                emit("outputs", rank=rank, batch=b, cell=index, outputs=outputs[len(outputs) - len(batch):])
                emit("progress", rank=rank, done=done, total=my_count, cell=index,
                     tokens=sum(o["tokens"] for o in outputs))
            fault_hooks.pause("batch")
        synchronize(device)
        seconds = time.perf_counter() - start
        meter.stop()
        # before the roofline figures, whose bandwidth probe allocates buffers of its own
        peaks = memory_peaks(device)
        t = time.time()
        roofline = rank_roofline(held.model, calls, seconds, device, rank, layout.tp_size, generate.path,
                                 generate.static_cache_len)
        timeline.span("roofline", t, time.time())
        comm = None
        if layout.tp_size > 1 and batches:
            from runner.rank.tensor_parallel import measure_comm

            t = time.time()
            comm = measure_comm(generate, batches[0], min(config.max_new_tokens, COMM_SAMPLE_TOKENS), device)
            timeline.span("comm-sample", t, time.time())
    except Exception as exc:
        error = f"{type(exc).__name__}: {exc}"
        traceback.print_exc()
        leave_failed_tensor_group(layout.tp_size, rank, error)
    t = time.time()
    record = {"error": error} if error else {
        "rank": rank,
        "tp_rank": layout.tp_rank(rank),
        "dp_rank": layout.dp_rank(rank),
        "node": config.node_rank,
        "hostname": socket.gethostname(),
        "pid": os.getpid(),
        "num_prompts": my_count,
        "tokens": sum(o["tokens"] for o in outputs),
        "raw_tokens": sum(o["raw_tokens"] for o in outputs),
        "prompt_positions": prompt_positions,
        "seconds": seconds,
        "peak_memory_bytes": legacy_peak_bytes(peaks),
        **peaks,
        "energy": meter.to_dict(),
        "generate_path": path_name(config),
        "roofline": roofline,
        "comm": comm,
        "outputs": outputs if leader else [],
        "environment": node_fingerprint() if held.state.local_process_index == 0 else None,
        "timeline": timeline.spans,
    }
    gathered = gather_to_first(record, n, rank, sub)
    gather_end = time.time()
    if rank != 0:
        return None
    errors = [g.get("error") for g in gathered]
    if any(errors):
        return finish_failed(index, cell, rank, errors, cell_start)
    gathered[0]["timeline"].append({"phase": "gather", "start": t, "end": gather_end})
    write_result(cell, config, gathered, held.device_kind, held.dtype_name,
                 wall=[cell_start, time.time()])
    emit("cell-end", rank=rank, cell=index, status="succeeded")
    return None

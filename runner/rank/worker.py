"""The script `accelerate launch` runs on every rank.

Reads a job file (JSON), loads the model once, then runs the launch's runs
("cells", `runner.host.launch_groups`) one after another, each on ranks 0..n-1 of the
launch (`runner.rank.subworld`), and reports progress as JSON lines on stdout
(`runner.events`), a run's tagged with its cell index. A run's ranks meet at a
barrier after its warm-up; each rank times its own generation from there, and the
run's time is the slowest rank's. Rank 0 writes each run's result file.
"""

from __future__ import annotations

import time

PROCESS_START = time.time()

import argparse  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import socket  # noqa: E402
import sys  # noqa: E402
import traceback  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from pathlib import Path  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from runner.batching import make_batches, split_contiguous, warmup_shapes  # noqa: E402
from runner.config import RunConfig  # noqa: E402
from runner.events import emit  # noqa: E402
from runner.layout import Layout  # noqa: E402
from runner.metrics import request_latencies  # noqa: E402
from runner.metrics import run_summary as run_latency  # noqa: E402
from runner.rank import fault_hooks  # noqa: E402
from runner.rank.accounting import count_generated  # noqa: E402
from runner.rank.generation import BatchOutput, Generator, path_name  # noqa: E402
from runner.rank.rank_process import guard_rank, leave_failed_tensor_group, rank_uuid  # noqa: E402


class Timeline:
    def __init__(self) -> None:
        self.spans: list[dict] = []

    def span(self, phase: str, start: float, end: float, **extra) -> None:
        self.spans.append({"phase": phase, "start": start, "end": end, **extra})


def load_model_and_tokenizer(spec: dict, config: RunConfig, device: str, dtype_name: str, state, layout: Layout):
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging as transformers_logging

    from runner.paths import models_dir
    from runner.rank.cuda import pretrained_load_kwargs
    from runner.tiny import byte_tokenizer_folder, ensure_tiny

    # the run streams its own progress; per-rank loading bars only clutter the log tail
    transformers_logging.disable_progress_bar()
    dtype = getattr(torch, dtype_name)
    kwargs = {"dtype": dtype}
    if config.attention != "auto":
        kwargs["attn_implementation"] = config.attention
    kind, path = spec["kind"], spec["path"]
    if kind == "tiny":
        with state.local_main_process_first():
            ensure_tiny(path)
    if kind == "arch":
        if layout.tp > 1:  # refused before launch too: from_config takes no tensor-parallel plan
            raise ValueError("arch: models are built by from_config, which transformers does not shard; use tp 1")
        raw = json.loads(Path(path).read_text())
        model_type = raw.pop("model_type")
        raw.pop("architectures", None)
        model_config = AutoConfig.for_model(model_type, **raw)
        if config.attention != "auto":
            model_config._attn_implementation = config.attention
        with state.local_main_process_first():
            tok_folder = byte_tokenizer_folder(models_dir())
        torch.manual_seed(config.seed)
        with torch.device(device):
            model = AutoModelForCausalLM.from_config(model_config, dtype=dtype)
        tokenizer = AutoTokenizer.from_pretrained(tok_folder)
    elif layout.tp > 1:
        from runner.rank.tensor_parallel import load_sharded

        model = load_sharded(path, layout, device, trust_remote_code=config.trust_remote_code, **kwargs)
        tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=config.trust_remote_code)
    else:
        placement, move = pretrained_load_kwargs(device)
        model = AutoModelForCausalLM.from_pretrained(
            path, trust_remote_code=config.trust_remote_code, **kwargs, **placement
        )
        if move:
            model = model.to(device)
        tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=config.trust_remote_code)
    model.eval()
    tokenizer.padding_side = "left"
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return model, tokenizer


def eos_ids(model, tokenizer) -> list[int]:
    ids = model.generation_config.eos_token_id
    ids = list(ids) if isinstance(ids, (list, tuple)) else ([] if ids is None else [ids])
    if tokenizer.eos_token_id is not None and tokenizer.eos_token_id not in ids:
        ids.append(tokenizer.eos_token_id)
    return ids


def rank_roofline(model, calls: list[tuple[list[int], int]], seconds: float, device: str, rank: int,
                  tp: int = 1, path: str = "plain", static_cache_len: int | None = None) -> dict:
    """Bytes this rank had to move (weights + KV cache traffic per decode step, as
    its generation path's cache moves it) over its generation time, against its
    device's peak bandwidth. A rank of a tensor group holds its share of the
    weights and of the key-value heads."""
    from runner.planner import shape_from_config
    from runner.rank.cuda import free_device_bytes, probe_decision
    from runner.roofline import (
        CACHE_OF_PATH,
        MEASURED_LABEL,
        known_bandwidth_gbps,
        measure_copy_bandwidth_gbps,
        traffic,
        utilisation,
    )

    local = [p.to_local() if hasattr(p, "to_local") else p for p in model.parameters()]  # DTensor shards
    weight_bytes = sum(p.numel() * p.element_size() for p in local)
    dtype_name = str(local[0].dtype).replace("torch.", "")
    kv_per_token = shape_from_config(model.config.to_dict(), dtype_name).kv_bytes_per_token // tp
    moved = traffic(weight_bytes, kv_per_token, calls, CACHE_OF_PATH[path], static_cache_len)
    note = None
    if device.startswith("cuda"):
        import torch

        name = torch.cuda.get_device_name(device)
        peak, source = known_bandwidth_gbps(name), f"{name}, data sheet"
        if peak is None:
            note = probe_decision(device, free_device_bytes(device))
            source = f"{name}, {MEASURED_LABEL}"
            if note is None:
                try:
                    peak = measure_copy_bandwidth_gbps(device)
                except torch.OutOfMemoryError:
                    # the figure is extra; the run it follows is complete and must stand
                    torch.cuda.empty_cache()
                    peak, note = None, "bandwidth probe skipped: out of device memory"
    else:
        # no table for CPUs: a single-threaded copy measures what one rank can stream
        peak, source = measure_copy_bandwidth_gbps("cpu", megabytes=128, repeats=3), f"CPU, {MEASURED_LABEL}"
    figures = utilisation(moved["bytes"], seconds, peak)
    return {**moved, **figures, "peak_source": source, "peak_note": note, "weight_bytes": weight_bytes,
            "kv_bytes_per_token": kv_per_token, "decode_steps": sum(steps for _, steps in calls), "rank": rank}


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


def job_cells(job: dict) -> list[dict]:
    """The runs of a launch: `cells` (config, result_path, plan, warmup_batches
    each), or the one run of a job written before launches were shared."""
    if job.get("cells"):
        return list(job["cells"])
    return [{k: job.get(k) for k in ("config", "result_path", "plan", "warmup_batches")}]


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


def run(job: dict) -> int:
    from datetime import timedelta

    import torch
    import torch.distributed as dist
    from accelerate import PartialState

    from runner.rank.cuda import check_device
    from runner.rank.subworld import free_memory, make_subworlds, world_barrier

    imported = time.time()
    cells = job_cells(job)
    configs = [RunConfig.from_dict(c["config"]) for c in cells]
    first = configs[0]
    world = int(job.get("world_size") or max(c.world_size for c in configs))
    device, dtype_name = job["device"], job["dtype"]
    # no collective may wait longer than a run may take (the launcher ends a run at its limit);
    # the default would be 10 minutes on NCCL, too short for a long load or warm-up
    limit = max(c.timeout_s for c in configs)
    state = PartialState(cpu=(device == "cpu"), timeout=timedelta(seconds=limit))
    rank = state.process_index
    emit("started", rank=rank, pid=os.getpid(), hostname=socket.gethostname(), time=PROCESS_START)

    if state.num_processes != world:
        emit("error", rank=rank, message=f"world size is {state.num_processes}, the run asked for {world}")
        return 3
    if device == "cuda":
        torch.cuda.set_device(state.local_process_index)
        torch_device = f"cuda:{state.local_process_index}"
        check_device(torch_device, job.get("expected_devices") or [], state.local_process_index)
    else:
        torch.set_num_threads(first.cpu_threads)
        torch_device = "cpu"

    t = time.time()
    emit("phase", rank=rank, phase="load")
    fault_hooks.pause("load")
    # a tensor-parallel launch holds runs of one GPU count only (launch_groups), sharded for that world
    model, tokenizer = load_model_and_tokenizer(job["model"], first, torch_device, dtype_name, state,
                                                Layout(world, first.tp_size))
    loaded_at = time.time()
    fault_hooks.fail_in_forward(model, rank, world)
    # the waiting room's timeout: every run's own limit (the launcher enforces each), all together
    subworlds = make_subworlds(world, [c.world_size for c in configs], wait_s=sum(c.timeout_s for c in configs),
                               timeout_s=limit)
    # the launch's own phases, once for all its runs
    emit("launch-phases", rank=rank, imports=[PROCESS_START, imported], load=[t, loaded_at])
    held = Loaded(state=state, rank=rank, device=torch_device, device_kind=device, dtype_name=dtype_name,
                  model=model, tokenizer=tokenizer, eos=eos_ids(model, tokenizer),
                  expected=job.get("expected_devices") or [], subworlds=subworlds, warmed=set())
    for index, (cell, config) in enumerate(zip(cells, configs)):
        emit("cell-start", rank=rank, cell=index, time=time.time())
        if rank < config.world_size:
            run_cell(index, cell, config, held)
        # ranks outside the run wait here, outside its timed region
        world_barrier(subworlds)
        free_memory(torch_device)
    emit("done", rank=rank)
    if dist.is_initialized():
        dist.destroy_process_group()
    return 0


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
        leave_failed_tensor_group(layout.tp, rank, error)
    ready = all_gather(error, n, sub)  # every rank of the run reports before any times
    if any(ready):
        return _finish_failed(index, cell, config, held, ready, cell_start)

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
        roofline = rank_roofline(held.model, calls, seconds, device, rank, layout.tp, generate.path,
                                 generate.static_cache_len)
        timeline.span("roofline", t, time.time())
        comm = None
        if layout.tp > 1 and batches:
            from runner.rank.tensor_parallel import measure_comm

            t = time.time()
            comm = measure_comm(generate, batches[0], min(config.max_new_tokens, COMM_SAMPLE_TOKENS), device)
            timeline.span("comm-sample", t, time.time())
    except Exception as exc:
        error = f"{type(exc).__name__}: {exc}"
        traceback.print_exc()
        leave_failed_tensor_group(layout.tp, rank, error)
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
        return _finish_failed(index, cell, config, held, errors, cell_start)
    gathered[0]["timeline"].append({"phase": "gather", "start": t, "end": gather_end})
    write_result(cell, config, gathered, held.device_kind, held.dtype_name,
                 wall=[cell_start, time.time()])
    emit("cell-end", rank=rank, cell=index, status="succeeded")
    return None


def _finish_failed(index: int, cell: dict, config: RunConfig, held: Loaded, errors: list, cell_start: float) -> None:
    """A run that failed inside a live launch: rank 0 stores why, and the launch goes on."""
    if held.rank != 0:
        return None
    message = "; ".join(f"rank {r}: {e}" for r, e in enumerate(errors) if e)
    _write_json(Path(cell["result_path"]), {"status": "failed", "error": message,
                                            "wall": [cell_start, time.time()]})
    emit("cell-end", rank=0, cell=index, status="failed", error=message)
    return None


def write_result(cell: dict, config: RunConfig, records: list[dict], device: str, dtype_name: str,
                 wall: list[float] | None = None) -> None:
    records = sorted(records, key=lambda r: r["rank"])
    outputs = sorted((o for r in records for o in r.pop("outputs")), key=lambda o: o["prompt_index"])
    seconds = max(r["seconds"] for r in records)
    # a tensor group's ranks generate the same tokens together: count each group once, by its leader
    leaders = [r for r in records if r.get("tp_rank", 0) == 0]
    tokens = sum(r["tokens"] for r in leaders)
    environment = {"nodes": [r.pop("environment") for r in records if r.get("environment")]}
    result = {
        "status": "succeeded",
        "tokens": tokens,
        "raw_tokens": sum(r["raw_tokens"] for r in leaders),
        "seconds": seconds,
        "tokens_per_second": tokens / seconds if seconds > 0 else None,
        "world_size": len(records),
        "device": device,
        "dtype": dtype_name,
        "ranks": records,
        "outputs": outputs,
        "environment": environment,
        "latency": run_latency(outputs) if config.latency else None,
        "wall": wall,  # the run's start and end inside its launch (time.time)
    }
    _write_json(Path(cell["result_path"]), result)


def _write_json(path: Path, data: dict) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data))
    tmp.replace(path)


COMM_SAMPLE_TOKENS = 8  # new tokens of the profiled sample batch: enough decode steps, little time


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Scaling Studio worker (run by accelerate launch)")
    parser.add_argument("--job", required=True, help="path of the job JSON file")
    args = parser.parse_args(argv)
    guard_rank()
    job = json.loads(Path(args.job).read_text())
    try:
        return run(job)
    except Exception as exc:  # report, then fail the rank so the launcher sees it
        emit("error", rank=int(os.environ.get("RANK", 0)), message=f"{type(exc).__name__}: {exc}")
        traceback.print_exc()
        return 1


if __name__ == "__main__":
    code = main()
    # Everything is reported and written by now. Leave without the interpreter's
    # teardown: the C++ destructors of torch's distributed backends occasionally
    # abort there ("terminate called without an active exception", SIGABRT seen once
    # in ~300 CPU runs), which would fail a run whose results are complete.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)

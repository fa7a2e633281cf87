"""The script `accelerate launch` runs on every rank.

Reads a job file (JSON), generates its share of the prompts, and reports progress
as JSON lines on stdout (`runner.events`). All ranks meet at a barrier after model
load and warm-up; each rank times its own generation from there, and the run's
time is the slowest rank's. Rank 0 writes the result file.
"""

from __future__ import annotations

import time

PROCESS_START = time.time()

import argparse  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import resource  # noqa: E402
import socket  # noqa: E402
import sys  # noqa: E402
import traceback  # noqa: E402
from pathlib import Path  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from runner.accounting import count_generated  # noqa: E402
from runner.batching import make_batches  # noqa: E402
from runner.config import RunConfig  # noqa: E402
from runner.events import emit  # noqa: E402


class Timeline:
    def __init__(self) -> None:
        self.spans: list[dict] = []

    def span(self, phase: str, start: float, end: float, **extra) -> None:
        self.spans.append({"phase": phase, "start": start, "end": end, **extra})


def load_model_and_tokenizer(spec: dict, config: RunConfig, device: str, dtype_name: str, state):
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    from runner.paths import models_dir
    from runner.tiny import byte_tokenizer_folder, ensure_tiny

    dtype = getattr(torch, dtype_name)
    kwargs = {"dtype": dtype}
    if config.attention != "auto":
        kwargs["attn_implementation"] = config.attention
    kind, path = spec["kind"], spec["path"]
    if kind == "tiny":
        with state.local_main_process_first():
            ensure_tiny(path)
    if kind == "arch":
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
    else:
        model = AutoModelForCausalLM.from_pretrained(
            path, trust_remote_code=config.trust_remote_code, **kwargs
        ).to(device)
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


def generate_kwargs(config: RunConfig, tokenizer, max_new_tokens: int) -> dict:
    kwargs = {
        "max_new_tokens": max_new_tokens,
        "do_sample": config.do_sample,
        "pad_token_id": tokenizer.pad_token_id,
    }
    if config.fixed_length:
        kwargs["min_new_tokens"] = max_new_tokens
    if config.do_sample:
        kwargs.update(temperature=config.temperature, top_p=config.top_p, top_k=config.top_k)
    else:
        # the model's generation_config may carry sampling defaults; greedy means greedy
        kwargs.update(temperature=None, top_p=None, top_k=None)
    if config.cache == "static":
        kwargs["cache_implementation"] = "static"
    return kwargs


def peak_memory_bytes(device: str) -> int:
    if device == "cuda":
        import torch

        return int(torch.cuda.max_memory_allocated())
    # CPU: the process's peak resident set (ru_maxrss is KiB on Linux)
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024


def my_batches(job: dict, config: RunConfig, state, lengths: list[int]) -> list[list[int]]:
    plan = job.get("plan")
    if plan and plan.get("assignment"):
        return [list(b) for b in plan["assignment"][state.process_index]]
    with state.split_between_processes(list(range(len(config.prompts)))) as mine:
        mine = list(mine)
    size = 1 if config.mode == "simple" else config.batch_size
    return make_batches(mine, size, lengths, sort_by_length=config.sort_by_length and size > 1)


def run(job: dict) -> int:
    import torch
    import torch.distributed as dist
    from accelerate import PartialState
    from accelerate.utils import gather_object, set_seed

    from runner.environment import node_fingerprint

    imported = time.time()
    config = RunConfig.from_dict(job["config"])
    device, dtype_name = job["device"], job["dtype"]
    state = PartialState(cpu=(device == "cpu"))
    rank = state.process_index
    timeline = Timeline()
    timeline.span("imports", PROCESS_START, imported)
    emit("started", rank=rank, pid=os.getpid(), hostname=socket.gethostname(), time=PROCESS_START)

    if state.num_processes != config.world_size:
        emit("error", rank=rank, message=f"world size is {state.num_processes}, the run asked for {config.world_size}")
        return 3
    if device == "cuda":
        torch.cuda.set_device(state.local_process_index)
        torch_device = f"cuda:{state.local_process_index}"
    else:
        torch.set_num_threads(config.cpu_threads)
        torch_device = "cpu"

    t = time.time()
    emit("phase", rank=rank, phase="load")
    model, tokenizer = load_model_and_tokenizer(job["model"], config, torch_device, dtype_name, state)
    timeline.span("load", t, time.time())
    eos = eos_ids(model, tokenizer)

    # Both modes tokenise the same way: one call per batch, simple mode being batches of one.
    lengths = [len(ids) for ids in tokenizer(list(config.prompts))["input_ids"]]
    batches = my_batches(job, config, state, lengths)
    my_count = sum(len(b) for b in batches)

    def generate(batch: list[int], max_new_tokens: int):
        enc = tokenizer([config.prompts[i] for i in batch], return_tensors="pt", padding=True).to(torch_device)
        with torch.inference_mode():
            out = model.generate(**enc, **generate_kwargs(config, tokenizer, max_new_tokens))
        return out[:, enc["input_ids"].shape[1] :].tolist(), int(enc["attention_mask"].numel())

    set_seed(config.seed)
    if config.warmup and batches:
        t = time.time()
        emit("phase", rank=rank, phase="warmup")
        shapes = job.get("warmup_batches") or [batches[0]]
        for batch in shapes:
            generate(batch, min(config.max_new_tokens, job.get("warmup_tokens", 8)))
        timeline.span("warmup", t, time.time())
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()

    t = time.time()
    state.wait_for_everyone()
    set_seed(config.seed + rank)
    start = time.perf_counter()
    timeline.span("barrier", t, time.time())
    emit("phase", rank=rank, phase="generate", total=my_count)

    outputs, done, prompt_positions = [], 0, 0
    for b, batch in enumerate(batches):
        t = time.time()
        generated, positions = generate(batch, config.max_new_tokens)
        prompt_positions += positions
        for index, seq in zip(batch, generated):
            count = count_generated(seq, eos)
            text = tokenizer.decode(seq[: count.tokens], skip_special_tokens=True)
            outputs.append(
                {
                    "prompt_index": index,
                    "rank": rank,
                    "prompt": config.prompts[index],
                    "output": text,
                    "tokens": count.tokens,
                    "raw_tokens": count.raw_tokens,
                }
            )
        timeline.span("generate", t, time.time(), batch=b, size=len(batch))
        done += len(batch)
        emit("progress", rank=rank, done=done, total=my_count, tokens=sum(o["tokens"] for o in outputs))
    if device == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - start

    t = time.time()
    record = {
        "rank": rank,
        "node": config.node_rank,
        "hostname": socket.gethostname(),
        "pid": os.getpid(),
        "num_prompts": my_count,
        "tokens": sum(o["tokens"] for o in outputs),
        "raw_tokens": sum(o["raw_tokens"] for o in outputs),
        "prompt_positions": prompt_positions,
        "seconds": seconds,
        "peak_memory_bytes": peak_memory_bytes(device),
        "outputs": outputs,
        "environment": node_fingerprint() if state.local_process_index == 0 else None,
        "timeline": timeline.spans,
    }
    gathered = gather_object([record])
    gather_end = time.time()
    state.wait_for_everyone()
    if state.is_main_process:
        gathered[0]["timeline"].append({"phase": "gather", "start": t, "end": gather_end})
        write_result(job, config, gathered, device, dtype_name)
    emit("done", rank=rank)
    if dist.is_initialized():
        dist.destroy_process_group()
    return 0


def write_result(job: dict, config: RunConfig, records: list[dict], device: str, dtype_name: str) -> None:
    records = sorted(records, key=lambda r: r["rank"])
    outputs = sorted((o for r in records for o in r.pop("outputs")), key=lambda o: o["prompt_index"])
    seconds = max(r["seconds"] for r in records)
    tokens = sum(r["tokens"] for r in records)
    environment = {"nodes": [r.pop("environment") for r in records if r.get("environment")]}
    result = {
        "status": "succeeded",
        "tokens": tokens,
        "raw_tokens": sum(r["raw_tokens"] for r in records),
        "seconds": seconds,
        "tokens_per_second": tokens / seconds if seconds > 0 else None,
        "world_size": len(records),
        "device": device,
        "dtype": dtype_name,
        "ranks": records,
        "outputs": outputs,
        "environment": environment,
    }
    path = Path(job["result_path"])
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(result))
    tmp.replace(path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Scaling Studio worker (run by accelerate launch)")
    parser.add_argument("--job", required=True, help="path of the job JSON file")
    args = parser.parse_args(argv)
    job = json.loads(Path(args.job).read_text())
    try:
        return run(job)
    except Exception as exc:  # report, then fail the rank so the launcher sees it
        emit("error", rank=int(os.environ.get("RANK", 0)), message=f"{type(exc).__name__}: {exc}")
        traceback.print_exc()
        return 1


if __name__ == "__main__":
    sys.exit(main())

"""The steps of the GPU acceptance run (`bench/gpu_check.py` plans and judges them).
Every step returns a dict with `status` ok, skipped (with its `reason`) or error
(with the `error`); without CUDA the GPU steps are skipped, each saying why.
torch is imported inside the steps, so importing this module needs none of it.
"""

from __future__ import annotations

import json
import random
import string
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Callable

BATCH, PROMPT_TOKENS, NEW_TOKENS = 16, 512, 100
STATIC_BATCHES = (16, 16, 8)  # the last, shorter batch is the shape that used to re-record


def machine_facts() -> dict:
    facts: dict = {"date": time.strftime("%Y-%m-%d"), "python": sys.version.split()[0]}
    try:
        smi = subprocess.run(["nvidia-smi", "--query-gpu=name,driver_version,memory.total", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=30).stdout.strip().splitlines()
        if smi:
            name, driver, memory = (smi[0].split(", ") + ["?", "?"])[:3]
            facts.update(gpu=name, driver=driver, gpu_memory=memory)
    except (OSError, subprocess.SubprocessError) as exc:
        facts["nvidia_smi"] = f"{type(exc).__name__}: {exc}"
    for package in ("torch", "transformers", "accelerate"):
        try:
            facts[package] = __import__(package).__version__
        except Exception as exc:  # the JSON says what is missing rather than failing the run
            facts[package] = f"not importable: {exc}"
    try:
        import torch

        facts["cuda"] = torch.version.cuda
    except Exception:
        pass
    return facts


def cuda_missing() -> str | None:
    """Why the GPU steps cannot run here, or None when they can."""
    try:
        import torch
    except Exception as exc:
        return f"torch does not import: {exc}"
    if not torch.cuda.is_available():
        return "no CUDA device (torch.cuda.is_available() is False): the GPU steps need one"
    return None


def timed(step: Callable[[], dict]) -> dict:
    start = time.perf_counter()
    try:
        out = step()
    except Exception as exc:  # a broken step is reported in the JSON, and the others still run
        out = {"status": "error", "error": f"{type(exc).__name__}: {exc}", "traceback": traceback.format_exc()[-3000:]}
    out.setdefault("status", "ok")
    out["seconds"] = round(time.perf_counter() - start, 3)
    return out


def run_steps(save: Callable[[dict], None] = lambda steps: None) -> dict:
    """Every step in order; `save` gets the results so far after each (a run stopped
    by its time limit keeps what it measured)."""
    steps: dict = {"doctor": timed(doctor)}
    save(steps)
    reason = cuda_missing()
    if reason:
        for name in ("load", "latency", "nccl", "static_compile"):
            steps[name] = {"status": "skipped", "reason": reason}
        save(steps)
        return steps
    held: dict = {}
    plan = (("load", lambda: load(held)), ("latency", lambda: latency(held)), ("nccl", nccl),
            ("static_compile", lambda: static_compile(held)))
    for name, step in plan:
        if name in ("latency", "static_compile") and "model" not in held:
            steps[name] = {"status": "skipped", "reason": "the model did not load"}
        else:
            steps[name] = timed(step)
        save(steps)
    return steps


def doctor() -> dict:
    with tempfile.TemporaryDirectory() as folder:
        done = subprocess.run([sys.executable, "-m", "studio", "doctor", "--web-optional", "--json",
                               "--db", f"{folder}/studio.db"], capture_output=True, text=True, timeout=180)
    try:
        checks = json.loads(done.stdout)
    except ValueError:
        return {"status": "error", "error": f"no JSON from the doctor (exit {done.returncode}): {done.stderr[-1500:]}"}
    return {"returncode": done.returncode, "checks": checks}


def load(held: dict) -> dict:
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    from runner.models import resolve_model

    raw = json.loads(Path(resolve_model("arch:llama-2-7b").path).read_text())
    model_type = raw.pop("model_type")
    raw.pop("architectures", None)
    torch.manual_seed(0)
    with torch.device("cuda"):
        model = AutoModelForCausalLM.from_config(AutoConfig.for_model(model_type, **raw), dtype=torch.bfloat16)
    held["model"] = model.eval()
    return {"model": "arch:llama-2-7b", "dtype": "bfloat16", "params": sum(p.numel() for p in model.parameters()),
            "allocated_bytes": torch.cuda.memory_allocated()}


def memory_window(torch, run: Callable[[], object]) -> dict:
    """Peaks and allocation retries of what `run` does, from a synchronised start."""
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    retries = torch.cuda.memory_stats().get("num_alloc_retries", 0)
    run()
    torch.cuda.synchronize()
    return {"allocated_peak_bytes": torch.cuda.max_memory_allocated(),
            "reserved_peak_bytes": torch.cuda.max_memory_reserved(),
            "num_alloc_retries": torch.cuda.memory_stats().get("num_alloc_retries", 0) - retries}


def energy_counter():
    """A function reading cuda:0's total energy in mJ, and a note when there is none."""
    try:
        import pynvml
        import torch

        pynvml.nvmlInit()
        uuid = str(torch.cuda.get_device_properties(0).uuid)
        handle = pynvml.nvmlDeviceGetHandleByUUID(uuid if uuid.startswith("GPU-") else f"GPU-{uuid}")
        pynvml.nvmlDeviceGetTotalEnergyConsumption(handle)
        return (lambda: pynvml.nvmlDeviceGetTotalEnergyConsumption(handle)), None
    except Exception as exc:
        return None, f"no NVML energy counter: {type(exc).__name__}: {exc}"


def latency(held: dict) -> dict:
    import torch
    from transformers import LogitsProcessorList

    from bench.clocks import EventClock, LogitsClock, host_ms, summary_ms

    try:
        from runner.rank.token_clock import TokenClock
    except ImportError as exc:
        return {"status": "error", "error": f"runner.rank.token_clock.TokenClock is not in this tree ({exc})"}
    model = held["model"]
    generator = torch.Generator().manual_seed(0)
    ids = torch.randint(3, model.config.vocab_size, (BATCH, PROMPT_TOKENS), generator=generator).cuda()
    kwargs = {"attention_mask": torch.ones_like(ids), "do_sample": False, "pad_token_id": 0,
              "min_new_tokens": NEW_TOKENS, "max_new_tokens": NEW_TOKENS}  # min: no EOS ends a row early
    with torch.inference_mode():
        model.generate(ids, **{**kwargs, "min_new_tokens": 4, "max_new_tokens": 4})  # cuBLAS, allocator warm
    old, events, studio = LogitsClock(), EventClock(), TokenClock()
    read_energy, note = energy_counter()
    marks: dict = {}

    def run():
        marks["mj0"] = read_energy() if read_energy else None
        torch.cuda.synchronize()
        marks["t0"] = time.perf_counter()
        events.start()
        with torch.inference_mode():
            marks["out"] = model.generate(ids, logits_processor=LogitsProcessorList([old, events]), streamer=studio,
                                          **kwargs)
        torch.cuda.synchronize()
        marks["t1"] = time.perf_counter()
        marks["mj1"] = read_energy() if read_energy else None

    memory = memory_window(torch, run)
    tokens = BATCH * (int(marks["out"].shape[1]) - PROMPT_TOKENS)
    joules = (marks["mj1"] - marks["mj0"]) / 1000.0 if read_energy else None
    clocks = {"old_logits_processor": summary_ms(host_ms(marks["t0"], old.times)),
              "events": summary_ms(events.elapsed_ms()),
              "studio": summary_ms(host_ms(marks["t0"], studio.times))}
    return {"batch": BATCH, "prompt_tokens": PROMPT_TOKENS, "new_tokens": NEW_TOKENS, "tokens": tokens,
            "generate_seconds": marks["t1"] - marks["t0"], "clocks": clocks, "memory": memory,
            "energy": {"joules": joules, "joules_per_token": joules / tokens if joules and tokens else None,
                       "note": note}}


def nccl() -> dict:
    import torch
    import torch.distributed as dist
    from torch.profiler import ProfilerActivity, profile

    from bench.selection import describe_events

    with tempfile.TemporaryDirectory() as folder:
        dist.init_process_group("nccl", init_method=f"file://{folder}/store", rank=0, world_size=1,
                                device_id=torch.device("cuda:0"))
        try:
            x = torch.ones(64 * 2**20, device="cuda")  # 256 MiB of float32
            dist.all_reduce(x)
            torch.cuda.synchronize()
            with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
                for _ in range(10):
                    dist.all_reduce(x)
                torch.cuda.synchronize()
        finally:
            dist.destroy_process_group()
    return describe_events(prof.events(), on_cuda=True)


def static_compile(held: dict) -> dict:
    import torch
    from transformers import AutoTokenizer

    from runner.config import RunConfig
    from runner.paths import models_dir
    from runner.rank.generation import Generator
    from runner.tiny import byte_tokenizer_folder

    torch.cuda.empty_cache()
    rng = random.Random(0)
    prompts = ["".join(rng.choice(string.ascii_letters) for _ in range(PROMPT_TOKENS))  # one byte, one token
               for _ in range(sum(STATIC_BATCHES))]
    tokenizer = AutoTokenizer.from_pretrained(byte_tokenizer_folder(models_dir()))
    tokenizer.padding_side = "left"
    tokenizer.pad_token = tokenizer.pad_token or tokenizer.eos_token
    config = RunConfig(prompts=tuple(prompts), model="arch:llama-2-7b", dtype="bfloat16", device="cuda",
                       cache="static", compile=True, fixed_length=True, max_new_tokens=NEW_TOKENS)
    generate = Generator(held["model"], tokenizer, config, "cuda", prompts,
                         static_cache_len=PROMPT_TOKENS + NEW_TOKENS)
    batches, start = [], 0
    for size in STATIC_BATCHES:
        batches.append(list(range(start, start + size)))
        start += size
    records, note = count_graph_records()
    from torch._dynamo.utils import counters

    for size in sorted(set(STATIC_BATCHES)):  # every shape once, as the worker warms up a compiled run
        generate(next(b for b in batches if len(b) == size), 8)
    recorded, graphs = records(), counters["stats"]["unique_graphs"]
    timings = []

    def run():
        for batch in batches:
            t = time.perf_counter()
            generate(batch, NEW_TOKENS)
            timings.append(time.perf_counter() - t)

    memory = memory_window(torch, run)
    after = records()
    return {"batches": list(STATIC_BATCHES), "batch_seconds": timings, "memory": memory,
            "graph_records_warmup": recorded, "records_note": note,
            "graph_records_after_warmup": None if after is None else after - recorded,
            "recompiles_after_warmup": counters["stats"]["unique_graphs"] - graphs}


def count_graph_records():
    """A reader of how many CUDA graphs inductor's cudagraph trees recorded so far (it
    wraps their record function: private, so a torch without it says so)."""
    try:
        from torch._inductor import cudagraph_trees as trees

        manager = trees.CUDAGraphTreeManager
        original = manager.record_function
    except (ImportError, AttributeError) as exc:
        return (lambda: None), f"cannot count CUDA-graph records in this torch: {exc}"
    count = [0]

    def record_function(self, *args, **kwargs):
        count[0] += 1
        return original(self, *args, **kwargs)

    manager.record_function = record_function
    return (lambda: count[0]), None

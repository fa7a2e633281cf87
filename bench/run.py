"""Throughput benchmark: the studio against the reference post's batched method.

    python -m bench.run                      # CPU: items 1-3 and the generate paths
    python -m bench.run --device cuda        # adds item 4 (arch:llama-2-7b, bf16)

Every variant runs in its own `accelerate launch`, on the same machine, in one
invocation; repetitions are interleaved (each repetition runs every variant
once, in a rotated order) and the table shows medians. Throughput is real
generated tokens (through the first EOS) over generation time (the slowest
rank's, from the barrier after warm-up). Not part of the test suite.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from runner.config import RunConfig  # noqa: E402
from runner.host.launcher import free_port, launch  # noqa: E402
from runner.host.prompts import preset  # noqa: E402
from runner.host.validate import plan_for, prepare  # noqa: E402

REFERENCE = Path(__file__).resolve().parent / "reference_method.py"


def mixed_length_prompts(count: int, low: int = 32, high: int = 1024, seed: int = 0) -> list[str]:
    """`count` prompts with byte lengths spread evenly over [low, high], shuffled."""
    text = " ".join(preset("seed")[:10]) * 20
    lengths = [round(low + (high - low) * i / (count - 1)) for i in range(count)]
    random.Random(seed).shuffle(lengths)
    return [text[i : i + n].strip() or "x" for i, n in enumerate(lengths)]


def run_studio(name: str, prompts: list[str], work: Path, **settings) -> dict:
    config = RunConfig(prompts=prompts, cpu_threads=1, **settings)
    prepared = prepare(config)
    plan = plan_for(prepared) if config.mode == "auto" else None
    result = launch(prepared, work / f"{name}-{time.time_ns()}", plan=plan)
    if result.status != "succeeded":
        raise SystemExit(f"{name}: the run {result.status}: {result.error}")
    roof = result.roofline
    return {"tokens": result.tokens, "seconds": result.seconds, "tokens_per_second": result.tokens_per_second,
            "total_seconds": result.phases.get("total"),
            "prompt_positions": sum(r.get("prompt_positions", 0) for r in result.ranks),
            "batch_size": plan["batch_size"] if plan else settings.get("batch_size"),
            "bandwidth_gbps": (roof or {}).get("achieved_gbps"), "utilisation": (roof or {}).get("utilisation")}


def run_reference(prompts: list[str], work: Path, *, model: str, device: str, dtype: str, num_gpus: int,
                  batch_size: int, max_new_tokens: int, fixed_length: bool) -> dict:
    prompts_file = work / "prompts.json"
    prompts_file.write_text(json.dumps(prompts))
    argv = [sys.executable, "-m", "accelerate.commands.launch", "--num_processes", str(num_gpus),
            "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
            "--main_process_port", str(free_port()), "--num_cpu_threads_per_process", "1"]
    if num_gpus > 1:
        argv.append("--multi_gpu")
    argv += [str(REFERENCE), "--prompts", str(prompts_file), "--model", model, "--device", device, "--dtype", dtype,
             "--batch-size", str(batch_size), "--max-new-tokens", str(max_new_tokens)]
    if fixed_length:
        argv.append("--fixed-length")
    env = {k: v for k, v in os.environ.items() if not k.startswith("ACCELERATE_")}
    env.update(PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false")
    started = time.time()
    proc = subprocess.run(argv, capture_output=True, text=True, env=env, cwd=work, timeout=3600)
    for line in proc.stdout.splitlines():
        if line.startswith("@@reference "):
            out = json.loads(line[len("@@reference "):])
            out["total_seconds"] = time.time() - started
            return out
    raise RuntimeError(f"reference run failed ({proc.returncode}):\n{proc.stderr[-3000:]}")


def scenarios(device: str, gpus: list[int]) -> list[dict]:
    """Each scenario: a list of variants measured against each other, interleaved."""
    post = preset("seed")
    dtype = "bfloat16" if device == "cuda" else "float32"
    out = []
    mixed = mixed_length_prompts(48)
    common = dict(model="tiny", device=device, dtype=dtype, max_new_tokens=32, gpus_per_node=1, fixed_length=True,
                  mode="batched", batch_size=16)
    out.append({
        "name": "item 3: tiny, 48 prompts of 32-1024 tokens, 32 new tokens, batch 16, 1 process",
        "prompts": mixed, "reference": None,
        "variants": {"unsorted": dict(common), "sorted": dict(common, sort_by_length=True)},
    })
    for n in gpus:
        common = dict(model="tiny", device=device, dtype=dtype, max_new_tokens=100, gpus_per_node=n)
        out.append({
            "name": f"items 1-2: tiny, post workload (100 prompts, 100 new tokens, batch 16), {n} process(es)",
            "prompts": post, "reference": dict(common, batch_size=16, fixed_length=False),
            "variants": {"batched": dict(common, mode="batched", batch_size=16),
                         "auto": dict(common, mode="auto")},
        })
    if device == "cpu":
        common = dict(model="arch:cpu-50m", device=device, dtype=dtype, max_new_tokens=32, gpus_per_node=1,
                      fixed_length=True)
        out.append({
            "name": "items 1-2 (bandwidth-bound): arch:cpu-50m, 32 post prompts, 32 new tokens, batch 16, 1 process",
            "prompts": post[:32], "reference": dict(common, batch_size=16),
            "variants": {"batched": dict(common, mode="batched", batch_size=16), "auto": dict(common, mode="auto")},
        })
    common = dict(model="tiny", device=device, dtype=dtype, max_new_tokens=100, gpus_per_node=1, mode="batched",
                  batch_size=16, fixed_length=True)
    # attention "auto" is SDPA for these Llama models in transformers 5, so "plain" is the SDPA path
    paths = {"plain": dict(common), "eager": dict(common, attention="eager"),
             "static": dict(common, cache="static"), "continuous": dict(common, continuous_batching=True)}
    if device == "cuda":
        paths["static+compile"] = dict(common, cache="static", compile=True)
    out.append({"name": "generate paths: tiny, post workload, fixed length, batch 16, 1 process",
                "prompts": post, "reference": None, "variants": paths})
    if device == "cuda":
        common = dict(model="arch:llama-2-7b", device=device, dtype="bfloat16", max_new_tokens=100, gpus_per_node=1,
                      fixed_length=True)
        out.append({
            "name": "item 4: arch:llama-2-7b bf16, post workload, fixed length, 1 GPU",
            "prompts": post, "reference": dict(common, batch_size=16),
            "variants": {"batched": dict(common, mode="batched", batch_size=16), "auto": dict(common, mode="auto"),
                         "auto+static+compile": dict(common, mode="auto", cache="static", compile=True)},
        })
    return out


def measure(scenario: dict, repeats: int, work: Path, log) -> dict:
    names = (["reference"] if scenario["reference"] else []) + list(scenario["variants"])
    samples: dict[str, list[dict]] = {n: [] for n in names}
    for rep in range(repeats):
        order = names[rep % len(names):] + names[: rep % len(names)]  # rotate: no variant always goes first
        for name in order:
            try:
                if name == "reference":
                    r = scenario["reference"]
                    sample = run_reference(scenario["prompts"], work, model=r["model"], device=r["device"],
                                           dtype=r["dtype"], num_gpus=r["gpus_per_node"], batch_size=r["batch_size"],
                                           max_new_tokens=r["max_new_tokens"], fixed_length=r["fixed_length"])
                else:
                    sample = run_studio(name, scenario["prompts"], work, **scenario["variants"][name])
            except Exception as exc:  # one failed variant must not lose the others' numbers
                log(f"  {name}: FAILED {type(exc).__name__}: {str(exc)[-400:]}")
                continue
            samples[name].append(sample)
            log(f"  rep {rep + 1} {name}: {sample['tokens_per_second']:.1f} tok/s, {sample['seconds']:.2f} s "
                f"generation, {sample.get('total_seconds') or 0:.1f} s total")
    return {"name": scenario["name"], "samples": samples}


def median(samples: list[dict], key: str):
    values = [s[key] for s in samples if s.get(key) is not None]
    return statistics.median(values) if values else None


def table(results: list[dict]) -> str:
    lines = []
    for res in results:
        lines.append(f"\n### {res['name']}\n")
        lines.append("| variant | runs | tokens/s (median) | min-max | generation s | wall s | ratio |")
        lines.append("|---|---|---|---|---|---|---|")
        samples = res["samples"]
        base_name = "reference" if "reference" in samples else next(iter(samples))
        base = median(samples[base_name], "tokens_per_second")
        for name, runs in samples.items():
            tps = median(runs, "tokens_per_second")
            if tps is None:
                lines.append(f"| {name} | 0 | failed | | | | |")
                continue
            spread = f"{min(r['tokens_per_second'] for r in runs):.0f}-{max(r['tokens_per_second'] for r in runs):.0f}"
            ratio = f"{tps / base:.2f}x vs {base_name}" if base else "-"
            extra = ""
            util = median(runs, "utilisation")
            if util is not None:
                extra = f" (bandwidth {median(runs, 'bandwidth_gbps'):.2f} GB/s, {util:.1%} of peak)"
            lines.append(f"| {name}{extra} | {len(runs)} | {tps:.1f} | {spread} | {median(runs, 'seconds'):.2f} | "
                         f"{median(runs, 'total_seconds'):.1f} | {ratio} |")
    return "\n".join(lines)


def machine() -> str:
    from runner.host.hardware import detect

    inv = detect()
    gpus = ", ".join(inv.gpu_names) or "no GPU"
    import torch
    import transformers

    return (f"{platform.node()}: {inv.cpu_cores} CPU cores ({platform.processor() or platform.machine()}), {gpus}; "
            f"Python {platform.python_version()}, torch {torch.__version__}, transformers {transformers.__version__}; "
            f"load average at start {os.getloadavg()[0]:.1f}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--gpus", default="1,2", help="process/GPU counts for items 1-2")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--only", default="", help="run only scenarios whose name contains this text")
    parser.add_argument("--json", default=None, help="also write every sample to this file")
    args = parser.parse_args(argv)
    os.environ.setdefault("STUDIO_HOME", tempfile.mkdtemp(prefix="bench-home-"))
    gpus = [int(g) for g in args.gpus.split(",") if g]
    chosen = [s for s in scenarios(args.device, gpus) if args.only in s["name"]]
    print(f"machine: {machine()}", flush=True)
    results = []
    with tempfile.TemporaryDirectory(prefix="bench-") as tmp:
        for scenario in chosen:
            print(f"{scenario['name']}", flush=True)
            results.append(measure(scenario, args.repeats, Path(tmp), lambda m: print(m, flush=True)))
            # each scenario's table as soon as it is done, so a long run loses nothing
            print(table(results[-1:]), flush=True)
            if args.json:
                Path(args.json).write_text(json.dumps({"machine": machine(), "results": results}, indent=1))
    print("\n## All results" + table(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())

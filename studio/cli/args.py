"""What every `studio` subcommand shares: the run options, the database option
and how a command fails. Kept apart from `studio.cli.commands` (the entry point) so the
modules that add subcommands import it without importing the CLI back."""

from __future__ import annotations

import argparse
import sys

from runner.config import LARGEST, ConfigError, RunConfig, whole

EXIT_BAD_INPUT = 2
EXIT_RUN_FAILED = 1


def fail(message: str, code: int = EXIT_BAD_INPUT) -> int:
    print(f"studio: error: {message}", file=sys.stderr)
    return code


def whole_arg(text: str) -> int:
    """argparse's type for whole-number flags: int() would also read '１' and '٣'.
    The bounds are the setting's own, checked where it is used."""
    try:
        return whole("value", text, -LARGEST)
    except ConfigError as exc:
        raise argparse.ArgumentTypeError(exc.message) from None


def add_db_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--db", default=None, help="SQLite database (default: $STUDIO_DB or ~/.scaling-studio/studio.db)")


def add_run_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", default="tiny", help="tiny | local folder | hub id (cached) | arch:NAME")
    p.add_argument("--mode", default="batched", help="simple | batched | auto, or a comma list of them")
    p.add_argument("--batch-size", default="16", help="prompts per generate call, or a list such as 1,8,32")
    p.add_argument("--max-new-tokens", default="100", help="new tokens per prompt, or a list")
    p.add_argument("--prompt-tokens", default=None,
                   help="synthetic prompts of exactly N tokens (or a list of N), instead of --prompts/--preset")
    p.add_argument("--num-prompts", type=whole_arg, default=None, help="how many synthetic prompts (with --prompt-tokens)")
    p.add_argument("--slo", default=None,
                   help="latency limits for goodput: ttft=MS,tpot=MS, or a preset (mlperf-llama2-70b)")
    p.add_argument("--fixed-length", action="store_true", help="generate exactly --max-new-tokens every time")
    source = p.add_mutually_exclusive_group()
    source.add_argument("--prompts", metavar="FILE", help=".txt (one a line), .jsonl ('prompt' field) or .csv")
    source.add_argument("--preset", default=None, help="built-in prompt set: seed (the post's 10 lines x10)")
    p.add_argument("--gpus", default="1", help="GPU counts to sweep, e.g. 1,2,4 (CPU processes without a GPU)")
    p.add_argument("--tp", default="1", help="tensor-parallel size: ranks that share one copy of the model, or a "
                   "list such as 1,2,4 (the GPUs hold GPUs/tp copies; 1 is one full copy per GPU)")
    p.add_argument("--repeats", type=whole_arg, default=1, help="runs per cell of the grid")
    p.add_argument("--dtype", default="auto", help="auto | float32 | bfloat16 | float16, or a comma list")
    p.add_argument("--device", default="auto", choices=["auto", "cuda", "cpu"])
    p.add_argument("--sample", action="store_true", help="sample instead of greedy decoding")
    p.add_argument("--temperature", type=float, default=1.0)
    p.add_argument("--top-p", type=float, default=1.0)
    p.add_argument("--top-k", type=whole_arg, default=50)
    p.add_argument("--seed", type=whole_arg, default=0)
    p.add_argument("--no-warmup", action="store_true", help="skip the warm-up generate")
    p.add_argument("--sort-by-length", action="store_true", help="batch prompts of similar length together")
    p.add_argument("--attention", default="auto", choices=["auto", "sdpa", "eager"])
    p.add_argument("--cache", default="dynamic", choices=["dynamic", "static"])
    p.add_argument("--compile", action="store_true", help="torch.compile the model (needs --cache static)")
    p.add_argument("--continuous-batching", action="store_true",
                   help="transformers' continuous batching (generate_batch), greedy only")
    p.add_argument("--memory-budget-gb", type=float, default=None,
                   help="GiB per GPU/process the auto planner may fill (default: from the device)")
    p.add_argument("--cpu-threads", type=whole_arg, default=1, help="threads per CPU process")
    p.add_argument("--timeout", type=float, default=3600.0, help="seconds before a run is stopped")
    p.add_argument("--name", default="", help="a name for the sweep")
    p.add_argument("--launch", default="shared", choices=["shared", "per-run"],
                   help="shared (default): runs of one model share one accelerate launch and one load, smaller "
                        "GPU counts on a sub-group of its ranks; per-run: a launch of its own for every run")
    p.add_argument("--nodes", type=whole_arg, default=1, help="machines in a multi-node run")
    p.add_argument("--gpus-per-node", type=whole_arg, default=None, help="processes on each node (multi-node)")
    p.add_argument("--node-rank", type=whole_arg, default=0, help="this machine's rank (multi-node)")
    p.add_argument("--main-address", default="127.0.0.1", help="the rank-0 machine's address (multi-node)")
    p.add_argument("--main-port", type=whole_arg, default=None, help="the rank-0 machine's port (multi-node)")
    p.add_argument("--rdzv-backend", default="static", choices=["static", "c10d"])
    p.add_argument("--json", action="store_true", help="print the runs as JSON")
    add_db_option(p)


def grid_from_args(args: argparse.Namespace) -> dict[str, list]:
    """The sweep's axes from the flags that take lists."""
    from studio.sweeps.grid import parse_axis

    axes = {
        "gpus_per_node": [args.gpus_per_node or 1] if args.nodes > 1 or args.gpus_per_node else args.gpus,
        "batch_size": args.batch_size, "max_new_tokens": args.max_new_tokens, "dtype": args.dtype, "mode": args.mode,
    }
    if str(args.tp).strip() != "1":  # one copy per GPU is no grid axis, as before layouts
        axes["tp_size"] = args.tp
    if args.prompt_tokens is not None:
        if args.prompts or args.preset:
            raise ConfigError("prompt_tokens", "makes synthetic prompts; leave out --prompts and --preset")
        axes["prompt_tokens"] = args.prompt_tokens
    return {axis: parse_axis(axis, value) for axis, value in axes.items()}


def config_from_args(args: argparse.Namespace) -> tuple[RunConfig, dict[str, list]]:
    """The sweep's base settings (each list's first value) and its axes."""
    from runner.host.prompts import load_prompts, preset

    axes = grid_from_args(args)
    prompts = load_prompts(args.prompts) if args.prompts else preset(args.preset or "seed")
    first = {axis: values[0] for axis, values in axes.items()}
    config = RunConfig(
        prompts=prompts, model=args.model, mode=first["mode"], batch_size=first["batch_size"],
        max_new_tokens=first["max_new_tokens"], gpus_per_node=first["gpus_per_node"], dtype=first["dtype"],
        # a list of sizes is the grid's; the base keeps 1, which fits every GPU count
        tp_size=first["tp_size"] if len(axes.get("tp_size", [])) == 1 else 1,
        device=args.device, prompt_tokens=first.get("prompt_tokens"),
        do_sample=args.sample, temperature=args.temperature, top_p=args.top_p, top_k=args.top_k, seed=args.seed,
        fixed_length=args.fixed_length, warmup=not args.no_warmup, sort_by_length=args.sort_by_length,
        attention=args.attention, cache=args.cache, compile=args.compile,
        continuous_batching=args.continuous_batching, memory_budget_gb=args.memory_budget_gb, cpu_threads=args.cpu_threads,
        timeout_s=args.timeout, num_nodes=args.nodes, node_rank=args.node_rank, main_address=args.main_address,
        main_port=args.main_port, rdzv_backend=args.rdzv_backend, label=args.name,
    )
    return config, axes

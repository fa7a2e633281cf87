"""`studio runs` and `studio show`: stored runs as text or JSON, with their cost; the
run summary and table that `studio run` prints too."""

from __future__ import annotations

import argparse
import json

from runner.metrics import RUN_FIELDS as LATENCY_RUN_FIELDS
from studio.cli.args import fail


def run_summary(run: dict, slo: dict | None = None) -> dict:
    keys = ("id", "sweep_id", "repeat_index", "status", "model", "mode", "batch_size", "max_new_tokens",
            "prompt_tokens", "num_gpus", "num_nodes", "world_size", "tp_size", "dp_size", "device", "dtype",
            "num_prompts", "tokens",
            "raw_tokens", "padding_tokens", "seconds", "tokens_per_second", "imbalance", *LATENCY_RUN_FIELDS,
            "comm_fraction", "agreement", "agreement_reference", "created_at", "error")
    out = {k: run.get(k) for k in keys}
    if slo and run.get("status") == "succeeded":
        from runner.metrics import goodput
        from studio.sweeps.slo import meets

        out.update(slo=slo["name"], goodput_tokens_per_second=goodput(run.get("outputs") or [], run["seconds"], slo),
                   meets_slo=meets(run, slo))
    return out


def format_table(runs: list[dict], speedup: bool = True, costs: dict | None = None) -> str:
    """Runs as a text table; speedup is over the median of the sweep's smallest GPU count;
    with `costs` (studio.cli.costs.run_costs), a $ per million output tokens column."""
    from studio.analysis.layouts import agreement_cells
    from studio.analysis.stats import run_speedups
    from studio.cli.costs import cost_cell

    header = (f"{'run':>5} {'GPUs':>5} {'tp':>3} {'rep':>4} {'status':<10} {'tokens':>8} {'seconds':>9} "
              f"{'tokens/s':>10} {'speedup':>8}" + (f" {'$/M tok':>9}" if costs is not None else "") + "  agrees")
    lines = [header, "-" * len(header)]
    speedups = run_speedups(runs) if speedup else {}
    agrees = agreement_cells(runs)
    for r in runs:
        tps = r.get("tokens_per_second")
        speed = f"{speedups[r['id']]:.2f}x" if r["id"] in speedups else "-"
        tokens = "-" if r.get("tokens") is None else str(r["tokens"])
        seconds = f"{r['seconds']:.2f}" if r.get("seconds") else "-"
        throughput = f"{tps:.1f}" if tps else "-"
        repeat = (r.get("repeat_index") or 0) + 1
        lines.append(
            f"{r['id']:>5} {r['world_size']:>5} {r['tp_size']:>3} {repeat:>4} {r['status']:<10} {tokens:>8} {seconds:>9} "
            f"{throughput:>10} {speed:>8}" + (f" {cost_cell(costs.get(r['id'])):>9}" if costs is not None else "")
            + f"  {agrees[r['id']]}")
        if r.get("error"):
            lines.append(f"      error: {r['error']}")
    return "\n".join(lines)


def cmd_runs(args: argparse.Namespace) -> int:
    from db.store import Store
    from studio.cli.costs import cost_fields, no_cost_notes, run_costs

    store = Store(args.db)
    runs = store.list_runs(model=args.model, status=args.status, sweep_id=args.sweep, limit=args.limit)
    costs = run_costs(store, runs, args.price)  # a bad --price: main() prints the ConfigError
    if args.json:
        print(json.dumps([{**run_summary(r), **cost_fields(costs.get(r["id"]))} for r in runs], indent=2))
    elif not runs:
        print("no runs yet: start one with `studio run`")
    else:
        print("\n".join([format_table(runs, speedup=False, costs=costs), *no_cost_notes(costs)]))
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    from db.store import Store
    from studio.cli.costs import cost_fields, cost_text, run_costs

    store = Store(args.db)
    run = store.get_run(args.id)
    if run is None:
        return fail(f"there is no run {args.id}; `studio runs` lists them")
    cost = run_costs(store, [run], args.price).get(run["id"])
    if args.json:
        print(json.dumps({**run, **cost_fields(cost)}, indent=2, default=str))
        return 0
    summary = {**run_summary(run), "cost": cost_text(cost) if run.get("status") == "succeeded" else None}
    for key, value in summary.items():
        if value is not None:
            print(f"{key:>18}: {value}")
    from studio.exchange.peers.detail import imported_text

    if imported_text(run):  # measured by another tool: where it came from, the recount beside the tool's figures
        print(imported_text(run))
    if run.get("phases"):
        print(f"{'phases (s)':>18}: " + ", ".join(f"{k} {v:.2f}" for k, v in run["phases"].items()))
    if run.get("launch"):
        from runner.phases import describe_launch

        print(f"{'shared launch':>18}: {describe_launch(run['launch'])}")
    if run.get("stderr_tail"):
        print("stderr tail:\n" + run["stderr_tail"])
    print("\nranks:")
    for r in run["ranks"]:
        print(f"  rank {r['rank']}: {r['num_prompts']} prompts, {r['tokens']} tokens, {r['seconds']:.3f} s, "
              f"peak memory {(r['peak_memory_bytes'] or 0) / 2**20:.0f} MiB")
    print("\noutputs:")
    for o in run["outputs"]:
        print(f"  [{o['prompt_index']}] (rank {o['rank']}, {o['tokens']} tokens) {o['prompt']!r}\n      -> {o['output']!r}")
    return 0

"""Checks and report of `bench/gpu_check.sh`: reads the runs it stored (plain
sqlite3, so it needs nothing the GPU image lacks) and says what failed.

`failures` and `markdown` are pure, tested on canned rows without a GPU.
Usage: python3 -m bench.gpu_check DB_PATH OUT_MARKDOWN
"""

from __future__ import annotations

import json
import sqlite3
import sys
from pathlib import Path

# Labels the script gives its sweeps (studio run --name), in the order it runs them.
STEPS = ("tiny", "7b-batched", "7b-auto")


def load_runs(db_path: str) -> list[dict]:
    conn = sqlite3.connect(db_path)
    conn.row_factory = sqlite3.Row
    runs = [dict(r) for r in conn.execute("SELECT * FROM runs ORDER BY id")]
    for run in runs:
        ranks = conn.execute("SELECT * FROM ranks WHERE run_id = ? ORDER BY rank", (run["id"],)).fetchall()
        run["ranks"] = [dict(r) for r in ranks]
        for key in ("environment", "config"):
            if isinstance(run.get(key), str):
                run[key] = json.loads(run[key])
    conn.close()
    return runs


def failures(runs: list[dict]) -> list[str]:
    """Everything the acceptance check requires that these runs do not show."""
    problems = []
    by_label = {r.get("label"): r for r in runs}
    for step in STEPS:
        run = by_label.get(step)
        if run is None:
            problems.append(f"{step}: no run stored")
            continue
        if run.get("status") != "succeeded":
            problems.append(f"{step}: {run.get('status')}: {run.get('error')}")
            continue
        if run.get("device") != "cuda":
            problems.append(f"{step}: ran on {run.get('device')}, not cuda")
        ranks = run.get("ranks") or []
        if not ranks or any(not k.get("device_allocated_peak_bytes") or not k.get("device_reserved_peak_bytes")
                            for k in ranks):
            problems.append(f"{step}: device peak memory missing")
        if not run.get("bandwidth_utilisation"):
            problems.append(f"{step}: bandwidth utilisation missing")
        if run.get("energy_joules") is None or run.get("joules_per_token") is None:
            problems.append(f"{step}: energy missing ({run.get('energy_note')})")
    batched, auto = by_label.get("7b-batched"), by_label.get("7b-auto")
    if batched and auto and batched.get("tokens_per_second") and auto.get("tokens_per_second"):
        if auto["tokens_per_second"] <= batched["tokens_per_second"]:
            problems.append(f"auto ({auto['tokens_per_second']:.1f} tok/s) did not beat batched "
                            f"({batched['tokens_per_second']:.1f} tok/s)")
    return problems


def _num(value, fmt: str) -> str:
    return "—" if value is None else format(value, fmt)


def markdown(runs: list[dict], machine: dict, problems: list[str]) -> str:
    """The block for docs/performance.md: the machine, then one row per run."""
    lines = [
        f"### GPU acceptance check ({machine.get('date', '')})",
        "",
        f"Machine: {machine.get('gpu', '?')}, driver {machine.get('driver', '?')}, CUDA {machine.get('cuda', '?')}, "
        f"torch {machine.get('torch', '?')}, transformers {machine.get('transformers', '?')}.",
        "",
        "| run | model | mode | batch | dtype | device | tokens/s | seconds | peak allocated GiB | peak reserved GiB "
        "| bandwidth GB/s | utilisation | J/token | avg power W |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for run in runs:
        ranks = run.get("ranks") or []
        allocated = max((k.get("device_allocated_peak_bytes") or 0 for k in ranks), default=0) or None
        reserved = max((k.get("device_reserved_peak_bytes") or 0 for k in ranks), default=0) or None
        lines.append(
            f"| {run.get('label')} | {run.get('model')} | {run.get('mode')} | {run.get('batch_size')} "
            f"| {run.get('dtype')} | {run.get('device')} | {_num(run.get('tokens_per_second'), '.1f')} "
            f"| {_num(run.get('seconds'), '.2f')} | {_num(allocated and allocated / 2**30, '.2f')} "
            f"| {_num(reserved and reserved / 2**30, '.2f')} | {_num(run.get('bandwidth_gbps'), '.0f')} "
            f"| {_num(run.get('bandwidth_utilisation'), '.0%')} | {_num(run.get('joules_per_token'), '.4f')} "
            f"| {_num(run.get('average_power_watts'), '.0f')} |")
    lines += ["", "Result: " + ("all checks passed." if not problems else "FAILED: " + "; ".join(problems)), ""]
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    db_path, out = argv[0], Path(argv[1])
    machine = json.loads(argv[2]) if len(argv) > 2 else {}
    runs = load_runs(db_path)
    problems = failures(runs)
    out.write_text(markdown(runs, machine, problems))
    print(out.read_text())
    for problem in problems:
        print(f"gpu_check: FAILED: {problem}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

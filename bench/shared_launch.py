"""Shared launches against a launch per run: the same sweep, both ways, side by
side in one invocation, repetitions interleaved (neither always goes first).

    python -m bench.shared_launch [--repeats 3] [--gpus 1,2] [--sweep-repeats 3] [--max-new-tokens 16]
    python -m bench.shared_launch --subworld 5

Each repetition runs `studio run --model tiny --gpus 1,2 --repeats 3
--max-new-tokens 16 --fixed-length` as a user types it, once with the default
`--launch shared` and once with `--launch per-run`, each into a database of its
own, and reads back what was stored. Walls are net of any time a sweep waited
for the machine's hardware lock while another studio ran a job (its queue
phases, printed per repetition). Prints, per mode, the medians (min-max) of
the end-to-end wall time, the sweep's summed generation time, and per GPU count
the throughput; the speedup; whether every run generated the same tokens and the
same texts both ways; and the check of the issue's target: shared sweep wall at
most 2x its summed generation time plus one launch's fixed cost (launch,
imports, load). Not part of the test suite.

`--subworld N` instead compares, N times interleaved, a 1-process run on a
sub-group of a 2-process launch (rank 1 waiting outside its timed region) with the
same run in a launch of its own: outputs and throughput side by side.
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MODES = ("shared", "per-run")


def run_sweep(mode: str, db: Path, args: argparse.Namespace) -> dict:
    argv = [sys.executable, "-m", "studio", "run", "--model", "tiny", "--gpus", args.gpus, "--repeats",
            str(args.sweep_repeats), "--max-new-tokens", str(args.max_new_tokens), "--fixed-length",
            "--launch", mode, "--db", str(db), "--json"]
    start = time.perf_counter()
    done = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    wall = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{mode} sweep failed ({done.returncode}):\n{done.stderr[-3000:]}")
    conn = sqlite3.connect(str(db))
    conn.row_factory = sqlite3.Row
    (sweep,) = conn.execute("SELECT * FROM sweeps ORDER BY id DESC LIMIT 1").fetchall()
    runs = conn.execute("SELECT * FROM runs WHERE sweep_id = ? ORDER BY id", (sweep["id"],)).fetchall()
    outputs = {r["id"]: [o[0] for o in conn.execute("SELECT output FROM outputs WHERE run_id = ? ORDER BY prompt_index",
                                                     (r["id"],))] for r in runs}
    launches = [dict(row) for row in conn.execute("SELECT * FROM launches WHERE sweep_id = ?", (sweep["id"],))]
    # time spent waiting for the machine's hardware lock while another studio (a test suite on
    # a shared machine, say) ran a job: not this sweep's cost, and taken off both walls
    waited = sum(json.loads(x["phases"] or "{}").get("queue", 0.0) for x in [*launches, *map(dict, runs)])
    fixed = []
    for launch in launches:
        phases = json.loads(launch["phases"] or "{}")
        fixed.append(sum(phases.get(k, 0.0) for k in ("launch", "imports", "load")))
    if not launches:  # per-run: every run paid its own
        for r in runs:
            phases = json.loads(r["phases"] or "{}")
            fixed.append(sum(phases.get(k, 0.0) for k in ("launch", "imports", "load")))
    sweep_wall = (_when(sweep["finished_at"]) - _when(sweep["created_at"]))
    conn.close()
    return {
        "mode": mode, "wall": wall - waited, "sweep_wall": sweep_wall - waited, "waited": waited,
        "generation": sum(r["seconds"] for r in runs), "launches": len(launches) or len(runs),
        "fixed_per_launch": statistics.median(fixed) if fixed else None,
        "tokens": [r["tokens"] for r in runs], "texts": [outputs[r["id"]] for r in runs],
        "tps": [(r["num_gpus"], r["tokens_per_second"]) for r in runs],
        "statuses": [r["status"] for r in runs],
    }


def _when(text: str) -> float:
    return datetime.fromisoformat(text).timestamp()


def _spread(values: list[float], fmt: str = "{:.2f}") -> str:
    return f"{fmt.format(statistics.median(values))} ({fmt.format(min(values))}-{fmt.format(max(values))})"


def subworld_check(repeats: int, max_new_tokens: int) -> int:
    sys.path.insert(0, str(ROOT))
    from runner.config import RunConfig
    from runner.host.launcher import launch, launch_many
    from runner.host.prompts import preset
    from runner.host.validate import prepare

    base = RunConfig(prompts=preset("seed"), device="cpu", dtype="float32", max_new_tokens=max_new_tokens,
                     fixed_length=True)
    work = Path(tempfile.mkdtemp(prefix="subworld-"))
    got: dict[str, list] = {"sub-world": [], "own launch": []}
    for rep in range(repeats):
        for kind in (("sub-world", "own launch") if rep % 2 == 0 else ("own launch", "sub-world")):
            if kind == "sub-world":  # the 2-process run first, so the 1-process one runs on a sub-group
                result = launch_many([prepare(base.replace(gpus_per_node=n)) for n in (2, 1)],
                                     work / f"sub-{rep}")[1]
            else:
                result = launch(prepare(base), work / f"own-{rep}")
            assert result.status == "succeeded", result.error
            got[kind].append(result)
            print(f"rep {rep + 1} {kind:>10}: {result.tokens_per_second:.0f} tokens/s, {result.tokens} tokens", flush=True)
    same = all([o["output"] for o in a.outputs] == [o["output"] for o in b.outputs]
               for a, b in zip(got["sub-world"], got["own launch"]))
    tps = {k: [r.tokens_per_second for r in v] for k, v in got.items()}
    print(f"\n1 process, median (min-max) tokens/s over {repeats} interleaved repetitions:")
    for kind, values in tps.items():
        print(f"  {kind:>10}: {_spread(values, '{:.0f}')}")
    ratio = statistics.median(tps["sub-world"]) / statistics.median(tps["own launch"])
    pairs = [a / b for a, b in zip(tps["sub-world"], tps["own launch"])]
    print(f"  ratio of medians (sub-world / own launch): {ratio:.3f}; per repetition {_spread(pairs, '{:.3f}')}")
    print(f"identical outputs: {same}; identical token counts: "
          f"{all(a.tokens == b.tokens for a, b in zip(got['sub-world'], got['own launch']))}")
    return 0 if same else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--subworld", type=int, default=0, metavar="N",
                        help="instead: a sub-world run against its own launch, N interleaved repetitions")
    parser.add_argument("--repeats", type=int, default=3, help="interleaved repetitions of both modes")
    parser.add_argument("--gpus", default="1,2")
    parser.add_argument("--sweep-repeats", type=int, default=3)
    parser.add_argument("--max-new-tokens", type=int, default=16)
    args = parser.parse_args()
    if args.subworld:
        return subworld_check(args.subworld, args.max_new_tokens)
    work = Path(tempfile.mkdtemp(prefix="shared-launch-"))
    samples: dict[str, list[dict]] = {m: [] for m in MODES}
    for rep in range(args.repeats):
        order = MODES if rep % 2 == 0 else tuple(reversed(MODES))
        for mode in order:
            result = run_sweep(mode, work / f"{mode}-{rep}.db", args)
            samples[mode].append(result)
            print(f"rep {rep + 1} {mode:>8}: wall {result['wall']:.1f} s, sweep {result['sweep_wall']:.1f} s "
                  f"(after {result['waited']:.1f} s waiting for another studio's job), "
                  f"generation {result['generation']:.2f} s, {result['launches']} launch(es), "
                  f"statuses {set(result['statuses'])}", flush=True)

    print("\nmedian (min-max) over", args.repeats, "interleaved repetitions; walls net of waiting for the "
          "hardware lock")
    print(f"{'mode':>8} {'CLI wall s':>20} {'sweep wall s':>20} {'generation s':>20} {'fixed/launch s':>16} launches")
    for mode in MODES:
        s = samples[mode]
        print(f"{mode:>8} {_spread([x['wall'] for x in s]):>20} {_spread([x['sweep_wall'] for x in s]):>20} "
              f"{_spread([x['generation'] for x in s]):>20} {_spread([x['fixed_per_launch'] for x in s]):>16} "
              f"{s[0]['launches']}")
    shared, per_run = samples["shared"], samples["per-run"]
    speedup = statistics.median(x["wall"] for x in per_run) / statistics.median(x["wall"] for x in shared)
    ratios = [p["wall"] / s["wall"] for s, p in zip(shared, per_run)]
    print(f"\nspeedup end to end (per-run / shared, medians): {speedup:.2f}x; per repetition {_spread(ratios)}")
    same_tokens = all(s["tokens"] == p["tokens"] for s, p in zip(shared, per_run))
    same_texts = all(s["texts"] == p["texts"] for s, p in zip(shared, per_run))
    print(f"identical token counts: {same_tokens}; identical output texts: {same_texts}")
    counts = sorted({n for n, _ in shared[0]["tps"]})
    print("\nthroughput per GPU count, tokens/s, median (min-max) over every run of that count")
    for n in counts:
        a = [t for x in shared for m, t in x["tps"] if m == n]
        b = [t for x in per_run for m, t in x["tps"] if m == n]
        kind = "sub-world of the launch" if n < max(counts) else "the launch's whole world"
        print(f"  {n} process(es): shared ({kind}) {_spread(a, '{:.0f}')}, per-run {_spread(b, '{:.0f}')}, "
              f"ratio of medians {statistics.median(a) / statistics.median(b):.3f}")
    budgets = [2 * s["generation"] + s["fixed_per_launch"] for s in shared]
    print("\ntarget: shared sweep wall <= 2 x summed generation + one launch's fixed cost")
    for s, budget in zip(shared, budgets):
        print(f"  sweep wall {s['sweep_wall']:.1f} s (CLI wall {s['wall']:.1f} s) against {budget:.1f} s "
              f"(2 x {s['generation']:.2f} + {s['fixed_per_launch']:.1f}): "
              f"{'met' if s['sweep_wall'] <= budget else 'NOT met'}")
    met = speedup >= 2.0 and same_tokens and all(s["sweep_wall"] <= b for s, b in zip(shared, budgets))
    print(f"\nall targets met: {met}")
    return 0 if met else 1


if __name__ == "__main__":
    raise SystemExit(main())

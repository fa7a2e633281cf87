"""The GPU acceptance run of issue 21 (`bash bench/gpu_check.sh`): its plan, the
JSON it writes and its pass/fail judgements. Pure and stdlib-only, so the dry run
and the tests need neither a GPU nor torch; the steps that need CUDA are in
`bench.gpu_probes`.

    python3 -m bench.gpu_check plan           # the plan with each step's minutes
    python3 -m bench.gpu_check run [--out DIR] # run it, write DIR/gpu_check-<gpu>-<date>.json
"""

from __future__ import annotations

import argparse
import datetime
import json
import re
import sys
from dataclasses import dataclass
from pathlib import Path

TTFT_TOLERANCE = 0.05  # the studio's TTFT may differ from the CUDA events' by this share at most
BUDGET_MINUTES = 10.0  # on one H200, the wheel install included


@dataclass(frozen=True)
class Step:
    name: str
    minutes: float  # an estimate from the work the step does, not a measurement: none has run on a GPU yet
    what: str


STEPS = (
    Step("install", 0.5, "what the image lacks (NEEDS: sqlite-utils, transformers 5.25, what they need) from the "
                         "carried .whl/*.whl with --no-index, never an index; skipped when NEEDS import"),
    Step("doctor", 0.5, "python3 -m studio doctor --web-optional --json (gradio and plotly may be absent)"),
    Step("load", 1.0, "arch:llama-2-7b from its config, random weights, bfloat16, built on cuda:0"),
    Step("latency", 1.0, "batch 16 x 512-token synthetic prompts, 100 new tokens, dynamic cache, one warm-up; "
                         "one generate timed three ways: the old logits-processor clock, CUDA events each step, "
                         "the studio's runner.rank.token_clock.TokenClock; peak memory and NVML energy of that generate"),
    Step("nccl", 0.5, "a one-rank NCCL group: all-reduce of 256 MiB x 10 under the torch profiler; every event "
                      "with its device type and whether the studio's selection counts it"),
    Step("static_compile", 5.0, "the studio's Generator with --cache static --compile: every batch shape warmed "
                                "up (16 and 8), then batches 16, 16, 8 timed; CUDA-graph records and dynamo "
                                "recompiles counted after the warm-up; peak memory of the static cache"),
    Step("write", 0.1, "one JSON into bench/results/gpu_check-<gpu>-<date>.json"),
)


# What the run needs beyond the GPU image (torch, accelerate, nvidia-ml-py are there): the
# store's sqlite-utils, and the transformers the studio is locked to (the image's is older).
# bench/gpu_wheels.sh downloads exactly these (with the packages they need) into .whl/.
NEEDS = {"sqlite-utils": "4.2.1", "transformers": "5.25.0"}


def missing_needs(installed: dict[str, str | None]) -> list[str]:
    """The NEEDS that `installed` (name -> version or None) lacks or holds at another version."""
    return [f"{name}=={want}" + (f" (found {installed.get(name)})" if installed.get(name) else " (absent)")
            for name, want in NEEDS.items() if installed.get(name) != want]


def installed_versions() -> dict[str, str | None]:
    from importlib.metadata import PackageNotFoundError, version

    out: dict[str, str | None] = {}
    for name in NEEDS:
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = None
    return out


def total_minutes(steps=STEPS) -> float:
    return sum(s.minutes for s in steps)


def plan_text(steps=STEPS) -> str:
    lines = ["GPU acceptance check (issue 21): plan, minutes estimated for one H200"]
    for i, step in enumerate(steps, start=1):
        lines.append(f"  {i}. {step.name:<15} ~{step.minutes:>4.1f} min  {step.what}")
    total = total_minutes(steps)
    lines.append(f"  total ~{total:.1f} min (budget {BUDGET_MINUTES:.0f} min)")
    lines.append("  fails when: the doctor fails; the studio's TTFT is more than "
                 f"{TTFT_TOLERANCE:.0%} off the CUDA events'; a CUDA graph is recorded after warm-up; "
                 "memory or energy figures are missing; a step errs. Without CUDA the GPU steps are skipped, "
                 "each with its reason, and the check does not pass.")
    return "\n".join(lines)


def slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", (name or "unknown-gpu").lower()).strip("-") or "unknown-gpu"


def result_path(folder: str | Path, gpu_name: str, day: datetime.date) -> Path:
    return Path(folder) / f"gpu_check-{slug(gpu_name)}-{day.isoformat()}.json"


def relative_gap(value: float | None, reference: float | None) -> float | None:
    if value is None or not reference:
        return None
    return abs(value - reference) / reference


def judge(steps: dict) -> list[dict]:
    """One verdict per requirement: {"check", "status": pass | fail | skipped, "detail"}."""
    verdicts = []

    def verdict(check: str, status: str, detail: str) -> None:
        verdicts.append({"check": check, "status": status, "detail": detail})

    def ran(name: str) -> dict | None:
        step = steps.get(name) or {"status": "missing", "reason": "the step did not run"}
        if step.get("status") == "ok":
            return step
        verdict(name, "skipped" if step.get("status") == "skipped" else "fail",
                f"{step.get('status')}: {step.get('reason') or step.get('error')}")
        return None

    doctor = ran("doctor")
    if doctor:
        failed = [c["name"] for c in doctor.get("checks", []) if c.get("status") == "FAIL"]
        verdict("doctor", "fail" if failed or doctor.get("returncode") else "pass",
                f"failed checks: {', '.join(failed)}" if failed else f"exit {doctor.get('returncode')}")
    latency = ran("latency")
    if latency:
        studio, events = latency["clocks"]["studio"]["ttft_ms"], latency["clocks"]["events"]["ttft_ms"]
        gap = relative_gap(studio, events)
        verdict("ttft", "pass" if gap is not None and gap <= TTFT_TOLERANCE else "fail",
                f"studio {studio} ms against events {events} ms: "
                + (f"{gap:.1%} apart (at most {TTFT_TOLERANCE:.0%})" if gap is not None else "not comparable"))
        energy = latency.get("energy") or {}
        verdict("energy", "pass" if energy.get("joules_per_token") else "fail",
                f"{energy.get('joules_per_token')} J/token" + (f" ({energy['note']})" if energy.get("note") else ""))
    nccl = ran("nccl")
    if nccl:
        events = nccl.get("events") or []
        verdict("nccl", "pass" if events else "fail",
                f"{len(events)} distinct events, {sum(1 for e in events if e.get('counted'))} counted; "
                f"comm {nccl.get('comm_seconds')} s")
    static = ran("static_compile")
    if static:
        records = static.get("graph_records_after_warmup")
        verdict("cuda_graphs", "pass" if records == 0 else "fail",
                f"{records} CUDA-graph record(s) and {static.get('recompiles_after_warmup')} recompile(s) after "
                "warm-up" if records is not None else f"records not countable: {static.get('records_note')}")
    if latency and static:
        keys = ("allocated_peak_bytes", "reserved_peak_bytes", "num_alloc_retries")
        missing = [f"{part}.{k}" for part, step in (("plain", latency), ("static", static))
                   for k in keys if (step.get("memory") or {}).get(k) is None]
        verdict("memory", "fail" if missing else "pass", "missing: " + ", ".join(missing) if missing else
                "plain and static: allocated, reserved and allocation retries recorded")
    return verdicts


def passed(verdicts: list[dict]) -> bool:
    return bool(verdicts) and all(v["status"] == "pass" for v in verdicts)


def assemble(machine: dict, steps: dict, verdicts: list[dict]) -> dict:
    """The JSON the run writes: what it ran on, each step's figures, the verdicts."""
    return {"issue": 21, "machine": machine, "plan_minutes": total_minutes(), "steps": steps,
            "verdicts": verdicts, "passed": passed(verdicts)}


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python3 -m bench.gpu_check")
    parser.add_argument("command", choices=("plan", "needs", "run"))
    parser.add_argument("--out", default="bench/results", help="folder for the JSON (default bench/results)")
    args = parser.parse_args(argv)
    if args.command == "needs":  # exit 1 when the carried wheels must be installed
        missing = missing_needs(installed_versions())
        print("gpu_check: needs " + ", ".join(missing) if missing else "gpu_check: every needed package imports")
        return 1 if missing else 0
    print(plan_text())
    if args.command == "plan":
        return 0
    from bench.gpu_probes import machine_facts, run_steps

    machine = machine_facts()
    path = result_path(args.out, machine.get("gpu") or "no-gpu", datetime.date.today())
    path.parent.mkdir(parents=True, exist_ok=True)

    def save(steps: dict) -> dict:  # after every step: a run stopped at its time limit keeps what it measured
        verdicts = judge(steps)
        report = assemble(machine, steps, verdicts)
        path.write_text(json.dumps(report, indent=2, default=str) + "\n")
        return report

    steps = run_steps(save)
    report = save(steps)
    verdicts = report["verdicts"]
    for v in verdicts:
        print(f"gpu_check: {v['status']:<7} {v['check']}: {v['detail']}")
    print(f"gpu_check: {'PASSED' if report['passed'] else 'NOT PASSED'}; results in {path}")
    return 0 if report["passed"] else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""bench/gpu_check: the acceptance run's plan, JSON and verdicts on CPU. The GPU steps
themselves cannot run here; they are skipped, each saying why, and the run then
does not pass."""

from __future__ import annotations

import copy
import datetime
import json
import re
import subprocess
import sys
from types import SimpleNamespace

import pytest
from conftest import ROOT

from bench import gpu_probes
from bench.clocks import host_ms, summary_ms
from bench.gpu_check import (
    BUDGET_MINUTES,
    STEPS,
    assemble,
    judge,
    missing_needs,
    passed,
    result_path,
    total_minutes,
)
from bench.selection import describe_events


def memory(retries=0):
    return {"allocated_peak_bytes": 30 * 2**30, "reserved_peak_bytes": 32 * 2**30, "num_alloc_retries": retries}


def good_steps():
    return {
        "doctor": {"status": "ok", "returncode": 0, "checks": [{"name": "packages", "status": "warn"}]},
        "load": {"status": "ok"},
        "latency": {"status": "ok", "memory": memory(),
                    "clocks": {"events": {"ttft_ms": 200.0}, "studio": {"ttft_ms": 204.0},
                               "old_logits_processor": {"ttft_ms": 40.0}},
                    "energy": {"joules_per_token": 0.5, "note": None}},
        "nccl": {"status": "ok", "comm_seconds": 0.01,
                 "events": [{"name": "ncclDevKernel_AllReduce", "device_type": "CUDA", "counted": True}]},
        "static_compile": {"status": "ok", "memory": memory(), "graph_records_after_warmup": 0,
                           "recompiles_after_warmup": 0},
    }


def statuses(steps):
    return {v["check"]: v["status"] for v in judge(steps)}


def test_the_dry_run_prints_every_step_with_its_minutes_within_ten():
    done = subprocess.run(["bash", "bench/gpu_check.sh", "--dry-run"], cwd=ROOT, capture_output=True, text=True,
                          timeout=60, env={"PATH": f"{sys.executable.rsplit('/', 1)[0]}:/usr/bin:/bin"})
    assert done.returncode == 0, done.stderr
    out = done.stdout
    for step in STEPS:
        assert re.search(rf"\d\. {step.name}\s+~\s*{step.minutes:.1f} min", out), step.name
    total = float(re.search(r"total ~([\d.]+) min", out).group(1))
    assert total == pytest.approx(total_minutes()) and total <= BUDGET_MINUTES == 10
    assert "--web-optional" in out and "TokenClock" in out and "5%" in out and "nothing was run" in out
    assert "auto" not in out  # the weak auto-beats-batched check is gone


def test_a_complete_run_passes_and_each_gap_fails():
    steps = good_steps()
    assert passed(judge(steps)) and set(statuses(steps)) == {"doctor", "ttft", "energy", "nccl", "cuda_graphs",
                                                              "memory"}
    cases = {
        "ttft": lambda s: s["latency"]["clocks"]["studio"].update(ttft_ms=211.0),  # 5.5 % off the events
        "cuda_graphs": lambda s: s["static_compile"].update(graph_records_after_warmup=1),
        "energy": lambda s: s["latency"]["energy"].update(joules_per_token=None, note="no NVML"),
        "memory": lambda s: s["static_compile"]["memory"].pop("num_alloc_retries"),
        "doctor": lambda s: s["doctor"]["checks"].append({"name": "database", "status": "FAIL"}),
        "nccl": lambda s: s["nccl"].update(events=[]),
    }
    for check, spoil in cases.items():
        steps = copy.deepcopy(good_steps())
        spoil(steps)
        assert statuses(steps)[check] == "fail", check
        assert not passed(judge(steps))
    within = good_steps()
    within["latency"]["clocks"]["studio"]["ttft_ms"] = 209.0  # 4.5 %: within
    assert statuses(within)["ttft"] == "pass"
    uncountable = good_steps()
    uncountable["static_compile"].update(graph_records_after_warmup=None, records_note="no cudagraph trees")
    verdict = next(v for v in judge(uncountable) if v["check"] == "cuda_graphs")
    assert verdict["status"] == "fail" and "no cudagraph trees" in verdict["detail"]


def test_without_cuda_the_gpu_steps_are_skipped_with_their_reason_and_the_run_does_not_pass(monkeypatch):
    monkeypatch.setattr(gpu_probes, "cuda_missing", lambda: "no CUDA device here")
    monkeypatch.setattr(gpu_probes, "doctor", lambda: {"returncode": 0, "checks": []})
    saved = []
    steps = gpu_probes.run_steps(lambda s: saved.append(json.dumps(s)))
    assert steps["doctor"]["status"] == "ok" and len(saved) == 2  # saved after the doctor, then after the skips
    for name in ("load", "latency", "nccl", "static_compile"):
        assert steps[name] == {"status": "skipped", "reason": "no CUDA device here"}
    verdicts = judge(steps)
    assert {v["status"] for v in verdicts if v["check"] != "doctor"} == {"skipped"}
    report = assemble({"gpu": None}, steps, verdicts)
    assert report["passed"] is False and json.loads(json.dumps(report)) == report


def test_a_failing_step_is_reported_and_the_rest_still_run(monkeypatch):
    monkeypatch.setattr(gpu_probes, "cuda_missing", lambda: None)
    monkeypatch.setattr(gpu_probes, "doctor", lambda: {"returncode": 0, "checks": []})

    def load(held):
        raise RuntimeError("CUDA out of memory")

    monkeypatch.setattr(gpu_probes, "load", load)
    monkeypatch.setattr(gpu_probes, "nccl", lambda: {"events": [], "comm_seconds": 0.0})
    steps = gpu_probes.run_steps()
    assert steps["load"]["status"] == "error" and "out of memory" in steps["load"]["error"]
    assert steps["latency"] == {"status": "skipped", "reason": "the model did not load"}
    assert steps["nccl"]["status"] == "ok"
    assert statuses(steps)["latency"] == "skipped" and not passed(judge(steps))


def test_the_results_file_is_named_by_the_gpu_and_the_date():
    day = datetime.date(2026, 12, 5)
    assert result_path("bench/results", "NVIDIA H200", day).name == "gpu_check-nvidia-h200-2026-12-05.json"
    assert result_path("x", "NVIDIA GH200 144G HBM3e", day).name == "gpu_check-nvidia-gh200-144g-hbm3e-2026-12-05.json"


def test_needs_are_checked_by_version_not_only_by_import():
    assert missing_needs({"sqlite-utils": "4.2.1", "transformers": "5.25.0"}) == []
    missing = missing_needs({"sqlite-utils": None, "transformers": "5.17.0"})
    assert missing == ["sqlite-utils==4.2.1 (absent)", "transformers==5.25.0 (found 5.17.0)"]


def test_clock_summaries_from_token_times():
    assert summary_ms([200.0, 215.0, 230.0]) == {"ttft_ms": 200.0, "tpot_ms": 15.0, "tokens": 3}
    assert summary_ms([]) == {"ttft_ms": None, "tpot_ms": None, "tokens": 0}
    assert host_ms(10.0, [10.25, 10.5]) == [250.0, 500.0]


def event(name, device, start, end):
    return SimpleNamespace(name=name, device_type=SimpleNamespace(name=device),
                           time_range=SimpleNamespace(start=start, end=end))


def test_the_event_table_shows_which_events_the_studio_counts():
    events = [event("c10d::allreduce_", "CPU", 0.0, 5.0), event("ncclDevKernel_AllReduce_Sum_f32", "CUDA", 10.0, 110.0),
              event("ncclDevKernel_AllReduce_Sum_f32", "CUDA", 200.0, 300.0), event("aten::ones", "CPU", 0.0, 1.0)]
    table = describe_events(events, on_cuda=True)
    assert table["selection"].startswith("runner.rank.tensor_parallel.")
    rows = {(r["name"], r["device_type"]): r for r in table["events"]}
    kernel = rows[("ncclDevKernel_AllReduce_Sum_f32", "CUDA")]
    assert kernel["count"] == 2 and kernel["total_us"] == 200.0 and kernel["counted"]
    assert not rows[("aten::ones", "CPU")]["counted"]
    assert table["comm_seconds"] >= 199e-6  # the kernels at least, whatever else a selection adds


@pytest.mark.slow
def test_the_run_on_this_cpu_writes_its_json_and_does_not_pass(tmp_path):
    done = subprocess.run([sys.executable, "-m", "bench.gpu_check", "run", "--out", str(tmp_path)], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 1, done.stdout + done.stderr
    [path] = tmp_path.glob("gpu_check-*.json")
    report = json.loads(path.read_text())
    assert report["steps"]["doctor"]["status"] == "ok" and report["steps"]["doctor"]["returncode"] == 0
    assert report["steps"]["latency"]["status"] == "skipped" and "CUDA" in report["steps"]["latency"]["reason"]
    assert report["passed"] is False and "NOT PASSED" in done.stdout

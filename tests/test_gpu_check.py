"""bench/gpu_check: the dry run needs no GPU, and the checks fail what they must."""

from __future__ import annotations

import subprocess

from conftest import ROOT

from bench.gpu_check import failures, markdown


def good(label, tps):
    return {"label": label, "status": "succeeded", "device": "cuda", "model": "m", "mode": "batched",
            "batch_size": 16, "dtype": "bfloat16", "tokens_per_second": tps, "seconds": 1.0,
            "bandwidth_gbps": 100.0, "bandwidth_utilisation": 0.5, "energy_joules": 10.0, "joules_per_token": 0.1,
            "average_power_watts": 300.0,
            "ranks": [{"device_allocated_peak_bytes": 2**30, "device_reserved_peak_bytes": 2**31}]}


def test_the_dry_run_prints_the_plan_and_exits_0():
    done = subprocess.run(["bash", "bench/gpu_check.sh", "--dry-run"], cwd=ROOT, capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    assert "studio doctor" in done.stdout and "arch:llama-2-7b" in done.stdout and "--mode auto" in done.stdout


def test_a_complete_check_passes_and_each_gap_fails():
    runs = [good("tiny", 50.0), good("7b-batched", 100.0), good("7b-auto", 150.0)]
    assert failures(runs) == []
    assert "all checks passed" in markdown(runs, {"gpu": "NVIDIA H200"}, [])
    runs[2]["tokens_per_second"] = 90.0
    runs[1]["joules_per_token"] = None
    runs[0]["device"] = "cpu"
    problems = failures(runs)
    assert any("did not beat batched" in p for p in problems)
    assert any(p.startswith("7b-batched: energy missing") for p in problems)
    assert any("ran on cpu" in p for p in problems)
    assert failures(runs[:1])[-1] == "7b-auto: no run stored"

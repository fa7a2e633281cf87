"""Migration 009's columns: peak memory one thing per column, and energy with its reason,
as the launcher hands them over (runner.host.rank_reports.run_energy) and the store writes them."""

from __future__ import annotations

import pytest

from db.store import Store
from runner.config import RunConfig
from runner.host.rank_reports import run_energy
from runner.result import RunResult


def result(cfg, ranks, status="succeeded"):
    return RunResult(status=status, config=cfg, device="cuda", dtype="bfloat16", world_size=len(ranks), tokens=100,
                     raw_tokens=125, seconds=2.0, tokens_per_second=50.0, ranks=ranks, environment={"nodes": []},
                     energy=run_energy(ranks, 100, 125))


def rank(i, joules, note=None):
    return {"rank": i, "num_prompts": 1, "tokens": 50, "raw_tokens": 60, "seconds": 2.0, "peak_memory_bytes": 7,
            "device_allocated_peak_bytes": 7, "device_reserved_peak_bytes": 9, "host_rss_peak_bytes": 1000 + i,
            "energy": {"joules": joules, "note": note}}


def test_gpu_figures_land_in_their_own_columns(db_path):
    store = Store(db_path)
    cfg = RunConfig(prompts=["a", "b"], gpus_per_node=2).to_dict()
    run_id = store.create_run(cfg)
    store.finish_run(run_id, result(cfg, [rank(0, 300.0), rank(1, 200.0)]))
    run = store.get_run(run_id)
    assert run["energy_joules"] == 500.0 and run["joules_per_token"] == 5.0
    assert run["joules_per_position"] == 4.0 and run["average_power_watts"] == pytest.approx(250.0)
    assert run["energy_note"] is None
    first = run["ranks"][0]
    assert (first["device_allocated_peak_bytes"], first["device_reserved_peak_bytes"],
            first["host_rss_peak_bytes"], first["energy_joules"]) == (7, 9, 1000, 300.0)


def test_no_counter_stores_nulls_and_the_reason(db_path):
    store = Store(db_path)
    cfg = RunConfig(prompts=["a"]).to_dict()
    run_id = store.create_run(cfg)
    store.finish_run(run_id, result(cfg, [rank(0, None, "no energy counter: CPU run")]))
    run = store.get_run(run_id)
    assert run["energy_joules"] is None and run["joules_per_token"] is None
    assert run["energy_note"] == "every rank: no energy counter: CPU run"


def test_a_failed_run_carries_no_energy(db_path):
    store = Store(db_path)
    cfg = RunConfig(prompts=["a"]).to_dict()
    run_id = store.create_run(cfg)
    store.finish_run(run_id, result(cfg, [rank(0, 300.0)], status="failed"))
    run = store.get_run(run_id)
    assert run["energy_joules"] is None and run["energy_note"] is None

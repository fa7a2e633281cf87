"""A real grid sweep on CPU processes: `--gpus 1,2 --batch-size 1,8` on synthetic
32-token prompts stores four runs in one sweep, each with its nine latency
percentiles, and the report has a Pareto front."""

from __future__ import annotations

import json

import pytest
from conftest import run_cli

from db.store import Store
from runner.host.synthetic import count_tokens, planning_tokenizer
from runner.metrics import RUN_FIELDS
from runner.models import resolve_model

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]


@pytest.fixture(scope="module")
def grid(tmp_path_factory):
    db = tmp_path_factory.mktemp("grid") / "studio.db"
    done = run_cli("run", "--gpus", "1,2", "--batch-size", "1,8", "--prompt-tokens", "32", "--num-prompts", "16",
                   "--max-new-tokens", "8", "--fixed-length", "--device", "cpu", "--json", "--db", str(db),
                   "--slo", "ttft=60000,tpot=60000", timeout=500)
    assert done.returncode == 0, done.stderr
    return db, json.loads(done.stdout)


def test_four_runs_in_one_sweep_with_every_latency_percentile(grid):
    db, runs = grid
    assert len(runs) == 4 and len({r["sweep_id"] for r in runs}) == 1
    assert sorted((r["world_size"], r["batch_size"]) for r in runs) == [(1, 1), (1, 8), (2, 1), (2, 8)]
    for r in runs:
        assert r["status"] == "succeeded" and r["prompt_tokens"] == 32 and r["tokens"] == 16 * 8
        assert all(r[name] is not None and r[name] > 0 for name in RUN_FIELDS), r
        assert r["ttft_ms_p50"] <= r["ttft_ms_p90"] <= r["ttft_ms_p99"]
        assert r["meets_slo"] is True and r["goodput_tokens_per_second"] == pytest.approx(r["tokens_per_second"])
    sweep = Store(db).get_sweep(runs[0]["sweep_id"])
    assert sweep["settings"]["axes"] == {"gpus_per_node": [1, 2], "batch_size": [1, 8], "max_new_tokens": [8],
                                         "dtype": ["auto"], "mode": ["batched"], "prompt_tokens": [32]}


def test_requests_are_consistent(grid):
    db, runs = grid
    store = Store(db)
    tokenizer = planning_tokenizer(resolve_model("tiny"))
    for summary in runs:
        run = store.get_run(summary["id"])
        assert all(count_tokens(tokenizer, o["prompt"]) == 32 for o in run["outputs"])
        for o in run["outputs"]:
            assert 0 < o["ttft_ms"] <= o["latency_ms"] and o["tpot_ms"] > 0 and o["queue_ms"] >= 0
        by_rank = {}
        for o in run["outputs"]:
            by_rank.setdefault(o["rank"], []).append(o)
        for outputs in by_rank.values():
            first_batch = outputs[: run["batch_size"]]
            # submitted at the timer start: no wait but the clock reads in between
            assert all(o["queue_ms"] < 5.0 for o in first_batch), first_batch
        if run["batch_size"] == 1:
            queues = [o["queue_ms"] for o in sorted(by_rank[0], key=lambda o: o["prompt_index"])]
            assert queues == sorted(queues) and queues[-1] > queues[0]  # one at a time: later ones wait longer


def test_report_json_has_a_pareto_front(grid):
    db, runs = grid
    done = run_cli("report", str(runs[0]["sweep_id"]), "--format", "json", "--output", str(db.parent / "r.json"),
                   "--db", str(db))
    assert done.returncode == 0, done.stderr
    report = json.loads((db.parent / "r.json").read_text())
    assert report["pareto"] and {p["run_id"] for p in report["pareto"]} <= {r["id"] for r in runs}
    assert len(report["grid"]["pareto_points"]) == 4
    assert len(report["settings_available"]) == 2  # batch 1 and batch 8, each analysed over GPU count
    # the SLO stored with the sweep: every run meets its generous limits, so each count has a best setting
    assert sum(row["best"] for row in report["grid"]["goodput"]) >= 2
    assert any("the best setting on 2 GPU(s)" in line for line in report["grid"]["goodput_text"])

"""Per-request latency, percentiles, the Pareto front, SLOs and goodput, on cases
worked by hand."""

from __future__ import annotations

import numpy as np
import pytest

from db.rows import RunRow
from runner.config import ConfigError
from runner.metrics import goodput, percentile, request_latencies, run_summary
from studio.analysis.grid import batch_scaling, goodput_rows, pareto_front, pareto_points
from studio.sweeps.slo import PRESETS, meets, parse_slo


def test_one_request_s_figures():
    # timer at 10.0 s, its batch starts at 10.5, tokens reach the host at 10.6, 10.7, 10.8, 10.9
    r = request_latencies(10.0, 10.5, [10.6, 10.7, 10.8, 10.9], tokens=3)
    assert r["queue_ms"] == pytest.approx(500) and r["ttft_ms"] == pytest.approx(100)
    assert r["latency_ms"] == pytest.approx(300)  # through its third (last real) token, not the padding after
    assert r["tpot_ms"] == pytest.approx(100)
    one = request_latencies(10.0, 10.0, [10.2], tokens=1)
    assert one["queue_ms"] == 0 and one["tpot_ms"] is None and one["ttft_ms"] == one["latency_ms"]


def test_percentiles_match_numpy():
    values = [3.0, 1.0, 4.0, 1.5, 9.0, 2.6, 5.3]
    for q in (50, 90, 99):
        assert percentile(values, q) == pytest.approx(np.percentile(values, q))
    assert percentile([], 50) is None and percentile([None, 2.0], 50) == 2.0
    summary = run_summary([{"ttft_ms": v, "tpot_ms": v / 10, "latency_ms": v * 2} for v in values])
    assert summary["ttft_ms_p90"] == pytest.approx(np.percentile(values, 90))
    assert summary["latency_ms_p99"] == pytest.approx(np.percentile([v * 2 for v in values], 99))
    assert len(summary) == 9


def test_the_pareto_front_is_the_non_dominated_set():
    runs = [RunRow({"id": i, "status": "succeeded", "num_gpus": g, "num_nodes": 1, "tokens_per_second": tps,
                    "tpot_ms_p50": tpot, "batch_size": b})
            for i, (g, tps, tpot, b) in enumerate([(1, 100, 10, 1), (1, 400, 40, 8), (1, 300, 50, 8),
                                                   (2, 400, 10, 1), (2, 600, 20, 4)], start=1)]
    points = pareto_points(runs)
    # per user: 100, 25, 20, 100, 50; per GPU: 100, 400, 300, 200, 300
    front = pareto_front(points)
    assert [p["run_id"] for p in front] == [2, 5, 4]  # 1 is beaten by 4 (same speed, more per GPU); 3 by 2
    assert [round(p["tokens_per_second_per_user"]) for p in front] == [25, 50, 100]


def test_slo_parsing():
    assert parse_slo("ttft=2000,tpot=200")["tpot_ms"] == 200
    assert parse_slo("mlperf-llama2-70b")["ttft_ms"] == PRESETS["mlperf-llama2-70b"]["ttft_ms"] == 2000
    assert parse_slo(None) is None
    for bad in ("ttft=2000", "ttft=2s,tpot=200", "tpot=1,ttft=-3", "latency=5,tpot=2", "ttft=1,tpot=2,x=3", "fast"):
        with pytest.raises(ConfigError, match="^slo: "):
            parse_slo(bad)


def test_goodput_counts_the_tokens_of_requests_within_both_limits():
    slo = {"ttft_ms": 100.0, "tpot_ms": 20.0}
    requests = [{"tokens": 10, "ttft_ms": 50, "tpot_ms": 10},  # in
                {"tokens": 8, "ttft_ms": 150, "tpot_ms": 10},  # TTFT too slow
                {"tokens": 6, "ttft_ms": 90, "tpot_ms": 25},  # TPOT too slow
                {"tokens": 1, "ttft_ms": 99, "tpot_ms": None}]  # one token: no TPOT to miss
    assert goodput(requests, 2.0, slo) == pytest.approx((10 + 1) / 2.0)
    assert goodput(requests, None, slo) is None


def test_the_best_setting_per_gpu_count_meets_the_slo():
    slo = {"ttft_ms": 100.0, "tpot_ms": 20.0}
    runs = [RunRow({"id": 1, "status": "succeeded", "num_gpus": 1, "num_nodes": 1, "batch_size": 1, "seconds": 1.0,
                    "tokens_per_second": 50, "ttft_ms_p99": 40, "tpot_ms_p99": 10}),
            RunRow({"id": 2, "status": "succeeded", "num_gpus": 1, "num_nodes": 1, "batch_size": 8, "seconds": 1.0,
                    "tokens_per_second": 300, "ttft_ms_p99": 400, "tpot_ms_p99": 15})]
    outputs = {1: [{"tokens": 50, "ttft_ms": 40, "tpot_ms": 10}], 2: [{"tokens": 300, "ttft_ms": 400, "tpot_ms": 15}]}
    rows = {r["run_id"]: r for r in goodput_rows(runs, outputs, slo)}
    assert rows[1]["best"] and not rows[2]["best"]  # batch 8 is faster but misses the TTFT limit
    assert rows[1]["goodput"] == 50 and rows[2]["goodput"] == 0 and meets(runs[0], slo) and not meets(runs[1], slo)


def test_batch_scaling_finds_where_a_larger_batch_stops_paying():
    runs = [RunRow({"id": i, "sweep_id": 1, "status": "succeeded", "num_gpus": 1, "num_nodes": 1, "batch_size": b,
                    "tokens_per_second": tps, "seconds": 1.0, "bandwidth_utilisation": u})
            for i, (b, tps, u) in enumerate([(1, 100, 0.9), (2, 195, 0.9), (4, 380, 0.85), (8, 420, 0.5)], start=1)]
    (row,) = batch_scaling(runs)
    assert [s["batch_size"] for s in row["steps"]] == [1, 2, 4, 8]
    assert row["saturates_at"] == 8  # 4 -> 8 bought 1.1x for 2x the batch
    assert row["steps"][-1]["bandwidth_utilisation"] == 0.5


def test_the_best_setting_per_gpu_count_is_said_in_words():
    from studio.analysis.grid import describe_goodput

    slo = {"ttft_ms": 100.0, "tpot_ms": 20.0, "name": "ttft=100 ms, tpot=20 ms"}
    rows = [{"gpus": 1, "batch_size": 1, "goodput": 50.0, "tokens_per_second": 50.0, "best": True},
            {"gpus": 1, "batch_size": 8, "goodput": 0.0, "tokens_per_second": 300.0, "best": False},
            {"gpus": 2, "batch_size": 8, "goodput": 0.0, "tokens_per_second": 500.0, "best": False}]
    lines = describe_goodput(rows, slo)
    assert lines[0] == ("Under the SLO (ttft=100 ms, tpot=20 ms), the best setting on 1 GPU(s) is batch size 1: "
                        "goodput 50.0 tokens/s of 50.0.")
    assert lines[1] == "Under the SLO (ttft=100 ms, tpot=20 ms), no setting on 2 GPU(s) meets it at p99."

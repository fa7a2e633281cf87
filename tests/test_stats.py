"""studio.analysis.stats.scaling_series, the one place per-setting figures are computed,
against a sweep worked by hand, and the SQL view sweep_summary against it."""

from __future__ import annotations

import math

import pytest

from db.rows import RunRow
from db.store import Store
from runner.result import RunResult
from studio.analysis.stats import run_speedups, scaling_series
from studio.web import views

# One sweep: 1 GPU three times, 1 node x 2 GPUs twice (and a failure), 2 nodes x 1 GPU once,
# 4 GPUs once. (gpus per node, nodes, tokens/s, seconds)
SWEEP = [(1, 1, 10.0, 3.2), (1, 1, 30.0, 1.1), (1, 1, 20.0, 1.6),
         (2, 1, 40.0, 0.8), (2, 1, 50.0, 0.64), (2, 1, None, None),
         (1, 2, 70.0, 0.46), (4, 1, 60.0, 0.53)]


def rows(sweep_id: int = 1) -> list[dict]:
    return [RunRow({"id": i, "sweep_id": sweep_id, "status": "succeeded" if tps else "failed", "num_gpus": g,
                    "num_nodes": n, "tokens_per_second": tps, "seconds": secs, "repeat_index": i, "imbalance": 1.0})
            for i, (g, n, tps, secs) in enumerate(SWEEP, start=1)]


def test_points_are_world_sizes_and_the_failure_is_left_out():
    (series,) = scaling_series(rows())
    assert [p.x for p in series.points] == [1, 2, 4]
    assert [sorted(r["id"] for r in p.runs) for p in series.points] == [[1, 2, 3], [4, 5, 7], [8]]
    assert series.baseline is series.points[0]


def test_median_interval_speedup_and_efficiency_by_hand():
    one, two, four = scaling_series(rows())[0].points
    assert one.median("tokens_per_second") == 20.0
    assert two.median("tokens_per_second") == 50.0  # 40, 50, 70 (1x2, 1x2, 2x1)
    assert two.median("seconds") == 0.64
    # 95% interval of the mean of 40, 50, 70: mean 53.33, s = 15.275, t(0.975, 2) = 4.3027
    half = 4.302653 * math.sqrt(((40 - 160 / 3) ** 2 + (50 - 160 / 3) ** 2 + (70 - 160 / 3) ** 2) / 2) / math.sqrt(3)
    assert two.stats["tokens_per_second"]["ci_low"] == pytest.approx(max(0.0, 160 / 3 - half), abs=1e-4)
    assert two.stats["tokens_per_second"]["ci_high"] == pytest.approx(160 / 3 + half, abs=1e-4)
    assert (two.speedup, two.ideal_speedup, two.efficiency) == (pytest.approx(2.5), 2.0, pytest.approx(1.25))
    assert (four.speedup, four.ideal_speedup, four.efficiency) == (pytest.approx(3.0), 4.0, pytest.approx(0.75))
    assert four.speedup_ci is None  # one run: no interval rather than a made-up one
    assert one.speedup == 1.0 and one.speedup_ci is None
    assert two.spread("tokens_per_second") == (20.0, 10.0)


def test_baseline_is_the_smallest_world_size_that_succeeded():
    only_failed_one = [r for r in rows() if r["num_gpus"] * r["num_nodes"] > 1]
    (series,) = scaling_series(only_failed_one)
    assert series.baseline.x == 2
    assert [p.ideal_speedup for p in series.points] == [1.0, 2.0]
    assert series.points[1].speedup == pytest.approx(60.0 / 50.0)


def test_each_sweep_is_its_own_series_and_a_lone_run_too():
    lone = RunRow({"id": 99, "sweep_id": None, "status": "succeeded", "num_gpus": 1, "num_nodes": 1,
                   "tokens_per_second": 5.0, "seconds": 1.0})
    all_series = scaling_series(rows(1) + [RunRow(r, id=r["id"] + 20, sweep_id=2) for r in rows()] + [lone])
    assert [s.source for s in all_series] == [("sweep", 1), ("sweep", 2), ("run", 99)]


def test_run_speedups_and_the_tables_read_the_same_figures():
    speedups = run_speedups(rows())
    assert speedups[7] == pytest.approx(70.0 / 20.0) and 6 not in speedups
    table = views.compare_table(rows())
    assert list(table["GPUs"]) == [1, 2, 4]
    assert list(table["median tokens/s"]) == [20.0, 50.0, 60.0]
    assert list(table["speedup"]) == [1.0, 2.5, 3.0] and list(table["efficiency"]) == [1.0, 1.25, 0.75]
    results = views.results_table(rows())
    assert dict(zip(results["run"], results["speedup"]))[5] == 2.5


def test_the_sql_view_computes_what_scaling_series_computes(db_path):
    store = Store(db_path)
    sweep_id = store.create_sweep({"model": "tiny", "mode": "batched", "batch_size": 4, "max_new_tokens": 8,
                                   "num_prompts": 4}, [1, 2, 4], 3)
    for g, n, tps, secs in SWEEP:
        config = {"model": "tiny", "mode": "batched", "batch_size": 4, "max_new_tokens": 8, "num_gpus": g,
                  "num_nodes": n, "prompts": ["a", "b", "c", "d"]}
        run_id = store.create_run(config, sweep_id=sweep_id)
        result = (RunResult(status="succeeded", config=config, world_size=g * n, tokens=32, raw_tokens=32,
                            seconds=secs, tokens_per_second=tps) if tps else
                  RunResult.failure(config, "failed", "rank 1: out of memory"))
        store.finish_run(run_id, result)
    (series,) = scaling_series(store.get_sweep(sweep_id)["runs"])
    view = {r["total_gpus"]: r for r in store._rows("SELECT * FROM sweep_summary WHERE sweep_id = ?", (sweep_id,))}
    assert sorted(view) == [p.x for p in series.points]
    for p in series.points:
        row = view[p.x]
        assert row["median_tokens_per_second"] == pytest.approx(p.median("tokens_per_second"))
        assert row["median_seconds"] == pytest.approx(p.median("seconds"))
        assert row["speedup"] == pytest.approx(p.speedup)
        assert row["efficiency"] == pytest.approx(p.efficiency)


def test_the_sql_view_keeps_layouts_apart_as_scaling_series_does(db_path):
    from rowkit import layout_sweep

    store = Store(db_path)
    sweep_id, _ = layout_sweep(store)
    series = scaling_series(store.get_sweep(sweep_id)["runs"])
    view = {(r["total_gpus"], r["tp_size"]): r
            for r in store._rows("SELECT * FROM sweep_summary WHERE sweep_id = ?", (sweep_id,))}
    points = {(p.x, s.setting["tp_size"]): p for s in series for p in s.points}
    assert sorted(view) == sorted(points) and len({tp for _, tp in view}) == 3
    for key, p in points.items():
        assert view[key]["median_tokens_per_second"] == pytest.approx(p.median("tokens_per_second"))
        assert view[key]["speedup"] == pytest.approx(p.speedup)
        assert view[key]["dp_size"] == key[0] // key[1]

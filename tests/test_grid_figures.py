"""The grid's charts as pure functions of stored rows."""

from __future__ import annotations

from db.rows import RunRow
from studio.analysis.grid import grid_summary
from studio.charts import grid as grid_figures


def run(id, gpus, batch, tps, tpot, *, repeat=0, prompt_tokens=32):
    return RunRow({"id": id, "sweep_id": 1, "status": "succeeded", "num_gpus": gpus, "num_nodes": 1, "batch_size": batch,
                   "prompt_tokens": prompt_tokens, "mode": "batched", "dtype": "float32", "max_new_tokens": 8,
                   "tokens_per_second": tps, "seconds": 1.0, "tpot_ms_p50": tpot, "repeat_index": repeat})


RUNS = [run(1, 1, 1, 100, 10), run(2, 1, 8, 500, 16), run(3, 2, 1, 190, 10), run(4, 2, 8, 900, 17),
        run(5, 2, 8, 1000, 15, repeat=1), run(6, 2, 8, 950, 16, repeat=2)]


def test_pareto_figure_draws_every_run_and_the_front():
    fig = grid_figures.pareto_figure(grid_summary(RUNS, {}, None))
    markers = [t for t in fig.data if t.mode == "markers"]
    assert sum(len(t.x) for t in markers) == 6 and {t.name for t in markers} == {"1 GPU(s)", "2 GPU(s)"}
    front = next(t for t in fig.data if t.name == "Pareto front")
    # run 5 (1000/15 tokens/s per user, 500 per GPU) beats runs 2, 4 and 6; run 1 (100, 100) beats run 3
    assert list(front.x) == [1000 / 15, 100.0] and list(front.y) == [500.0, 100.0]


def test_heatmap_cells_are_the_medians_of_the_repeats():
    fig = grid_figures.heatmap_figure(RUNS, "gpus", "batch_size")
    heat = fig.data[0]
    assert list(heat.x) == ["1", "2"] and list(heat.y) == ["1", "8"]
    assert heat.z[1][1] == 950  # 2 GPUs, batch 8: the median of 900, 1000, 950
    assert heat.z[0] == (100, 190) or list(heat.z[0]) == [100, 190]


def test_lines_against_any_setting_with_panels():
    fig = grid_figures.lines_figure(RUNS, "batch_size", "gpus")
    assert sorted(t.name for t in fig.data) == ["GPUs (processes) 1", "GPUs (processes) 2"]
    assert list(next(t for t in fig.data if t.name.endswith("2")).y) == [190, 950]
    faceted = grid_figures.lines_figure(RUNS + [run(7, 1, 1, 80, 12, prompt_tokens=128)], "gpus", "batch_size",
                                        facet="prompt_tokens")
    titles = [a.text for a in faceted.layout.annotations]
    assert titles == ["prompt tokens 32", "prompt tokens 128"] or titles == ["prompt tokens 128", "prompt tokens 32"]


def test_the_lines_chart_ticks_only_at_the_values_run():
    fig = grid_figures.lines_figure(RUNS, "gpus", "batch_size")
    assert list(fig.layout.xaxis.tickvals) == [1, 2]

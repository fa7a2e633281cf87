"""The layout figures: grouped bars per GPU count with a colour per tp, the all-reduce
share, and the Pareto front coloured by layout when tp varies."""

from __future__ import annotations

from db.rows import RunRow
from studio.analysis.grid import grid_summary
from studio.analysis.layouts import layout_rows, layout_summary
from studio.charts import grid as grid_figures
from studio.charts.layouts import comm_figure, layout_figure


def run(i, gpus, tp, tps, ttft=None, tpot=None, comm=None):
    return RunRow({"id": i, "sweep_id": 1, "status": "succeeded", "num_gpus": gpus, "num_nodes": 1, "tp_size": tp,
                   "tokens_per_second": tps, "seconds": 1.0, "ttft_ms_p50": ttft, "tpot_ms_p50": tpot,
                   "comm_fraction": comm})


RUNS = [run(1, 2, 1, 200.0, 90.0, 40.0), run(2, 2, 2, 120.0, 60.0, 24.0, 0.18), run(3, 4, 1, 400.0, 95.0, 41.0),
        run(4, 4, 2, 230.0, 62.0, 23.0, 0.2), run(5, 4, 4, 130.0, 40.0, 14.0, 0.3)]


def test_layout_bars_group_by_gpu_count_with_a_colour_per_tp():
    fig = layout_figure(layout_rows(RUNS))
    assert fig.layout.barmode == "group"
    assert [a.text for a in fig.layout.annotations] == ["tokens/s", "TTFT p50 (ms)", "TPOT p50 (ms)"]
    first = [t for t in fig.data if t.xaxis == "x"]
    assert [t.name for t in first] == ["tp 1 (replicas)", "tp 2", "tp 4"]
    tp4 = first[2]
    assert list(tp4.x) == ["4 GPUs"] and list(tp4.y) == [130.0] and list(tp4.text) == ["tp 4"]
    assert len({t.marker.color for t in first}) == 3
    # the same tp keeps its colour in every panel, and shows once in the legend
    assert {t.marker.color for t in fig.data if t.name == "tp 2"} == {first[1].marker.color}
    assert sum(1 for t in fig.data if t.showlegend) == 3


def test_a_panel_no_run_measured_is_left_out_and_one_tp_draws_nothing():
    bare = [{**r, "ttft_ms_p50": None, "tpot_ms_p50": None} for r in RUNS]
    fig = layout_figure(layout_rows(bare))
    assert [a.text for a in fig.layout.annotations] == ["tokens/s"]
    single = layout_figure(layout_rows([r for r in RUNS if r["tp_size"] == 1]))
    assert not single.data and "two or more tensor-parallel sizes" in single.layout.annotations[0].text


def test_comm_figure_shows_a_bar_per_layout_in_percent():
    fig = comm_figure(layout_summary(RUNS)["comm"])
    assert [t.name for t in fig.data] == ["tp 2", "tp 4"]
    assert list(fig.data[0].x) == ["tp 2", "2 × tp 2"] and list(fig.data[0].y) == [18.0, 20.0]
    assert not comm_figure([]).data


def test_the_pareto_front_is_coloured_by_layout_when_tp_varies():
    fig = grid_figures.pareto_figure(grid_summary(RUNS, {}, None))
    names = [t.name for t in fig.data if t.mode == "markers"]
    assert names == ["2 replicas (2 GPUs)", "4 replicas (4 GPUs)", "tp 2 (2 GPUs)", "2 × tp 2 (4 GPUs)",
                     "tp 4 (4 GPUs)"]
    colours = {t.name: t.marker.color for t in fig.data if t.mode == "markers"}
    assert colours["2 replicas (2 GPUs)"] == colours["4 replicas (4 GPUs)"] != colours["tp 2 (2 GPUs)"]
    symbols = {t.name: t.marker.symbol for t in fig.data if t.mode == "markers"}
    assert symbols["tp 2 (2 GPUs)"] != symbols["2 × tp 2 (4 GPUs)"]
    assert "layout 2 × tp 2" in next(t for t in fig.data if t.name == "2 × tp 2 (4 GPUs)").hovertext[0]
    # one layout: a colour per GPU count, as before
    plain = grid_figures.pareto_figure(grid_summary([r for r in RUNS if r["tp_size"] == 1], {}, None))
    assert [t.name for t in plain.data if t.mode == "markers"] == ["2 GPU(s)", "4 GPU(s)"]

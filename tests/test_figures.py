"""The Plotly figure builders: pure functions of run rows, checked on their data."""

from __future__ import annotations

import re

import pytest

from db.rows import RunRow
from studio.analysis.stats import scaling_series
from studio.charts import figures


def run(id, gpus, tps, *, sweep=1, status="succeeded", repeat=0, nodes=1, seconds=None, **extra):
    row = {
        "id": id, "sweep_id": sweep, "num_gpus": gpus, "num_nodes": nodes, "repeat_index": repeat,
        "status": status, "tokens_per_second": tps if status == "succeeded" else None,
        "seconds": seconds if seconds is not None else (100 / tps if tps else None),
        "model": "tiny", "mode": "batched", "batch_size": 16, "max_new_tokens": 8, "num_prompts": 6,
        "device": "cpu", "dtype": "float32", "label": "", "config": {"fixed_length": False},
    }
    row.update(extra)
    return RunRow(row)


def data_traces(fig):
    return [t for t in fig.data if not t.name.startswith("ideal")]


def test_series_group_by_sweep_and_count_processes_over_nodes():
    runs = [run(1, 1, 100), run(2, 2, 150), run(3, 2, 400, sweep=2, nodes=2), run(4, 1, 50, sweep=2),
            run(5, 2, None, status="failed")]
    series = scaling_series(runs)
    assert [s.source for s in series] == [("sweep", 1), ("sweep", 2)]
    assert [p.x for p in series[0].points] == [1, 2]
    assert [p.x for p in series[1].points] == [1, 4]  # 2 GPUs on each of 2 nodes
    assert all(r["status"] == "succeeded" for s in series for p in s.points for r in p.runs)


def test_throughput_marker_is_the_median_and_bars_span_the_repeats():
    runs = [run(1, 1, 100), run(2, 1, 110, repeat=1), run(3, 1, 130, repeat=2), run(4, 2, 180)]
    fig = figures.throughput_figure(runs)
    measured = data_traces(fig)[0]
    assert list(measured.x) == [1, 2]
    assert list(measured.y) == [110, 180]
    assert list(measured.error_y.array) == [20, 0]  # up to the fastest repeat
    assert list(measured.error_y.arrayminus) == [10, 0]  # down to the slowest
    assert measured.error_y.visible is True


def test_throughput_without_repeats_has_no_error_bars_and_an_ideal_line():
    fig = figures.throughput_figure([run(1, 1, 100), run(2, 2, 150), run(3, 4, 200)])
    assert data_traces(fig)[0].error_y.visible is False
    ideal = [t for t in fig.data if t.name.startswith("ideal")]
    assert len(ideal) == 1 and list(ideal[0].y) == [100, 200, 400]


def test_hover_shows_each_runs_settings():
    fig = figures.throughput_figure([run(7, 1, 100, batch_size=32, model="arch:cpu-50m"),
                                     run(8, 2, 150, batch_size=32, model="arch:cpu-50m")])
    hover = data_traces(fig)[0].hovertext[0]
    assert "run 7" in hover and "batch size 32" in hover and "arch:cpu-50m" in hover and "6 prompts" in hover


def test_a_grid_sweep_draws_a_line_per_setting_named_by_what_differs():
    runs = [run(1, 1, 100, batch_size=1), run(2, 2, 180, batch_size=1), run(3, 1, 500, batch_size=8),
            run(4, 2, 900, batch_size=8)]
    names = [t.name for t in data_traces(figures.throughput_figure(runs))]
    assert len(names) == 2 and names[0].endswith("batch 1") and names[1].endswith("batch 8")
    speedups = [list(t.y) for t in data_traces(figures.speedup_figure(runs)) if t.name.startswith("sweep")]
    assert speedups == [[1.0, 1.8], [1.0, 1.8]]  # each line over its own 1-GPU point


def test_speedup_is_over_the_smallest_count_with_the_ideal_line():
    fig = figures.speedup_figure([run(1, 1, 100), run(2, 2, 150), run(3, 4, 220)])
    measured, ideal = fig.data[0], fig.data[-1]
    assert list(measured.y) == pytest.approx([1.0, 1.5, 2.2])
    assert ideal.name.startswith("ideal") and list(ideal.x) == [1, 2, 4] and list(ideal.y) == [1, 2, 4]


def test_speedup_baseline_is_per_sweep():
    runs = [run(1, 1, 100), run(2, 2, 200), run(3, 2, 300, sweep=2), run(4, 4, 450, sweep=2)]
    fig = figures.speedup_figure(runs)
    by_name = {t.name: list(t.y) for t in fig.data}
    sweep2 = next(v for k, v in by_name.items() if k.startswith("sweep 2"))
    assert sweep2 == pytest.approx([1.0, 1.5])
    assert any(k.startswith("ideal (linear from 2)") for k in by_name)


def test_wall_time_plots_the_slowest_ranks_generation_seconds():
    fig = figures.wall_time_figure([run(1, 1, 100, seconds=4.0), run(2, 2, 150, seconds=2.5)])
    assert list(fig.data[0].y) == [4.0, 2.5]
    assert len(fig.data) == 1  # no ideal line on a time chart


def test_nothing_to_plot_says_so():
    fig = figures.throughput_figure([run(1, 1, None, status="failed")])
    assert not fig.data
    assert "No finished runs" in fig.layout.annotations[0].text


def test_rank_figure_has_tokens_seconds_and_memory_per_rank():
    detail = {"id": 3, "ranks": [
        {"rank": 0, "node": 0, "tokens": 40, "seconds": 1.5, "peak_memory_bytes": 512 * 2**20},
        {"rank": 1, "node": 0, "tokens": 24, "seconds": 0.9, "peak_memory_bytes": 256 * 2**20},
    ]}
    fig = figures.rank_figure(detail)
    assert [list(t.y) for t in fig.data] == [[40, 24], [1.5, 0.9], [512, 256]]
    assert list(fig.data[0].x) == ["rank 0", "rank 1"]


def test_phases_put_generation_against_overhead():
    phases = {"queue": 1.0, "launch": 2.0, "load": 3.0, "generate": 0.5, "gather": 0.1, "total": 6.0,
              "store": 0.2}
    generate, overhead = figures.overhead_seconds(phases)
    assert generate == 0.5
    assert overhead == pytest.approx(6.0 + 1.0 + 0.2 - 0.5)
    fig = figures.phases_figure({"id": 9, "phases": phases})
    assert list(fig.data[0].y) == ["queue", "launch", "load", "generate", "gather", "store"]
    assert "overhead 6.70 s" in fig.layout.title.text


def test_charts_download_is_one_self_contained_page():
    runs = [run(1, 1, 100), run(2, 2, 150)]
    page = figures.figures_html([figures.throughput_figure(runs), figures.speedup_figure(runs)], title="A <b>")
    assert page.count("plotly.js v") >= 1  # the library itself is inlined ...
    assert not re.search(r"<script[^>]+src=", page)  # ... and nothing is fetched
    assert page.count('class="plotly-graph-div"') == 2
    assert "<title>A &lt;b&gt;</title>" in page


def test_the_count_axis_says_what_the_runs_counted():
    from studio.charts.figures import count_axis_title, throughput_figure

    gpu = [RunRow({"id": 1, "device": "cuda", "num_gpus": 1, "world_size": 1, "status": "succeeded",
                   "tokens_per_second": 10.0, "seconds": 1.0})]
    cpu = [RunRow({**gpu[0], "id": 2, "device": "cpu"})]
    assert throughput_figure(gpu).layout.xaxis.title.text == "GPUs"
    assert count_axis_title(cpu) == "CPU processes (no GPU)"
    assert count_axis_title(gpu + cpu) == "GPUs (CPU processes for the CPU runs)"
    assert count_axis_title([{"config": {"device": "cuda:0"}}]) == "GPUs"


def test_the_phases_chart_says_what_each_phase_is():
    from studio.charts.figures import phases_figure

    fig = phases_figure({"id": 3, "phases": {"load": 1.0, "generate": 0.5, "roofline": 0.9, "total": 2.6}})
    bars = fig.data[0]
    hover = dict(zip(bars.y, bars.customdata))
    assert "not in tokens/s" in hover["roofline"] and hover["generate"] == "generation (timed)"
    assert any("only generate is timed" in a.text for a in fig.layout.annotations)
    # said on the chart, not only on hover: a phone or a screenshot has no hover
    assert any("roofline: a memory-bandwidth probe" in a.text for a in fig.layout.annotations)
    without = phases_figure({"id": 4, "phases": {"load": 1.0, "generate": 0.5, "total": 1.6}})
    assert not any("roofline" in a.text for a in without.layout.annotations)

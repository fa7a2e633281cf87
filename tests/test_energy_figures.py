"""The joules-per-token chart draws measured figures only, and says why when there are none."""

from __future__ import annotations

from studio.energy_figures import energy_points, joules_per_token_figure


def run(gpus, jpt, status="succeeded", note=None, batch=16):
    return {"status": status, "model": "tiny", "mode": "batched", "batch_size": batch, "num_gpus": gpus,
            "num_nodes": 1, "joules_per_token": jpt, "energy_note": note}


def test_medians_per_gpu_count_and_only_measured_runs():
    runs = [run(1, 2.0), run(1, 4.0), run(1, 3.0), run(2, 1.5), run(4, None, note="every rank: CPU run"),
            run(2, 99.0, status="failed")]
    series, reasons = energy_points(runs)
    assert series == {"tiny · batched · batch 16": [(1, 3.0, 3), (2, 1.5, 1)]}
    assert reasons == ["every rank: CPU run"]
    fig = joules_per_token_figure(runs)
    assert list(fig.data[0].x) == [1, 2] and list(fig.data[0].y) == [3.0, 1.5]


def test_no_energy_is_an_empty_chart_that_says_why():
    fig = joules_per_token_figure([run(1, None, note="every rank: no energy counter: CPU run")])
    assert not fig.data
    assert "no energy counter: CPU run" in fig.layout.annotations[0].text

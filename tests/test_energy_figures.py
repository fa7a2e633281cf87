"""The joules-per-token chart draws measured figures only, and says why when there are none."""

from __future__ import annotations

from db.rows import RunRow
from studio.charts.energy import energy_reasons, has_energy, joules_per_token_figure


def run(id, gpus, jpt, status="succeeded", note=None, batch=16):
    return RunRow({"id": id, "sweep_id": 1, "status": status, "model": "tiny", "mode": "batched", "batch_size": batch,
                   "num_gpus": gpus, "num_nodes": 1, "joules_per_token": jpt, "energy_note": note,
                   "tokens_per_second": 100.0 if status == "succeeded" else None, "seconds": 1.0})


def test_medians_per_gpu_count_and_only_measured_runs():
    runs = [run(1, 1, 2.0), run(2, 1, 4.0), run(3, 1, 3.0), run(4, 2, 1.5), run(5, 4, None, note="every rank: CPU run"),
            run(6, 2, 99.0, status="failed")]
    assert has_energy(runs) and energy_reasons(runs) == ["every rank: CPU run"]
    fig = joules_per_token_figure(runs)
    assert list(fig.data[0].x) == [1, 2] and list(fig.data[0].y) == [3.0, 1.5]
    assert list(fig.data[0].customdata) == [3, 1]


def test_no_energy_is_an_empty_chart_that_says_why():
    runs = [run(1, 1, None, note="every rank: no energy counter: CPU run")]
    fig = joules_per_token_figure(runs)
    assert not fig.data and not has_energy(runs)
    assert "no energy counter: CPU run" in fig.layout.annotations[0].text

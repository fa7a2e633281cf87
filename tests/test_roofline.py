"""Bandwidth roofline arithmetic (torch-free)."""

from __future__ import annotations

import pytest

from runner.roofline import (
    GPU_BANDWIDTH,
    MEASURED_LABEL,
    bandwidth_row,
    bytes_moved,
    describe,
    known_bandwidth_gbps,
    kv_positions_read,
    run_roofline,
    utilisation,
)


def test_known_gpus():
    assert known_bandwidth_gbps("NVIDIA H100 80GB HBM3") == 3350
    assert known_bandwidth_gbps("NVIDIA H100 PCIe") == 2000
    assert known_bandwidth_gbps("NVIDIA H200") == 4800
    assert known_bandwidth_gbps("NVIDIA A100-SXM4-40GB") == 1555
    assert known_bandwidth_gbps("NVIDIA A100-SXM4-80GB") == 2039
    assert known_bandwidth_gbps("NVIDIA A10G") == 600
    assert known_bandwidth_gbps("NVIDIA L4") == 300
    assert known_bandwidth_gbps("NVIDIA L40S") == 864
    assert known_bandwidth_gbps("NVIDIA GeForce RTX 3090") == 936
    assert known_bandwidth_gbps("NVIDIA GeForce RTX 4090") == 1008
    assert known_bandwidth_gbps("Tesla V100-SXM2-16GB") == 900
    assert known_bandwidth_gbps("Some CPU") is None


def test_gh200_is_not_read_as_an_h200_nor_h20_as_h200():
    assert known_bandwidth_gbps("NVIDIA GH200 480GB") == 4000
    assert known_bandwidth_gbps("NVIDIA H200 NVL") == 4800
    assert known_bandwidth_gbps("NVIDIA H20") == 4000
    assert known_bandwidth_gbps("NVIDIA B200") == 8000
    assert known_bandwidth_gbps("NVIDIA H800") == 3350
    assert known_bandwidth_gbps("NVIDIA A40") == 696
    assert known_bandwidth_gbps("AMD Instinct MI300X") == 5300
    # an L40S is not an L40 row nor an L4 one, an A100 not an A10
    assert bandwidth_row("NVIDIA L40S")[2] == "NVIDIA L40S"
    assert bandwidth_row("NVIDIA A100-PCIE-40GB")[2] == "NVIDIA A100-SXM4-40GB"


@pytest.mark.parametrize("row", GPU_BANDWIDTH, ids=[r[2] for r in GPU_BANDWIDTH])
def test_every_row_is_reached_by_its_own_name(row):
    """A row shadowed by a broader pattern above it would never be used."""
    assert bandwidth_row(row[2]) == row


def test_a_part_without_a_settled_figure_is_measured_not_guessed():
    assert bandwidth_row("NVIDIA GH200 144G HBM3e") is not None
    assert known_bandwidth_gbps("NVIDIA GH200 144G HBM3e") is None


def test_a_skipped_probe_says_why_in_the_run_figures():
    ranks = [{"seconds": 2.0, "roofline": {"bytes": 4e9, "peak_gbps": None, "rank": 0,
                                           "peak_source": f"X, {MEASURED_LABEL}",
                                           "peak_note": "bandwidth probe skipped: 0.10 GiB free"}}]
    fig = run_roofline(ranks)
    assert fig["utilisation"] is None and "0.10 GiB free" in fig["peak_note"]
    assert "0.10 GiB free" in describe(fig)


def test_kv_reads_grow_with_each_step():
    # 2 rows padded to 10; steps read 10, 11, 12 positions per row
    assert kv_positions_read([10, 7], 3) == 2 * (10 + 11 + 12)


def test_bytes_moved_and_utilisation():
    # llama-2-7b bf16 at batch 16: weights dominate
    weights, kv = 13_476_831_232, 2 * 32 * 32 * 128 * 2
    total = bytes_moved(weights, kv, [([20] * 16, 100)])
    assert total == 100 * weights + kv * 16 * (100 * 20 + 100 * 99 // 2)
    fig = utilisation(total, seconds=total / 1.675e12, peak_gbps=3350)  # half of an H100's peak
    assert abs(fig["utilisation"] - 0.5) < 1e-9


def test_run_figures_add_ranks_bytes_over_the_slowest_time():
    ranks = [{"seconds": 2.0, "roofline": {"bytes": 4e9, "peak_gbps": 10.0, "rank": 0}},
             {"seconds": 4.0, "roofline": {"bytes": 4e9, "peak_gbps": 10.0, "rank": 1}}]
    fig = run_roofline(ranks)
    assert fig["achieved_gbps"] == 2.0 and fig["utilisation"] == 0.1
    assert run_roofline([{"seconds": 1.0}]) is None
    assert "10%" in describe({**fig, "peak_source": "test"}) and "not measured" in describe(None)


def test_phase_breakdown_splits_generation_from_overhead():
    from runner.phases import breakdown
    from runner.phases import describe as describe_phases

    phases = {"queue": 1.0, "launch": 2.0, "imports": 3.0, "load": 2.0, "warmup": 1.0, "barrier": 0.0,
              "generate": 4.0, "gather": 0.5, "total": 13.0, "store": 0.5}
    b = breakdown(phases)
    assert b["end_to_end"] == 14.5 and b["generation"] == 4.0 and b["overhead"] == 10.5
    other = next(r for r in b["rows"] if r["phase"] == "other")
    assert abs(other["seconds"] - 0.5) < 1e-9  # 13 s of launch..result, 12.5 s in named phases
    assert abs(sum(r["share"] for r in b["rows"]) - 1.0) < 1e-9
    assert "overhead 10.5 s" in describe_phases(phases) and "not recorded" in describe_phases(None)

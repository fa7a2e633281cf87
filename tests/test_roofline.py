"""Bandwidth roofline arithmetic (torch-free)."""

from __future__ import annotations

from runner.roofline import bytes_moved, describe, known_bandwidth_gbps, kv_positions_read, run_roofline, utilisation


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

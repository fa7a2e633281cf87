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
    kv_positions_moved,
    kv_positions_read,
    run_roofline,
    traffic,
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
    # the dynamic cache moves its positions three times a step (read, rewrite, attention)
    assert total == 100 * weights + 3 * kv * 16 * (100 * 20 + 100 * 99 // 2)
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


# A known config: 2 layers, 4 query heads, 2 key-value heads of 16 dimensions, bfloat16.
SMALL = {"model_type": "llama", "vocab_size": 100, "hidden_size": 64, "intermediate_size": 128,
         "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2}


def test_each_cache_kind_moves_its_own_kv_bytes_on_a_known_config():
    from runner.planner import shape_from_config

    shape = shape_from_config(SMALL, "bfloat16")
    kv = 2 * 2 * 2 * 16 * 2  # keys and values x layers x kv heads x head dim x 2 bytes
    assert shape.kv_bytes_per_token == kv == 256
    weights = shape.weight_bytes
    batches = [([10, 7], 3)]  # 2 rows padded to 10, 3 decode steps: rows hold 10, 11, 12 positions
    held = 2 * (10 + 11 + 12)
    # dynamic: torch.cat reads the old cache and writes the new one, attention reads the new one
    dynamic = traffic(weights, kv, batches, "dynamic")
    assert dynamic["weight_bytes_moved"] == 3 * weights
    assert dynamic["kv_bytes_moved"] == 3 * held * kv == 50_688
    assert dynamic["bytes"] == 3 * weights + 50_688 == bytes_moved(weights, kv, batches)
    # paged: read in place
    assert traffic(weights, kv, batches, "paged")["kv_bytes_moved"] == held * kv == 16_896
    # static: attention reads the whole buffer every step, its length given or the batch's own 10 + 3
    assert traffic(weights, kv, batches, "static", cache_len=20)["kv_bytes_moved"] == 2 * 3 * 20 * kv == 30_720
    assert traffic(weights, kv, batches, "static")["kv_bytes_moved"] == 2 * 3 * 13 * kv == 19_968
    assert kv_positions_moved([10, 7], 3, "static", 20) == 120
    with pytest.raises(ValueError):
        kv_positions_moved([10], 1, "quantized")


def test_a_run_adds_up_the_weight_and_kv_bytes_of_its_ranks():
    ranks = [{"seconds": 1.0, "roofline": {"bytes": 10, "weight_bytes_moved": 6, "kv_bytes_moved": 4,
                                           "cache": "dynamic", "peak_gbps": 1.0}},
             {"seconds": 1.0, "roofline": {"bytes": 12, "weight_bytes_moved": 6, "kv_bytes_moved": 6,
                                           "cache": "dynamic", "peak_gbps": 1.0}}]
    fig = run_roofline(ranks)
    assert (fig["bytes"], fig["weight_bytes_moved"], fig["kv_bytes_moved"], fig["cache"]) == (22, 12, 10, "dynamic")
    del ranks[1]["roofline"]["kv_bytes_moved"]  # a rank of an older worker: no split, not a wrong one
    assert run_roofline(ranks)["kv_bytes_moved"] is None


def test_a_stored_run_carries_the_bytes_its_roofline_used(db_path):
    from db.store import Store
    from runner.config import RunConfig
    from runner.result import RunResult

    store = Store(db_path)
    cfg = RunConfig(prompts=["a"]).to_dict()
    run_id = store.create_run(cfg)
    roofline = run_roofline([{"seconds": 2.0, "roofline": {
        **traffic(1000, 256, [([10, 7], 3)], "dynamic"), "peak_gbps": None, "rank": 0}}])
    store.finish_run(run_id, RunResult(status="succeeded", config=cfg, device="cuda", dtype="bfloat16",
                                       world_size=1, tokens=6, seconds=2.0, roofline=roofline,
                                       ranks=[{"rank": 0, "num_prompts": 2, "tokens": 6, "seconds": 2.0}]))
    run = store.get_run(run_id)
    assert (run["roofline_weight_bytes"], run["roofline_kv_bytes"], run["roofline_cache"]) == (3000, 50_688, "dynamic")
    assert run["roofline"]["bytes"] == 53_688

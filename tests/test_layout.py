"""The layout arithmetic (runner/layout.py) and the grid's layout cells: pure, fast."""

import pytest

from runner.config import ConfigError, RunConfig
from runner.host.rank_reports import run_comm_fraction
from runner.layout import Layout, heads_problem, layout_memory_bytes, smallest_fitting_tp
from runner.rank.tensor_parallel import merged_seconds
from studio.sweeps.grid import grid_cells, layout_cells


def test_a_layout_puts_consecutive_ranks_in_a_tensor_group_and_leaders_first():
    layout = Layout(world_size=8, tp_size=2)
    assert layout.dp == 4
    assert layout.tp_groups() == [[0, 1], [2, 3], [4, 5], [6, 7]]
    assert [layout.dp_rank(r) for r in range(8)] == [0, 0, 1, 1, 2, 2, 3, 3]
    assert [layout.tp_rank(r) for r in range(8)] == [0, 1, 0, 1, 0, 1, 0, 1]
    assert Layout(world_size=4, tp_size=4).tp_group(3) == [0, 1, 2, 3]
    assert Layout(world_size=3).dp == 3
    with pytest.raises(ValueError, match="does not divide"):
        Layout(world_size=3, tp_size=2)


def test_a_tensor_group_never_spans_two_nodes():
    # torchrun numbers node n's ranks n*g .. n*g+g-1; tp divides g (RunConfig), so a group stays on its node
    for gpus_per_node, tp in [(4, 2), (8, 4), (2, 2), (6, 3)]:
        config = RunConfig(prompts=["x"], gpus_per_node=gpus_per_node, num_nodes=2, main_port=29500, tp_size=tp)
        layout = Layout(config.world_size, config.tp_size)
        for group in layout.tp_groups():
            assert len({rank // gpus_per_node for rank in group}) == 1, group
        assert config.dp_size == layout.dp


def test_tp_that_does_not_divide_a_nodes_gpus_is_refused_with_the_sizes_that_do():
    with pytest.raises(ConfigError, match=r"tp_size: 2 does not divide the 3 GPUs of a node.*\[1, 3\]"):
        RunConfig(prompts=["x"], gpus_per_node=3, tp_size=2)
    assert RunConfig(prompts=["x"], gpus_per_node=4, tp_size=2).dp_size == 2


def test_heads_problem_names_the_sizes_that_split_both_kinds_of_head():
    assert heads_problem(1, 4, 4) is None
    assert heads_problem(2, 4, 4) is None
    assert heads_problem(3, 4, 4) == "tp 3 does not divide the model's 4 attention heads; use tp 1, 2 or 4"
    # grouped-query attention: 32 query heads but 8 key-value heads
    assert heads_problem(16, 32, 8) == ("tp 16 does not divide the model's 8 key-value heads; "
                                        "use tp 1, 2, 4 or 8")


def test_memory_per_gpu_is_the_shared_weights_and_kv_cache_split_over_the_group():
    gib = 2**30
    assert layout_memory_bytes(8 * gib, 1024, 1000, 16, tp=1) == 8 * gib + 1024 * 1000 * 16
    assert layout_memory_bytes(8 * gib, 1024, 1000, 16, tp=4) == (8 * gib + 1024 * 1000 * 16) // 4
    # 26 GiB of weights on 16 GiB GPUs: tp 2 is the smallest that fits; 3 would not split 32 heads
    assert smallest_fitting_tp(26 * gib, 0, 100, 1, 16 * gib, heads=32, kv_heads=32) == 2
    assert smallest_fitting_tp(50 * gib, 0, 100, 1, 16 * gib, heads=32, kv_heads=32) == 4
    assert smallest_fitting_tp(50 * gib, 0, 100, 1, 16 * gib, heads=3, kv_heads=3, most=2) is None


def test_a_layout_grid_keeps_the_cells_whose_tp_divides_their_gpus():
    axes = {"gpus_per_node": [1, 2, 4], "tp_size": [1, 2]}
    cells = layout_cells(grid_cells(axes), axes)
    assert [(c["gpus_per_node"], c["tp_size"]) for c in cells] == [(1, 1), (2, 1), (2, 2), (4, 1), (4, 2)]
    with pytest.raises(ConfigError, match="tp_size: 2 divides none of the GPU counts \\(3\\)"):
        layout_cells(grid_cells({"gpus_per_node": [3], "tp_size": [2]}), {"gpus_per_node": [3], "tp_size": [2]})
    with pytest.raises(ConfigError, match="no tp of 2, 4 divides the GPU count 1"):
        axes = {"gpus_per_node": [1, 4], "tp_size": [2, 4]}
        layout_cells(grid_cells(axes), axes)
    plain = {"gpus_per_node": [1, 2]}
    assert layout_cells(grid_cells(plain), plain) == grid_cells(plain)


def test_collective_time_counts_overlapping_events_once():
    # an op (1-3 s) and the kernel it launched (1.5-2.5 s), then a separate one (4-5 s)
    assert merged_seconds([(1.0, 3.0), (1.5, 2.5), (4.0, 5.0)]) == pytest.approx(3.0)
    assert merged_seconds([(0.0, 2.0), (1.0, 3.0)]) == pytest.approx(3.0)
    assert merged_seconds([]) == 0.0


def test_the_runs_comm_share_is_the_median_of_its_ranks():
    ranks = [{"comm": {"fraction": 0.2}}, {"comm": {"fraction": 0.6}}, {"comm": {"fraction": 0.3}}, {"comm": None}]
    assert run_comm_fraction(ranks) == pytest.approx(0.3)
    assert run_comm_fraction([{"comm": None}, {}]) is None

"""Which runs share a launch: the launch key and the grouping (pure)."""

from __future__ import annotations

import pytest

from runner.config import RunConfig
from runner.host.launch_groups import KEY_FIELDS, group_launches, launch_key, launch_world
from studio.sweeps.plan import plan_sweep

BASE = RunConfig(prompts=["a", "b"], device="cpu", max_new_tokens=4)


def test_what_a_run_does_with_the_model_does_not_split_a_launch():
    same = [BASE.replace(gpus_per_node=2), BASE.replace(batch_size=3), BASE.replace(max_new_tokens=9),
            BASE.replace(mode="simple"), BASE.replace(prompts=["c"]), BASE.replace(fixed_length=True),
            BASE.replace(label="x"), BASE.replace(timeout_s=10)]
    assert {launch_key(c) for c in same} == {launch_key(BASE)}


@pytest.mark.parametrize("change", [
    {"model": "arch:llama"}, {"dtype": "bfloat16"}, {"device": "cuda"}, {"attention": "eager"},
    {"cache": "static"}, {"cache": "static", "compile": True}, {"cpu_threads": 2}, {"seed": 1},
    {"gpus_per_node": 2, "tp_size": 2}, {"trust_remote_code": True},
])
def test_what_a_rank_holds_splits_a_launch(change):
    assert launch_key(BASE.replace(**change)) != launch_key(BASE)


def test_tensor_parallel_size_is_part_of_the_key():
    assert "tp_size" in KEY_FIELDS


def test_shared_groups_keep_the_sweeps_interleaved_order():
    f32, bf16 = BASE.replace(dtype="float32"), BASE.replace(dtype="bfloat16")
    # counts inside repeats, two dtypes: (1, f32) (2, f32) (1, bf16) (2, bf16), twice
    configs = [c.replace(gpus_per_node=n) for _ in range(2) for c in (f32, bf16) for n in (1, 2)]
    groups = group_launches(configs, "shared")
    assert groups == [[0, 1, 4, 5], [2, 3, 6, 7]]
    assert [configs[i].gpus_per_node for i in groups[0]] == [1, 2, 1, 2]
    assert launch_world([configs[i] for i in groups[0]]) == 2


def test_per_run_is_one_launch_each_and_multi_node_never_shares():
    configs = [BASE.replace(gpus_per_node=n) for n in (1, 2, 1)]
    assert group_launches(configs, "per-run") == [[0], [1], [2]]
    nodes = BASE.replace(num_nodes=2, main_port=29500)
    assert group_launches([nodes, nodes, BASE], "shared") == [[0], [1], [2]]
    with pytest.raises(ValueError, match="launch must be one of"):
        group_launches(configs, "together")


def test_a_plan_carries_its_launch_mode_into_the_stored_settings():
    plan = plan_sweep(BASE, [1, 2], repeats=2)
    assert plan.launch == "shared" and plan.settings()["launch"] == "shared"
    assert plan_sweep(BASE, [1], launch="per-run").settings()["launch"] == "per-run"
    from runner.config import ConfigError

    with pytest.raises(ConfigError, match="launch"):
        plan_sweep(BASE, [1], launch="sometimes")


def test_tensor_parallel_runs_share_a_launch_only_with_their_own_layout():
    tp = [BASE.replace(gpus_per_node=n, tp_size=2) for n in (2, 4, 2, 4)]
    assert group_launches(tp, "shared") == [[0, 2], [1, 3]]
    assert launch_key(tp[0]) != launch_key(BASE.replace(gpus_per_node=2))

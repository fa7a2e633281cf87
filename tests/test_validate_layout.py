"""Layouts that cannot run are refused before launch, with the reason and a fix."""

import json
import time

import pytest

from runner.config import ConfigError, RunConfig
from runner.host.hardware import Inventory
from runner.host.validate import prepare

CPU = Inventory(gpu_count=0, gpu_names=(), gpu_memory_mib=(), cpu_cores=64)
H100S = Inventory(gpu_count=8, gpu_names=("H100",) * 8, gpu_memory_mib=(81559,) * 8, cpu_cores=64,
                  gpu_capabilities=((9, 0),) * 8)


def test_tp_must_split_the_models_heads():
    with pytest.raises(ConfigError, match=r"tp_size: tp 3 does not divide the model's 4 attention heads; use tp 1, 2 or 4"):
        prepare(RunConfig(prompts=["hi"], gpus_per_node=3, tp_size=3), CPU)
    assert prepare(RunConfig(prompts=["hi"], gpus_per_node=4, tp_size=2), CPU).config.dp_size == 2


def test_a_model_that_does_not_fit_one_gpu_is_refused_with_the_smallest_tp_that_fits():
    config = RunConfig(prompts=["hi"], model="arch:llama-2-7b", dtype="float32", memory_budget_gb=16, device="cpu")
    with pytest.raises(ConfigError) as refused:
        prepare(config, CPU)
    message = str(refused.value)
    assert "needs 25.2 GiB on each GPU at tp 1 (25.1 GiB of weights" in message and "16 GiB per rank" in message
    assert "it would fit at tp 2" in message  # an arch: model is built whole, so a folder of it is named
    # the same model in bfloat16 on an H100 (its own memory, no stated budget) fits at tp 1
    assert prepare(RunConfig(prompts=["hi"], model="arch:llama-2-7b"), H100S).dtype == "bfloat16"


def test_a_folder_model_too_big_for_a_gpu_names_the_tp_to_use(tmp_path):
    folder = tmp_path / "big"
    folder.mkdir()
    config = json.loads(open("runner/archs/llama-2-7b.json").read())
    (folder / "config.json").write_text(json.dumps(config))
    base = RunConfig(prompts=["hi"], model=str(folder), dtype="float32", memory_budget_gb=16, device="cpu")
    with pytest.raises(ConfigError, match=r"the smallest tp that fits is 2: run --gpus 2 --tp 2"):
        prepare(base, CPU)
    assert prepare(base.replace(gpus_per_node=2, tp_size=2), CPU).config.tp_size == 2


def test_a_model_without_a_tensor_parallel_plan_is_refused(tmp_path):
    folder = tmp_path / "gpt2ish"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"model_type": "gpt2", "n_embd": 64, "n_layer": 2, "n_head": 4,
                                                    "vocab_size": 300, "n_positions": 128}))
    with pytest.raises(ConfigError, match=r"no tensor-parallel plan for .*'gpt2'.*use tp 1"):
        prepare(RunConfig(prompts=["hi"], model=str(folder), gpus_per_node=2, tp_size=2), CPU)


def test_paths_that_cannot_shard_are_refused():
    with pytest.raises(ConfigError, match="arch:llama-3.2-1b is built with random weights by from_config"):
        prepare(RunConfig(prompts=["hi"], model="arch:llama-3.2-1b", gpus_per_node=2, tp_size=2), CPU)
    with pytest.raises(ConfigError, match="continuous batching is not run with tensor parallelism"):
        prepare(RunConfig(prompts=["hi"], gpus_per_node=2, tp_size=2, continuous_batching=True), CPU)


@pytest.mark.parametrize("args, words", [
    (["--gpus", "3", "--tp", "3"], "tp 3 does not divide the model's 4 attention heads"),
    (["--gpus", "3", "--tp", "2"], "2 does not divide the 3 GPUs of a node"),
])
def test_the_cli_refuses_impossible_layouts_in_one_line_before_launching(args, words, tmp_path, cli):
    started = time.monotonic()
    done = cli("run", "--model", "tiny", *args, "--max-new-tokens", "8", "--db", str(tmp_path / "s.db"))
    took = time.monotonic() - started
    assert done.returncode == 2, done.stderr
    assert words in done.stderr and "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert took < 20, f"took {took:.1f} s"
    assert not (tmp_path / "runs").exists()


def test_an_auto_plan_of_a_tensor_parallel_run_is_over_its_copies():
    from runner.host.validate import plan_for

    prepared = prepare(RunConfig(prompts=[f"prompt {i}" for i in range(12)], mode="auto", gpus_per_node=4,
                                 tp_size=2, memory_budget_gb=4), CPU)
    plan = plan_for(prepared, CPU)
    assert len(plan["assignment"]) == 2  # two copies of the model, not four ranks
    assert sorted(i for copy in plan["assignment"] for batch in copy for i in batch) == list(range(12))
    assert plan["tp_size"] == 2 and plan["reasons"][0].startswith("Tensor parallel: 2 ranks share each copy")

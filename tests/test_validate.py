import pytest

from runner.config import ConfigError, RunConfig
from runner.hardware import Inventory
from runner.validate import prepare

CPU = Inventory(gpu_count=0, gpu_names=(), gpu_memory_mib=(), cpu_cores=2)
TWO_GPUS = Inventory(gpu_count=2, gpu_names=("H100", "H100"), gpu_memory_mib=(81559, 81559), cpu_cores=16)


def test_auto_means_fp32_on_cpu_and_bf16_on_gpu():
    config = RunConfig(prompts=["hi"])
    assert (prepare(config, CPU).device, prepare(config, CPU).dtype) == ("cpu", "float32")
    assert (prepare(config, TWO_GPUS).device, prepare(config, TWO_GPUS).dtype) == ("cuda", "bfloat16")


def test_more_gpus_than_present():
    with pytest.raises(ConfigError, match="at most 2"):
        prepare(RunConfig(prompts=["hi"], gpus_per_node=3), TWO_GPUS)


def test_cpu_processes_have_a_cap():
    with pytest.raises(ConfigError, match="CPU processes"):
        prepare(RunConfig(prompts=["hi"], gpus_per_node=64), CPU)


def test_cuda_without_gpu():
    with pytest.raises(ConfigError, match="no visible GPU"):
        prepare(RunConfig(prompts=["hi"], device="cuda"), CPU)


def test_max_new_tokens_beyond_context():
    with pytest.raises(ConfigError, match="context"):
        prepare(RunConfig(prompts=["hi"], max_new_tokens=4000), CPU)


def test_long_prompt_plus_new_tokens_beyond_context():
    with pytest.raises(ConfigError, match="longest prompt"):
        prepare(RunConfig(prompts=["x" * 2000], max_new_tokens=100), CPU)


def test_missing_model():
    with pytest.raises(ConfigError, match="model"):
        prepare(RunConfig(prompts=["hi"], model="/no/such/folder"), CPU)


def test_remote_code_needs_the_server_flag(monkeypatch):
    monkeypatch.delenv("STUDIO_TRUST_REMOTE_CODE", raising=False)
    with pytest.raises(ConfigError, match="trust-remote-code"):
        prepare(RunConfig(prompts=["hi"], trust_remote_code=True), CPU)

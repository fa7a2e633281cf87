import pytest

from runner.config import ConfigError, RunConfig
from runner.host.hardware import Inventory
from runner.host.validate import prepare

CPU = Inventory(gpu_count=0, gpu_names=(), gpu_memory_mib=(), cpu_cores=2)
TWO_GPUS = Inventory(gpu_count=2, gpu_names=("H100", "H100"), gpu_memory_mib=(81559, 81559), cpu_cores=16,
                     gpu_capabilities=((9, 0), (9, 0)))
V100 = Inventory(gpu_count=1, gpu_names=("Tesla V100-SXM2-32GB",), gpu_memory_mib=(32768,), cpu_cores=16,
                 gpu_capabilities=((7, 0),))
UNKNOWN_CAPABILITY = Inventory(gpu_count=1, gpu_names=("GPU",), gpu_memory_mib=(16384,), cpu_cores=4)
MIXED = Inventory(gpu_count=2, gpu_names=("A100", "T4"), gpu_memory_mib=(40960, 15360), cpu_cores=8,
                  gpu_capabilities=((8, 0), (7, 5)))


def test_auto_means_fp32_on_cpu_and_bf16_on_a_gpu_that_has_it():
    config = RunConfig(prompts=["hi"])
    assert (prepare(config, CPU).device, prepare(config, CPU).dtype) == ("cpu", "float32")
    assert (prepare(config, TWO_GPUS).device, prepare(config, TWO_GPUS).dtype) == ("cuda", "bfloat16")


def test_auto_is_float16_on_an_older_or_unknown_gpu_and_the_oldest_gpu_decides():
    config = RunConfig(prompts=["hi"])
    assert prepare(config, V100).dtype == "float16"
    assert prepare(config, UNKNOWN_CAPABILITY).dtype == "float16"
    assert prepare(config, MIXED).dtype == "float16"


def test_bfloat16_on_an_older_gpu_is_refused_before_launch_with_the_fix():
    with pytest.raises(ConfigError, match=r"dtype.*compute capability 8.0.*7.0; use float16 or auto"):
        prepare(RunConfig(prompts=["hi"], dtype="bfloat16"), V100)
    assert prepare(RunConfig(prompts=["hi"], dtype="bfloat16"), TWO_GPUS).dtype == "bfloat16"
    # capability unknown: the user's choice stands (the GPU may well have it)
    assert prepare(RunConfig(prompts=["hi"], dtype="bfloat16"), UNKNOWN_CAPABILITY).dtype == "bfloat16"
    assert prepare(RunConfig(prompts=["hi"], dtype="bfloat16", device="cpu"), V100).dtype == "bfloat16"


def test_a_cuda_run_carries_what_each_rank_must_find():
    gpus = Inventory(gpu_count=1, gpu_names=("NVIDIA H100 80GB HBM3",), gpu_memory_mib=(81559,), cpu_cores=16,
                     gpu_uuids=("GPU-1234",), gpu_capabilities=((9, 0),))
    assert prepare(RunConfig(prompts=["hi"]), gpus).expected_devices == (
        {"index": 0, "name": "NVIDIA H100 80GB HBM3", "uuid": "GPU-1234"},)
    assert prepare(RunConfig(prompts=["hi"], device="cpu"), gpus).expected_devices == ()


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

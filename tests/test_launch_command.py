"""The pure command builder: argv, environment and accelerate config from settings alone."""

from pathlib import Path

from runner.config import RunConfig
from runner.host.hardware import Inventory
from runner.host.launch_command import WORKER, build_launch_command
from runner.host.validate import prepare

CPU = Inventory(gpu_count=0, gpu_names=(), gpu_memory_mib=(), cpu_cores=2)


def command(**kw):
    prepared = prepare(RunConfig(prompts=["hi"], **kw), CPU)
    return build_launch_command(
        prepared, job_path=Path("/runs/1/job.json"), config_path=Path("/runs/1/accelerate.yaml"), port=29555,
        python="/usr/bin/python3", base_env={"PATH": "/bin", "ACCELERATE_MIXED_PRECISION": "fp16", "HOME": "/h"},
    )


def flag(argv, name):
    return argv[argv.index(name) + 1]


def test_one_process_is_a_plain_launch():
    c = command(gpus_per_node=1)
    assert c.argv[:3] == ["/usr/bin/python3", "-m", "accelerate.commands.launch"]
    assert "--multi_gpu" not in c.argv and "--cpu" not in c.argv
    assert flag(c.argv, "--num_processes") == "1"


def test_several_cpu_processes_use_multi_gpu_not_cpu():
    # --cpu --num_processes N starts one process; --multi_gpu with PartialState(cpu=True) starts N.
    c = command(gpus_per_node=3)
    assert "--multi_gpu" in c.argv and "--cpu" not in c.argv
    assert flag(c.argv, "--num_processes") == "3"


def test_explicit_config_file_and_port():
    c = command(gpus_per_node=2)
    assert flag(c.argv, "--config_file") == "/runs/1/accelerate.yaml"
    assert flag(c.argv, "--main_process_port") == "29555"
    assert "main_process_port: 29555" in c.accelerate_config
    assert "num_processes: 2" in c.accelerate_config


def test_worker_and_job_file_come_last_and_prompts_never_on_the_command_line():
    c = command(gpus_per_node=2)
    assert c.argv[-3:] == [str(WORKER), "--job", "/runs/1/job.json"]
    assert not any("hi" == a for a in c.argv)


def test_environment_is_offline_and_drops_stray_accelerate_settings():
    env = command().env
    assert env["HF_HUB_OFFLINE"] == "1" and env["TRANSFORMERS_OFFLINE"] == "1"
    assert "ACCELERATE_MIXED_PRECISION" not in env
    assert env["PATH"] == "/bin" and env["OMP_NUM_THREADS"] == "1"


def test_multi_node_settings_pass_through():
    c = command(gpus_per_node=2, num_nodes=2, node_rank=1, main_address="10.1.2.3", main_port=29600,
                rdzv_backend="c10d")
    assert flag(c.argv, "--num_processes") == "4"  # accelerate wants the total over all machines
    assert flag(c.argv, "--num_machines") == "2"
    assert flag(c.argv, "--machine_rank") == "1"
    assert flag(c.argv, "--main_process_ip") == "10.1.2.3"
    assert flag(c.argv, "--rdzv_backend") == "c10d"


def test_same_settings_same_command():
    assert command(gpus_per_node=2) == command(gpus_per_node=2)

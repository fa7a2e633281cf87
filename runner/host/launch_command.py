"""What a launch is made of, as pure functions of the run's settings (the way
accelerate builds its own launch command): the `accelerate launch` argv, the
environment, the per-run accelerate config (the user's default accelerate config
is never read) and the job file the worker reads. Nothing here starts a process
or touches a file; `runner.host.launcher` does.
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

from runner.environment import PROJECT_ROOT
from runner.host.validate import Prepared

# the entry script every rank runs: what crosses to it is the job file, JSON
WORKER = Path(__file__).resolve().parents[1] / "rank" / "worker.py"


@dataclass(frozen=True)
class LaunchCommand:
    argv: list[str]
    env: dict[str, str]
    accelerate_config: str  # YAML text for --config_file


def accelerate_config_yaml(prepared: Prepared, port: int) -> str:
    config = prepared.config
    distributed = "MULTI_GPU" if config.world_size > 1 else "NO"
    lines = {
        "compute_environment": "LOCAL_MACHINE",
        "distributed_type": distributed,
        "num_processes": config.world_size,
        "num_machines": config.num_nodes,
        "machine_rank": config.node_rank,
        "main_process_ip": config.main_address,
        "main_process_port": port,
        "rdzv_backend": config.rdzv_backend,
        "same_network": True,
        "mixed_precision": "no",
        "use_cpu": False,
        "gpu_ids": "all",
        "downcast_bf16": "no",
        "debug": False,
    }
    return "".join(f"{k}: {json.dumps(v)}\n" for k, v in lines.items())


def build_launch_command(
    prepared: Prepared,
    *,
    job_path: Path,
    config_path: Path,
    port: int,
    python: str = sys.executable,
    base_env: Mapping[str, str] | None = None,
) -> LaunchCommand:
    config = prepared.config
    argv = [
        python, "-m", "accelerate.commands.launch",
        "--config_file", str(config_path),
        "--num_processes", str(config.world_size),
        "--num_machines", str(config.num_nodes),
        "--machine_rank", str(config.node_rank),
        "--main_process_ip", config.main_address,
        "--main_process_port", str(port),
        "--rdzv_backend", config.rdzv_backend,
        "--mixed_precision", "no",
        "--dynamo_backend", "no",
        "--num_cpu_threads_per_process", str(config.cpu_threads),
    ]
    if config.world_size > 1:
        # On CPU too: with the worker's PartialState(cpu=True) this gives N real
        # processes over gloo, where --cpu would start only one.
        argv.append("--multi_gpu")
    argv += [str(WORKER), "--job", str(job_path)]

    env = {k: v for k, v in (os.environ if base_env is None else base_env).items() if not k.startswith("ACCELERATE_")}
    python_path = [str(PROJECT_ROOT)] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else [])
    env.update(
        {
            "PYTHONPATH": os.pathsep.join(python_path),
            "PYTHONUNBUFFERED": "1",
            "HF_HUB_OFFLINE": "1",
            "TRANSFORMERS_OFFLINE": "1",
            "HF_HUB_DISABLE_TELEMETRY": "1",
            "TOKENIZERS_PARALLELISM": "false",
            "OMP_NUM_THREADS": str(config.cpu_threads),
        }
    )
    if prepared.device == "cuda":
        # the un-prefixed name is deprecated (torch warns on every rank that reads it);
        # a user's value of it carries over to the current name
        env.setdefault("TORCH_NCCL_ASYNC_ERROR_HANDLING", env.pop("NCCL_ASYNC_ERROR_HANDLING", "1"))
        # nvidia-smi lists GPUs by PCI bus; so must CUDA, or the inventory's GPU i is not cuda:i
        env["CUDA_DEVICE_ORDER"] = "PCI_BUS_ID"
    return LaunchCommand(argv=argv, env=env, accelerate_config=accelerate_config_yaml(prepared, port))


def build_launch_job(world: Prepared, cells: list[tuple[Prepared, Path, dict | None]]) -> dict:
    """The job of a shared launch: what every run shares, then each run's own."""
    job = {
        "model": world.model.to_dict(),
        "device": world.device,
        "dtype": world.dtype,
        "expected_devices": list(world.expected_devices),
        "world_size": world.config.world_size,
        "cells": [],
    }
    for prepared, result_path, plan in cells:
        cell = {"config": prepared.config.to_dict(), "result_path": str(result_path)}
        if plan:
            cell["plan"] = plan
            cell["warmup_batches"] = plan.get("warmup_batches")
        job["cells"].append(cell)
    return job


def build_job(prepared: Prepared, result_path: Path, plan: dict | None = None) -> dict:
    job = {
        "config": prepared.config.to_dict(),
        "model": prepared.model.to_dict(),
        "device": prepared.device,
        "dtype": prepared.dtype,
        "result_path": str(result_path),
        "expected_devices": list(prepared.expected_devices),
    }
    if plan:
        job["plan"] = plan
        job["warmup_batches"] = plan.get("warmup_batches")
    return job

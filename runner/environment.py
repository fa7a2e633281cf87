"""The environment fingerprint stored with every run.

`host_fingerprint` is torch-free (the web process may call it); `node_fingerprint`
adds what only a process that already imported torch can tell.
"""

from __future__ import annotations

import os
import platform
import socket
import subprocess
from functools import lru_cache
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


@lru_cache(maxsize=1)
def git_commit() -> str | None:
    try:
        out = subprocess.run(
            ["git", "-C", str(PROJECT_ROOT), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def nvidia_smi() -> list[dict]:
    """GPUs as nvidia-smi lists them; [] where there is none."""
    try:
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=name,driver_version,memory.total", "--format=csv,noheader,nounits"],
            capture_output=True,
            text=True,
            timeout=10,
        )
    except (OSError, subprocess.SubprocessError):
        return []
    if out.returncode != 0:
        return []
    gpus = []
    for line in out.stdout.strip().splitlines():
        parts = [p.strip() for p in line.split(",")]
        if len(parts) >= 3:
            gpus.append({"name": parts[0], "driver": parts[1], "memory_mib": _to_int(parts[2])})
    return gpus


def _to_int(text: str) -> int | None:
    try:
        return int(float(text))
    except ValueError:
        return None


def host_fingerprint() -> dict:
    from importlib.metadata import PackageNotFoundError, version

    versions = {}
    for package in ("torch", "transformers", "accelerate", "gradio", "sqlite-utils"):
        try:
            versions[package] = version(package)
        except PackageNotFoundError:
            versions[package] = None
    gpus = nvidia_smi()
    return {
        "hostname": socket.gethostname(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpu_model": _cpu_model(),
        "cpu_cores": os.cpu_count(),
        "gpu_count": len(gpus),
        "gpu_names": [g["name"] for g in gpus],
        "driver_version": gpus[0]["driver"] if gpus else None,
        "versions": versions,
        "git_commit": git_commit(),
    }


def node_fingerprint() -> dict:
    import torch

    info = host_fingerprint()
    info["versions"]["torch"] = torch.__version__
    info["cuda_version"] = torch.version.cuda
    info["cuda_available"] = torch.cuda.is_available()
    if torch.cuda.is_available():
        info["gpu_names"] = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
        info["gpu_count"] = len(info["gpu_names"])
    info["torch_threads"] = torch.get_num_threads()
    return info

"""`studio doctor`: is this machine ready to run benchmarks? Each check says what it
found and, when something is off, what to change. It changes nothing but what
the studio itself would make on first use: its folders and database when they are
missing, and a probe file (deleted again) in each folder that must be writable.

Exit status: 0 when nothing failed (warnings allowed), 1 when a check failed.
"""

from __future__ import annotations

import os
import shutil
import socket
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

OK, INFO, WARN, FAIL = "ok", "info", "warn", "FAIL"
SHM_WANTED = 1 << 30  # below 1 GiB of /dev/shm, NCCL and DataLoader workers run out inside containers


@dataclass
class Check:
    name: str
    status: str
    detail: str
    hint: str = ""


def check_gpus() -> Check:
    from runner.environment import nvidia_smi

    gpus = nvidia_smi()
    if not gpus:
        if shutil.which("nvidia-smi"):
            return Check("GPUs and driver", WARN, "nvidia-smi is installed but lists no GPU",
                         "check the driver (nvidia-smi on its own); in Docker start with --gpus all")
        return Check("GPUs and driver", INFO, "no NVIDIA GPU (nvidia-smi not found): runs use CPU processes")
    names = sorted({g["name"] for g in gpus})
    memory = ", ".join(f"{(g['memory_mib'] or 0) / 1024:.0f} GiB" for g in gpus)
    return Check("GPUs and driver", OK, f"{len(gpus)} x {' / '.join(names)} ({memory}), driver {gpus[0]['driver']}")


def check_torch() -> Check:
    from runner.environment import nvidia_smi

    try:
        import torch
    except Exception as exc:  # a broken install must be reported, not crash the doctor
        return Check("torch", FAIL, f"cannot import torch: {exc}", "run bash scripts/install.sh")
    gpus = len(nvidia_smi())
    build = f"CUDA {torch.version.cuda}" if torch.version.cuda else "CPU build"
    if torch.cuda.is_available():
        count = torch.cuda.device_count()
        capability = ".".join(map(str, torch.cuda.get_device_capability(0)))
        detail = f"{torch.__version__} ({build}), sees {count} GPU(s), compute capability {capability}"
        if gpus and count < gpus and "CUDA_VISIBLE_DEVICES" not in os.environ:
            return Check("torch", WARN, detail + f"; nvidia-smi lists {gpus}", "check the driver and CUDA runtime")
        return Check("torch", OK, detail)
    if gpus:
        return Check("torch", FAIL, f"{torch.__version__} ({build}) cannot use the {gpus} GPU(s) nvidia-smi lists",
                     "install a CUDA build of torch that matches the driver (see the README), then run "
                     "bash scripts/install.sh again: it keeps the installed torch")
    return Check("torch", OK, f"{torch.__version__} ({build}); no GPU, so runs use CPU processes")


def check_accelerate() -> Check:
    try:
        import accelerate
        from accelerate.commands.config import default_config_file
    except Exception as exc:
        return Check("accelerate", FAIL, f"cannot import accelerate: {exc}", "run bash scripts/install.sh")
    ignored = []
    if Path(default_config_file).is_file():
        ignored.append(f"the default config {default_config_file}")
    env = sorted(k for k in os.environ if k.startswith("ACCELERATE_"))
    if env:
        ignored.append("the variables " + ", ".join(env))
    detail = f"{accelerate.__version__}"
    if ignored:
        return Check("accelerate", WARN, f"{detail}; runs ignore {' and '.join(ignored)}",
                     "the studio writes its own config for each run from the run's settings; "
                     "set GPUs, nodes and ports in the studio instead")
    return Check("accelerate", OK, f"{detail}; no default accelerate config (runs get their own)")


# Packages only the web page and its charts need: runs, the CLI and the store do without them.
WEB_PACKAGES = ("gradio", "plotly")


def check_packages(web_optional: bool = False) -> Check:
    """`web_optional`: a machine that only runs benchmarks (a GPU node driven by the
    CLI) needs no web page, so gradio and plotly missing there is a warning."""
    from importlib.metadata import PackageNotFoundError, version

    found, missing = [], []
    for package in ("transformers", *WEB_PACKAGES, "sqlite-utils"):
        try:
            found.append(f"{package} {version(package)}")
        except PackageNotFoundError:
            missing.append(package)
    needed = [p for p in missing if not (web_optional and p in WEB_PACKAGES)]
    if needed:
        return Check("packages", FAIL, "missing: " + ", ".join(missing), "run bash scripts/install.sh")
    if missing:
        return Check("packages", WARN, ", ".join(found) + "; missing (web page only): " + ", ".join(missing),
                     "runs work without them; install them (bash scripts/install.sh) to serve the studio here")
    return Check("packages", OK, ", ".join(found))


def check_distributed() -> Check:
    try:
        import torch
        import torch.distributed as dist
    except Exception as exc:
        return Check("NCCL / gloo", FAIL, f"cannot import torch.distributed: {exc}")
    if not dist.is_available():
        return Check("NCCL / gloo", FAIL, "this torch was built without torch.distributed",
                     "install a standard torch build")
    backends = []
    if dist.is_nccl_available():
        version = ".".join(map(str, torch.cuda.nccl.version())) if torch.cuda.is_available() else "built in"
        backends.append(f"NCCL {version}")
    if not dist.is_gloo_available():
        return Check("NCCL / gloo", FAIL, "gloo is not available; CPU runs need it", "install a standard torch build")
    # gloo in earnest: a one-process group and an all-reduce, as a CPU run's ranks do
    with tempfile.TemporaryDirectory() as folder:
        try:
            dist.init_process_group("gloo", init_method=f"file://{folder}/store", rank=0, world_size=1)
            value = torch.ones(1)
            dist.all_reduce(value)
            works = value.item() == 1.0
        except Exception as exc:
            return Check("NCCL / gloo", FAIL, f"gloo does not work here: {exc}")
        finally:
            if dist.is_initialized():
                dist.destroy_process_group()
    backends.append("gloo (all-reduce works)" if works else "gloo (all-reduce gave a wrong value)")
    if not works:
        return Check("NCCL / gloo", FAIL, ", ".join(backends))
    if torch.cuda.is_available() and not dist.is_nccl_available():
        return Check("NCCL / gloo", WARN, ", ".join(backends) + "; no NCCL for the GPUs",
                     "multi-GPU runs need NCCL: install a CUDA build of torch")
    return Check("NCCL / gloo", OK, ", ".join(backends))


def _port_free(port: int, host: str) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def check_ports(ports: dict[str, int]) -> Check:
    busy = [f"{what} {port}" for what, port in ports.items() if not _port_free(port, "0.0.0.0")]
    listed = ", ".join(f"{what} {port}" for what, port in ports.items())
    if busy:
        return Check("free ports", WARN, f"in use: {', '.join(busy)}",
                     "stop what holds it, or pick another (studio serve --port, studio run --main-port)")
    return Check("free ports", OK, f"free: {listed}")


def _writable(folder: Path) -> str | None:
    """None when a file can be created in `folder` (made if missing), else why not."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".studio-doctor-"):
            pass
    except OSError as exc:
        return exc.strerror or str(exc)
    return None


def check_database(db: str | None) -> Check:
    from db.store import Store
    from runner.paths import default_db_path

    path = Path(db) if db else default_db_path()
    try:
        store = Store(path)
        try:
            integrity = store.integrity()
            with store.transaction():  # takes the write lock, writes nothing
                pass
            runs = store.db["runs"].count
        finally:
            store.close()
    except Exception as exc:
        return Check("database", FAIL, f"{path}: {exc}",
                     "give a writable path with --db or STUDIO_DB (a local disk: SQLite's WAL mode needs one)")
    if integrity != "ok":
        return Check("database", FAIL, f"{path}: integrity check says {integrity}", "restore it from a backup")
    return Check("database", OK, f"{path}: writable, {runs} run(s), integrity ok")


def check_folders() -> Check:
    from huggingface_hub import constants

    from runner.paths import models_dir, runs_dir

    folders = {"models": models_dir(), "run logs": runs_dir(), "Hugging Face cache": Path(constants.HF_HUB_CACHE)}
    problems = [f"{what} {path}: {why}" for what, path in folders.items() if (why := _writable(path))]
    if problems:
        return Check("caches", FAIL, "; ".join(problems),
                     "make them writable, or move them with STUDIO_HOME and HF_HOME")
    cached = len(list(Path(constants.HF_HUB_CACHE).glob("models--*")))
    return Check("caches", OK, "writable: " + ", ".join(f"{w} {p}" for w, p in folders.items())
                 + f"; {cached} hub model(s) cached")


def check_shared_memory() -> Check:
    try:
        total = shutil.disk_usage("/dev/shm").total
    except OSError:
        return Check("shared memory", INFO, "no /dev/shm on this system")
    detail = f"/dev/shm is {total / 2**30:.1f} GiB"
    if total < SHM_WANTED:
        return Check("shared memory", WARN, detail,
                     "in Docker start the container with --ipc=host (or --shm-size=8g): NCCL needs more")
    return Check("shared memory", OK, detail)


def run_checks(*, db: str | None = None, ports: dict[str, int] | None = None,
               web_optional: bool = False) -> list[Check]:
    ports = ports or {"studio": 7860, "main (multi-node)": 29500}
    checks: list[Callable[[], Check]] = [
        check_gpus, check_torch, check_accelerate, lambda: check_packages(web_optional), check_distributed,
        lambda: check_ports(ports), lambda: check_database(db), check_folders, check_shared_memory,
    ]
    results = []
    for check in checks:
        try:
            results.append(check())
        except Exception as exc:  # one broken check must not hide the others
            name = getattr(check, "__name__", "check").removeprefix("check_")
            results.append(Check(name, FAIL, f"the check itself failed: {type(exc).__name__}: {exc}"))
    return results


def format_checks(checks: list[Check]) -> str:
    width = max(len(c.name) for c in checks)
    lines = []
    for c in checks:
        lines.append(f"{c.status:<5} {c.name:<{width}}  {c.detail}")
        if c.hint:
            lines.append(f"{'':<5} {'':<{width}}  -> {c.hint}")
    failed = sum(c.status == FAIL for c in checks)
    warned = sum(c.status == WARN for c in checks)
    lines.append("")
    lines.append(f"{failed} failed, {warned} warning(s)" if failed or warned else "all checks passed")
    return "\n".join(lines)


def as_dicts(checks: list[Check]) -> list[dict]:
    return [asdict(c) for c in checks]

"""What devices this machine has, found without importing torch.

NVIDIA GPUs come from nvidia-smi, AMD GPUs (ROCm, where torch.cuda works too)
from amd-smi or rocm-smi. Which of them a run may use follows CUDA_VISIBLE_DEVICES
the way the CUDA runtime reads it: indices, `GPU-<uuid>` (or a unique prefix) and
`MIG-...` ids, read up to the first entry that names no device. The parsers take
the tools' text, so the decisions are tested without a GPU.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from dataclasses import dataclass, replace
from functools import lru_cache

# nvidia-smi lists GPUs in PCI bus order; the launcher sets CUDA_DEVICE_ORDER to the
# same, so index i here is cuda:i in torch (CUDA's default order is fastest-first).
NVIDIA_QUERY = "index,name,uuid,pci.bus_id,memory.total,memory.free,compute_cap"
NVIDIA_QUERY_OLD = "index,name,uuid,pci.bus_id,memory.total,memory.free"  # drivers before compute_cap


@dataclass(frozen=True)
class Gpu:
    index: int
    name: str
    uuid: str | None = None
    memory_mib: int | None = None
    free_mib: int | None = None
    capability: tuple[int, int] | None = None
    vendor: str = "nvidia"


@dataclass(frozen=True)
class Inventory:
    gpu_count: int
    gpu_names: tuple[str, ...]
    gpu_memory_mib: tuple[int, ...]
    cpu_cores: int
    gpu_uuids: tuple[str | None, ...] = ()
    gpu_free_mib: tuple[int | None, ...] = ()
    gpu_capabilities: tuple[tuple[int, int] | None, ...] = ()
    gpu_vendor: str = "nvidia"

    @property
    def default_device(self) -> str:
        return "cuda" if self.gpu_count else "cpu"

    def max_processes(self, device: str) -> int:
        if device == "cuda":
            return self.gpu_count
        # CPU "GPUs" are processes; past a few per core they only measure the scheduler.
        return max(8, 2 * self.cpu_cores)

    def min_capability(self) -> tuple[int, int] | None:
        """The oldest visible GPU's compute capability; None when any is unknown."""
        caps = list(self.gpu_capabilities)
        if not caps or len(caps) != self.gpu_count or any(c is None for c in caps):
            return None
        return min(caps)

    def expected_devices(self) -> list[dict]:
        """What each local rank's cuda:i must be, for the worker's check."""
        uuids = list(self.gpu_uuids) + [None] * (self.gpu_count - len(self.gpu_uuids))
        return [{"index": i, "name": name, "uuid": uuids[i]} for i, name in enumerate(self.gpu_names)]


def _int(text: str) -> int | None:
    try:
        return int(float(text))
    except (TypeError, ValueError):
        return None


def _capability(text: str) -> tuple[int, int] | None:
    match = re.fullmatch(r"\s*(\d+)\.(\d+)\s*", text or "")
    return (int(match.group(1)), int(match.group(2))) if match else None


def parse_nvidia_smi(text: str) -> list[Gpu]:
    """Rows of `nvidia-smi --query-gpu=NVIDIA_QUERY --format=csv,noheader,nounits`
    (the older query without compute_cap parses too)."""
    gpus = []
    for line in text.strip().splitlines():
        parts = [p.strip() for p in line.split(",")]
        if len(parts) < 6 or _int(parts[0]) is None:
            continue
        gpus.append(Gpu(index=_int(parts[0]), name=parts[1], uuid=parts[2] or None, memory_mib=_int(parts[4]),
                        free_mib=_int(parts[5]), capability=_capability(parts[6]) if len(parts) > 6 else None))
    return gpus


MIG_LINE = re.compile(r"^\s+MIG\s+(\S+)\s+Device\s+(\d+):\s+\(UUID:\s*(MIG-[^)\s]+)\)")
GPU_LINE = re.compile(r"^GPU\s+(\d+):.*\(UUID:\s*(GPU-[^)\s]+)\)")


def parse_mig_list(text: str) -> list[dict]:
    """MIG instances from `nvidia-smi -L`: parent GPU index and uuid, profile, MIG uuid."""
    instances, parent = [], None
    for line in text.splitlines():
        gpu = GPU_LINE.match(line)
        if gpu:
            parent = (int(gpu.group(1)), gpu.group(2))
            continue
        mig = MIG_LINE.match(line)
        if mig and parent is not None:
            instances.append({"gpu": parent[0], "gpu_uuid": parent[1], "profile": mig.group(1),
                              "uuid": mig.group(3)})
    return instances


def _mig_device(entry: str, gpus: list[Gpu], migs: list[dict]) -> Gpu | None:
    for mig in migs:
        # the old form names the parent GPU and the instance: MIG-GPU-<uuid>/<gi>/<ci>
        if entry == mig["uuid"] or (entry.startswith("MIG-GPU-") and entry[4:].split("/")[0] == mig["gpu_uuid"]):
            parent = next((g for g in gpus if g.index == mig["gpu"]), None)
            if parent is None:
                return None
            return Gpu(index=parent.index, name=f"{parent.name} MIG {mig['profile']}", uuid=mig["uuid"],
                       memory_mib=None, free_mib=None, capability=parent.capability, vendor=parent.vendor)
    return None


def visible_gpus(value: str | None, gpus: list[Gpu], migs: list[dict] | None = None) -> list[Gpu]:
    """The GPUs a CUDA process sees under CUDA_VISIBLE_DEVICES=`value` (None: unset).

    Entries are read left to right and reading stops at the first one that names no
    device (a bad index, an unknown or ambiguous UUID, "-1"), which hides the rest:
    `0,2,-1,1` shows 0 and 2. A repeated device is kept once."""
    if value is None:
        return list(gpus)
    picked: list[Gpu] = []
    for raw in value.split(","):
        entry = raw.strip()
        device: Gpu | None = None
        if entry.isdigit():
            device = next((g for g in gpus if g.index == int(entry)), None)
        elif entry.startswith("GPU-"):
            matches = [g for g in gpus if g.uuid and g.uuid.lower().startswith(entry.lower())]
            device = matches[0] if len(matches) == 1 else None
        elif entry.startswith("MIG-"):
            device = _mig_device(entry, gpus, migs or [])
        if device is None:
            break
        if device not in picked:
            picked.append(device)
    return picked


def parse_rocm_smi_json(text: str) -> list[Gpu]:
    """`rocm-smi --showproductname --showmeminfo vram --showuniqueid --json`: one
    "cardN" object per GPU. Key spellings differ between releases, so keys are
    matched loosely."""
    try:
        data = json.loads(text)
    except ValueError:
        return []
    gpus = []
    for key, card in data.items():
        match = re.fullmatch(r"card(\d+)", key)
        if not match or not isinstance(card, dict):
            continue
        fields = {k.lower(): v for k, v in card.items()}
        name = fields.get("card series") or fields.get("card model") or fields.get("device name") or "AMD GPU"
        total = _int(fields.get("vram total memory (b)"))
        used = _int(fields.get("vram total used memory (b)"))
        gpus.append(Gpu(index=int(match.group(1)), name=str(name), uuid=fields.get("unique id"),
                        memory_mib=total // 2**20 if total else None,
                        free_mib=(total - used) // 2**20 if total and used is not None else None, vendor="amd"))
    return sorted(gpus, key=lambda g: g.index)


def _mib(value) -> int | None:
    """amd-smi sizes: {"value": 196592, "unit": "MB"} or "196592 MB"."""
    if isinstance(value, dict):
        number, unit = _int(value.get("value")), str(value.get("unit", "MB"))
    else:
        match = re.fullmatch(r"\s*([\d.]+)\s*([A-Za-z]*)\s*", str(value or ""))
        if not match:
            return None
        number, unit = _int(match.group(1)), match.group(2) or "MB"
    if number is None:
        return None
    return {"B": number // 2**20, "KB": number // 1024, "GB": number * 1024}.get(unit.upper(), number)


def parse_amd_smi_json(text: str) -> list[Gpu]:
    """`amd-smi static --asic --vram --json`: a list (or {"gpu_data": [...]}) of
    {"gpu": N, "asic": {"market_name": ...}, "vram": {"size": ...}}."""
    try:
        data = json.loads(text)
    except ValueError:
        return []
    if isinstance(data, dict):
        data = data.get("gpu_data", [])
    gpus = []
    for entry in data if isinstance(data, list) else []:
        if not isinstance(entry, dict) or _int(entry.get("gpu")) is None:
            continue
        asic, vram = entry.get("asic") or {}, entry.get("vram") or {}
        gpus.append(Gpu(index=_int(entry["gpu"]), name=str(asic.get("market_name") or "AMD GPU"),
                        uuid=asic.get("asic_serial"), memory_mib=_mib(vram.get("size")), vendor="amd"))
    return sorted(gpus, key=lambda g: g.index)


def _run(argv: list[str]) -> str | None:
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout if out.returncode == 0 else None


def nvidia_gpus() -> list[Gpu]:
    for query in (NVIDIA_QUERY, NVIDIA_QUERY_OLD):
        text = _run(["nvidia-smi", f"--query-gpu={query}", "--format=csv,noheader,nounits"])
        if text is not None:
            return parse_nvidia_smi(text)
    return []


def amd_gpus() -> list[Gpu]:
    text = _run(["amd-smi", "static", "--asic", "--vram", "--json"])
    gpus = parse_amd_smi_json(text) if text else []
    if gpus:
        return gpus
    text = _run(["rocm-smi", "--showproductname", "--showmeminfo", "vram", "--showuniqueid", "--json"])
    return parse_rocm_smi_json(text) if text else []


def inventory_from(gpus: list[Gpu], cpu_cores: int) -> Inventory:
    return Inventory(
        gpu_count=len(gpus),
        gpu_names=tuple(g.name for g in gpus),
        gpu_memory_mib=tuple(g.memory_mib or 0 for g in gpus),
        cpu_cores=cpu_cores,
        gpu_uuids=tuple(g.uuid for g in gpus),
        gpu_free_mib=tuple(g.free_mib for g in gpus),
        gpu_capabilities=tuple(g.capability for g in gpus),
        gpu_vendor=gpus[0].vendor if gpus else "nvidia",
    )


def cpu_cores() -> int:
    """Cores this process may use; STUDIO_CPU_CORES overrides (tests fake a big host)."""
    override = os.environ.get("STUDIO_CPU_CORES")
    if override and override.isdigit() and int(override) > 0:
        return int(override)
    try:
        return len(os.sched_getaffinity(0)) or 1
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def _look() -> Inventory:
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    gpus = nvidia_gpus()
    if gpus:
        migs = parse_mig_list(_run(["nvidia-smi", "-L"]) or "") if visible and "MIG-" in visible else []
        return inventory_from(visible_gpus(visible, gpus, migs), cpu_cores())
    gpus = amd_gpus()
    # HIP reads HIP_VISIBLE_DEVICES first and honours CUDA_VISIBLE_DEVICES too
    visible = os.environ.get("HIP_VISIBLE_DEVICES", visible)
    return inventory_from(visible_gpus(visible, gpus), cpu_cores())


_first_look = lru_cache(maxsize=1)(_look)


def detect() -> Inventory:
    """This machine's devices, looked up once per process (a server's GPUs do not
    change under it), with each GPU's free memory read at every call: other
    processes take and give back memory, and a long-running server that planned on
    its first reading would size every later sweep's batches on a stale figure."""
    first = _first_look()
    if not first.gpu_count:
        return first
    now = _look()
    # the same devices, or the fresh figures belong to others: then free memory is unknown
    free = now.gpu_free_mib if now.gpu_uuids == first.gpu_uuids else (None,) * first.gpu_count
    return replace(first, gpu_free_mib=free)


detect.cache_clear = _first_look.cache_clear  # tests and the page's no-GPU fixture forget the first look

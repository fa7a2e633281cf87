"""Which GPUs a run sees: nvidia-smi, amd-smi and rocm-smi text, and CUDA_VISIBLE_DEVICES
read as the CUDA runtime reads it. Canned tool output; no GPU needed."""

from __future__ import annotations

import pytest

from runner.host import hardware
from runner.host.hardware import (
    Gpu,
    inventory_from,
    parse_amd_smi_json,
    parse_mig_list,
    parse_nvidia_smi,
    parse_rocm_smi_json,
    visible_gpus,
)

# nvidia-smi --query-gpu=index,name,uuid,pci.bus_id,memory.total,memory.free,compute_cap
#            --format=csv,noheader,nounits
SMI = """\
0, NVIDIA H100 80GB HBM3, GPU-8932f937-d72c-4106-c12f-20bd9faed9f6, 00000000:18:00.0, 81559, 81004, 9.0
1, NVIDIA H100 80GB HBM3, GPU-1c5a0b5e-2e2f-6a43-8a21-3f5e9f0d1b77, 00000000:2A:00.0, 81559, 40000, 9.0
2, Tesla V100-SXM2-32GB, GPU-77aa00bb-0000-1111-2222-333344445555, 00000000:3B:00.0, 32768, 32000, 7.0
"""
GPUS = parse_nvidia_smi(SMI)

SMI_L = """\
GPU 0: NVIDIA A100-SXM4-40GB (UUID: GPU-5d5ba0d6-d33d-2b2c-524d-9e3d8d2b8a77)
  MIG 3g.20gb     Device  0: (UUID: MIG-c6d4f1ef-42e4-5de3-91c7-45d71c87eb3f)
  MIG 1g.5gb      Device  1: (UUID: MIG-cba663e8-9bed-5b25-b243-5985ef7c9beb)
"""


def names(gpus):
    return [g.index for g in gpus]


def test_nvidia_smi_rows_carry_uuid_free_memory_and_capability():
    assert GPUS[0] == Gpu(index=0, name="NVIDIA H100 80GB HBM3", uuid="GPU-8932f937-d72c-4106-c12f-20bd9faed9f6",
                          memory_mib=81559, free_mib=81004, capability=(9, 0))
    assert GPUS[2].capability == (7, 0)
    # an older driver without compute_cap: capability unknown, the rest read
    old = parse_nvidia_smi("0, Tesla T4, GPU-abc, 00000000:00:04.0, 15360, 15000\n")
    assert old[0].capability is None and old[0].free_mib == 15000


@pytest.mark.parametrize("value, expected", [
    (None, [0, 1, 2]),
    ("", []),
    ("-1", []),
    ("1", [1]),
    ("2,0", [2, 0]),
    ("0,7,1", [0]),  # 7 names no device: it and all after it are hidden
    ("0,-1,1", [0]),
    ("0, 1", [0, 1]),
    ("GPU-1c5a0b5e-2e2f-6a43-8a21-3f5e9f0d1b77", [1]),
    ("GPU-1c5a0b5e", [1]),  # a unique prefix is enough
    ("GPU-1,0", [1, 0]),  # GPU-1c5a... is the only uuid starting so
    ("GPU-,0", []),  # a prefix every uuid shares names no one device
    ("GPU-77aa00bb-0000-1111-2222-333344445555,0", [2, 0]),
    ("GPU-deadbeef,0", []),
    ("0,0,1", [0, 1]),
])
def test_cuda_visible_devices_like_the_cuda_runtime(value, expected):
    if value == "GPU-1,0":
        # GPU-1c5a... is the only uuid starting GPU-1, so it is unique here
        assert names(visible_gpus(value, GPUS)) == [1, 0]
        return
    assert names(visible_gpus(value, GPUS)) == expected


def test_uuids_and_mig_ids_do_not_fall_back_to_cpu():
    a100 = parse_nvidia_smi("0, NVIDIA A100-SXM4-40GB, GPU-5d5ba0d6-d33d-2b2c-524d-9e3d8d2b8a77, "
                            "00000000:07:00.0, 40960, 40000, 8.0\n")
    migs = parse_mig_list(SMI_L)
    assert [m["profile"] for m in migs] == ["3g.20gb", "1g.5gb"]
    seen = visible_gpus("MIG-cba663e8-9bed-5b25-b243-5985ef7c9beb", a100, migs)
    assert len(seen) == 1 and seen[0].name == "NVIDIA A100-SXM4-40GB MIG 1g.5gb"
    assert seen[0].capability == (8, 0) and seen[0].uuid.startswith("MIG-")
    # the older MIG-GPU-<uuid>/<gi>/<ci> form names the parent
    assert len(visible_gpus("MIG-GPU-5d5ba0d6-d33d-2b2c-524d-9e3d8d2b8a77/1/0", a100, migs)) == 1
    assert visible_gpus("MIG-unknown", a100, migs) == []


def test_detect_reads_cuda_visible_devices_and_the_core_override(monkeypatch):
    monkeypatch.setattr(hardware, "nvidia_gpus", lambda: GPUS)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "GPU-77aa00bb,1")
    monkeypatch.setenv("STUDIO_CPU_CORES", "64")
    hardware.detect.cache_clear()
    try:
        inv = hardware.detect()
    finally:
        hardware.detect.cache_clear()
    assert inv.gpu_names == ("Tesla V100-SXM2-32GB", "NVIDIA H100 80GB HBM3")
    assert inv.min_capability() == (7, 0)
    assert inv.gpu_free_mib == (32000, 40000)
    assert inv.cpu_cores == 64 and inv.max_processes("cpu") == 128
    assert inv.expected_devices()[0] == {"index": 0, "name": "Tesla V100-SXM2-32GB",
                                         "uuid": "GPU-77aa00bb-0000-1111-2222-333344445555"}


def test_amd_gpus_are_found_when_there_is_no_nvidia_smi(monkeypatch):
    amd = [Gpu(index=0, name="AMD Instinct MI300X", memory_mib=196592, vendor="amd"),
           Gpu(index=1, name="AMD Instinct MI300X", memory_mib=196592, vendor="amd")]
    monkeypatch.setattr(hardware, "nvidia_gpus", lambda: [])
    monkeypatch.setattr(hardware, "amd_gpus", lambda: amd)
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    monkeypatch.setenv("HIP_VISIBLE_DEVICES", "1")
    hardware.detect.cache_clear()
    try:
        inv = hardware.detect()
    finally:
        hardware.detect.cache_clear()
    assert (inv.gpu_count, inv.gpu_vendor, inv.default_device) == (1, "amd", "cuda")


# Shaped after `amd-smi static --asic --vram --json` (ROCm 6.x: sizes as value/unit)
AMD_SMI = """[
  {"gpu": 0, "asic": {"market_name": "AMD Instinct MI300X", "vendor_id": "0x1002", "asic_serial": "0xA1B2"},
   "vram": {"type": "HBM", "vendor": "N/A", "size": {"value": 196592, "unit": "MB"}}},
  {"gpu": 1, "asic": {"market_name": "AMD Instinct MI300X", "asic_serial": "0xC3D4"},
   "vram": {"size": "196592 MB"}}
]"""
# Shaped after `rocm-smi --showproductname --showmeminfo vram --showuniqueid --json`
ROCM_SMI = """{
  "card0": {"Card Series": "AMD Instinct MI210", "Card Model": "0x740f", "Unique ID": "0x1234",
            "VRAM Total Memory (B)": "68702699520", "VRAM Total Used Memory (B)": "10960896"},
  "card1": {"Card series": "AMD Instinct MI210", "VRAM Total Memory (B)": "68702699520"}
}"""


def test_amd_smi_and_rocm_smi_parse():
    amd = parse_amd_smi_json(AMD_SMI)
    assert [(g.index, g.name, g.memory_mib, g.vendor) for g in amd] == [
        (0, "AMD Instinct MI300X", 196592, "amd"), (1, "AMD Instinct MI300X", 196592, "amd")]
    assert parse_amd_smi_json('{"gpu_data": ' + AMD_SMI + "}")[0].uuid == "0xA1B2"
    rocm = parse_rocm_smi_json(ROCM_SMI)
    assert [(g.index, g.name, g.memory_mib) for g in rocm] == [(0, "AMD Instinct MI210", 65520),
                                                               (1, "AMD Instinct MI210", 65520)]
    assert rocm[0].free_mib == (68702699520 - 10960896) // 2**20 and rocm[1].free_mib is None
    assert parse_amd_smi_json("not json") == [] and parse_rocm_smi_json("") == []


def test_inventory_from_an_empty_list_is_a_cpu_machine():
    inv = inventory_from([], 2)
    assert (inv.gpu_count, inv.default_device, inv.min_capability()) == (0, "cpu", None)


def test_each_plan_reads_free_memory_now_while_the_devices_are_looked_up_once(monkeypatch):
    # A long-running server plans sweep after sweep: another process takes 50 GB of GPU 0 in between,
    # so the second plan must see 31004 MiB free, not the first look's 81004.
    from runner.config import RunConfig
    from runner.host.validate import plan_for, prepare

    free, looks = [81004], []

    def smi():
        looks.append(free[0])
        return parse_nvidia_smi(SMI.splitlines()[0].replace(", 81004,", f", {free[0]},"))

    monkeypatch.setattr(hardware, "nvidia_gpus", smi)
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    hardware.detect.cache_clear()
    try:
        config = RunConfig(model="tiny", prompts=["Hello there.", "Hi."], device="cuda", gpus_per_node=1,
                           mode="auto", max_new_tokens=8)
        prepared = prepare(config, hardware.detect())
        first = plan_for(prepared)
        free[0] = 31004  # another process took 50 GB
        second = plan_for(prepared)
        names = hardware.detect().gpu_names
    finally:
        hardware.detect.cache_clear()
    budgets = [p["memory"]["budget"]["bytes"] for p in (first, second)]
    assert budgets == [int(81004 * 2**20 * 0.9), int(31004 * 2**20 * 0.9)], budgets
    assert "30.3 GiB free" in second["memory"]["budget"]["source"], second["memory"]["budget"]["source"]
    assert names == ("NVIDIA H100 80GB HBM3",)
    assert looks.count(31004) == 2  # the second plan read it, and so did the last look (free memory only)

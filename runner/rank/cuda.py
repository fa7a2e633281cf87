"""The worker's device decisions, as pure functions, and the thin calls into torch.

Every decision here (how to load, whether to synchronise, whether the device a
rank got is the one promised, whether the bandwidth probe fits) takes plain
values, so it is tested on a machine without a GPU. The functions that touch
torch.cuda only gather those values and act on the answer.
"""

from __future__ import annotations

import resource

# The probe copies between two buffers of this size; with the allocator's rounding
# and the CUDA context it needs a margin on top.
PROBE_MEGABYTES = 1024
PROBE_MARGIN_BYTES = 512 * 2**20


class DeviceMismatch(RuntimeError):
    pass


def is_cuda(device: str) -> bool:
    return device.startswith("cuda")


def pretrained_load_kwargs(device: str) -> tuple[dict, bool]:
    """Extra from_pretrained arguments for a rank's device, and whether the model
    must still be moved afterwards. On a GPU the weights go straight to the rank's
    device (`device_map={"": device}`): built in host memory first, eight ranks of
    a 7B model would hold about 108 GB of RAM at once. On CPU: as before."""
    if is_cuda(device):
        return {"device_map": {"": device}}, False
    return {}, True


def synchronize(device: str) -> None:
    """Wait for the device's queued kernels (no-op on CPU), so a clock read after
    it does not count work queued before it."""
    if is_cuda(device):
        import torch

        torch.cuda.synchronize(device)


def _bare_uuid(uuid: str | None) -> str | None:
    if not uuid:
        return None
    text = str(uuid).lower()
    for prefix in ("gpu-", "mig-"):
        if text.startswith(prefix):
            text = text[len(prefix):]
    return text


def device_mismatch(expected: dict | None, actual_name: str, actual_uuid: str | None) -> str | None:
    """Why the device a rank got is not the one the inventory promised, or None.

    UUIDs are compared where both sides have one (the reliable test); names
    otherwise. MIG instances are not checked: torch reports their name and UUID
    differently across versions, and a false alarm would fail a good run."""
    if not expected:
        return None
    want_uuid = expected.get("uuid")
    if want_uuid and str(want_uuid).startswith("MIG-"):
        return None
    want, got = _bare_uuid(want_uuid), _bare_uuid(actual_uuid)
    where = f"cuda:{expected.get('index')}"
    if want and got:
        if want != got:
            return (f"{where} is GPU-{got} ({actual_name}) but the inventory promised {want_uuid} "
                    f"({expected.get('name')}); GPU order differs between nvidia-smi and CUDA: check "
                    f"CUDA_VISIBLE_DEVICES and CUDA_DEVICE_ORDER=PCI_BUS_ID")
        return None
    if expected.get("name") and actual_name and expected["name"].strip() != actual_name.strip():
        return (f"{where} is a {actual_name} but the inventory promised a {expected['name']}; check "
                f"CUDA_VISIBLE_DEVICES and CUDA_DEVICE_ORDER=PCI_BUS_ID")
    return None


def check_device(device: str, expected_devices: list[dict], local_index: int) -> None:
    """Fail the rank when its GPU is not the promised one."""
    if not is_cuda(device) or local_index >= len(expected_devices):
        return
    import torch

    props = torch.cuda.get_device_properties(device)
    uuid = getattr(props, "uuid", None)
    problem = device_mismatch(expected_devices[local_index], props.name, str(uuid) if uuid else None)
    if problem:
        raise DeviceMismatch(problem)


def probe_decision(device: str, free_bytes: int | None, megabytes: int = PROBE_MEGABYTES) -> str | None:
    """Why the bandwidth probe must be skipped, or None to run it. It allocates two
    buffers after generation; on a GPU the `auto` plan filled, an out-of-memory
    there would fail a run whose results are complete."""
    if not is_cuda(device):
        return None
    needed = 2 * megabytes * 2**20 + PROBE_MARGIN_BYTES
    if free_bytes is None:
        return "bandwidth probe skipped: free device memory unknown"
    if free_bytes < needed:
        return (f"bandwidth probe skipped: {free_bytes / 2**30:.2f} GiB free on the device, "
                f"it needs {needed / 2**30:.2f} GiB")
    return None


def free_device_bytes(device: str) -> int | None:
    if not is_cuda(device):
        return None
    import torch

    try:
        free, _total = torch.cuda.mem_get_info(device)
    except RuntimeError:
        return None
    return int(free)


def host_rss_peak_bytes() -> int:
    # ru_maxrss is KiB on Linux
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024


def memory_peaks(device: str) -> dict:
    """Three different things, each in its own field: what tensors held on the
    device at most, what the caching allocator reserved at most (nearer what
    nvidia-smi shows), and the process's peak resident host memory."""
    peaks = {"device_allocated_peak_bytes": None, "device_reserved_peak_bytes": None,
             "host_rss_peak_bytes": host_rss_peak_bytes()}
    if is_cuda(device):
        import torch

        peaks["device_allocated_peak_bytes"] = int(torch.cuda.max_memory_allocated(device))
        peaks["device_reserved_peak_bytes"] = int(torch.cuda.max_memory_reserved(device))
    return peaks


def legacy_peak_bytes(peaks: dict) -> int | None:
    """The old `peak_memory_bytes`: device-allocated on a GPU, host RSS on CPU,
    kept so stored runs and views still compare."""
    allocated = peaks.get("device_allocated_peak_bytes")
    return allocated if allocated is not None else peaks.get("host_rss_peak_bytes")

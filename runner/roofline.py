"""Memory-bandwidth roofline of a decode run. Torch-free.

Decoding one token per sequence has to read every weight once and the KV cache
of every sequence in the batch. So a run moves at least

    bytes = sum over decode steps of (weight bytes + KV bytes read at that step)

and its achieved bandwidth is bytes / generation seconds. Over the device's
peak bandwidth this is the utilisation: 1.0 means generation ran as fast as the
memory system allows (for batches small enough to be memory-bound).
"""

from __future__ import annotations

import re
from typing import Sequence

# Peak memory bandwidth in GB/s (10^9 bytes/s), from the vendors' data sheets,
# matched against the name nvidia-smi / torch report. The first match wins, so a
# more specific pattern stands above any that also matches its names ("GH200"
# contains "H200"); the third field is a name the row is for, and a test checks
# that every such name lands on its own row. A figure of None marks a part whose
# name is known but whose data-sheet figure is not settled here: it is measured.
GPU_BANDWIDTH: list[tuple[str, float | None, str]] = [
    (r"GH200.*HBM3e", None, "NVIDIA GH200 144G HBM3e"),
    (r"GH200", 4000.0, "NVIDIA GH200 480GB"),
    (r"\bB200\b", 8000.0, "NVIDIA B200"),
    (r"\bH200\b", 4800.0, "NVIDIA H200"),
    (r"\bH100.*NVL", 3900.0, "NVIDIA H100 NVL"),
    (r"\bH100.*PCIe", 2000.0, "NVIDIA H100 PCIe"),
    (r"\bH100", 3350.0, "NVIDIA H100 80GB HBM3"),  # bare "H100" is the SXM part in most clouds
    (r"\bH800.*PCIe", 2000.0, "NVIDIA H800 PCIe"),
    (r"\bH800", 3350.0, "NVIDIA H800"),
    (r"\bH20\b", 4000.0, "NVIDIA H20"),
    (r"A100.*80GB.*PCIe", 1935.0, "NVIDIA A100 80GB PCIe"),
    (r"A100.*80GB", 2039.0, "NVIDIA A100-SXM4-80GB"),
    (r"A100", 1555.0, "NVIDIA A100-SXM4-40GB"),  # the 40 GB parts
    (r"\bA40\b", 696.0, "NVIDIA A40"),
    (r"\bA30\b", 933.0, "NVIDIA A30"),
    (r"\bA10G\b", 600.0, "NVIDIA A10G"),
    (r"\bA10\b", 600.0, "NVIDIA A10"),
    (r"\bL40S\b", 864.0, "NVIDIA L40S"),
    (r"\bL40\b", 864.0, "NVIDIA L40"),
    (r"\bL4\b", 300.0, "NVIDIA L4"),
    (r"RTX 6000 Ada", 960.0, "NVIDIA RTX 6000 Ada Generation"),
    (r"RTX A6000", 768.0, "NVIDIA RTX A6000"),
    (r"RTX 4090", 1008.0, "NVIDIA GeForce RTX 4090"),
    (r"RTX 3090 Ti", 1008.0, "NVIDIA GeForce RTX 3090 Ti"),
    (r"RTX 3090", 936.0, "NVIDIA GeForce RTX 3090"),
    (r"V100S", 1134.0, "Tesla V100S-PCIE-32GB"),
    (r"V100", 900.0, "Tesla V100-SXM2-32GB"),
    (r"\bT4\b", 320.0, "Tesla T4"),
    (r"MI300X", 5300.0, "AMD Instinct MI300X"),
    (r"MI250X?\b", 3276.8, "AMD Instinct MI250X"),
    (r"MI210", 1638.4, "AMD Instinct MI210"),
]
# kept for callers that read the old (pattern, figure) list
GPU_BANDWIDTH_GBPS: list[tuple[str, float | None]] = [(p, g) for p, g, _ in GPU_BANDWIDTH]

# How a peak that was measured here, not read from a data sheet, is labelled: a
# copy reaches well under the data-sheet figure, so utilisation against it reads high.
MEASURED_LABEL = "measured copy, not a data-sheet peak"


def bandwidth_row(device_name: str | None) -> tuple[str, float | None, str] | None:
    """The table row a device name falls on, or None for a name not in the table."""
    if not device_name:
        return None
    for row in GPU_BANDWIDTH:
        if re.search(row[0], device_name, flags=re.IGNORECASE):
            return row
    return None


def known_bandwidth_gbps(device_name: str | None) -> float | None:
    """Data-sheet peak bandwidth of a known GPU, None for anything else (CPUs included)."""
    row = bandwidth_row(device_name)
    return row[1] if row else None


def kv_positions_read(prompt_lengths: Sequence[int], max_new_tokens: int, generated: int | None = None) -> int:
    """KV positions one batch reads over its decode steps. With left padding every
    row holds the batch's longest prompt; step t (from 1) reads longest + t - 1
    positions in every row. `generated` is the number of decode steps actually run
    (a batch stops early when every row hit EOS)."""
    if not prompt_lengths:
        return 0
    steps = max_new_tokens if generated is None else generated
    longest = max(prompt_lengths)
    rows = len(prompt_lengths)
    # sum over t = 1..steps of (longest + t - 1)
    return rows * (steps * longest + steps * (steps - 1) // 2)


def bytes_moved(weight_bytes: int, kv_bytes_per_token: int, batches: Sequence[tuple[Sequence[int], int]]) -> int:
    """Bytes a run must move: `batches` holds (prompt lengths, decode steps) per
    generate call; each step reads all weights once plus the batch's KV cache."""
    total = 0
    for lengths, steps in batches:
        total += steps * weight_bytes + kv_bytes_per_token * kv_positions_read(lengths, steps, steps)
    return total


def utilisation(bytes_total: int, seconds: float, peak_gbps: float | None) -> dict:
    """Achieved bandwidth (GB/s) and its share of the peak, when the peak is known."""
    achieved = bytes_total / seconds / 1e9 if seconds and seconds > 0 else None
    share = achieved / peak_gbps if achieved is not None and peak_gbps else None
    return {"bytes": int(bytes_total), "achieved_gbps": achieved, "peak_gbps": peak_gbps, "utilisation": share}


def measure_copy_bandwidth_gbps(device: str = "cuda", megabytes: int = 1024, repeats: int = 5) -> float:
    """Fallback for GPUs not in the table: a device-to-device copy, read + write
    counted, median of a few. Imports torch; only workers call it."""
    import statistics
    import time

    import torch

    n = megabytes * 2**20 // 4
    src = torch.empty(n, dtype=torch.float32, device=device)
    dst = torch.empty_like(src)
    dst.copy_(src)
    times = []
    for _ in range(repeats):
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        start = time.perf_counter()
        dst.copy_(src)
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return 2 * n * 4 / statistics.median(times) / 1e9


def describe(roofline: dict | None) -> str:
    """One line for the run-detail view."""
    if not roofline or roofline.get("achieved_gbps") is None:
        return "Bandwidth: not measured for this run."
    text = f"Bandwidth: {roofline['achieved_gbps']:.1f} GB/s moved (weights + KV cache reads per decode step)"
    if roofline.get("utilisation") is not None:
        source = roofline.get("peak_source", "")
        text += (f", {roofline['utilisation']:.0%} of the {roofline['peak_gbps']:.0f} GB/s peak"
                 + (f" ({source})" if source else ""))
    else:
        text += "; no peak bandwidth known for this device, so no utilisation"
        if roofline.get("peak_note"):
            text += f" ({roofline['peak_note']})"
    return text + "."


def run_roofline(ranks: list[dict]) -> dict | None:
    """A run's figures from its ranks' (`rank["roofline"]`): every rank streams
    from its own device, so bytes add up over ranks, the time is the slowest
    rank's, and the peak is one device's times the rank count."""
    figures = [r["roofline"] for r in ranks if isinstance(r.get("roofline"), dict)]
    if not figures:
        return None
    seconds = max((r.get("seconds") or 0.0) for r in ranks)
    total = sum(f.get("bytes") or 0 for f in figures)
    peaks = [f.get("peak_gbps") for f in figures]
    peak = sum(peaks) if all(peaks) else None
    run = utilisation(total, seconds, peak)
    run["peak_source"] = figures[0].get("peak_source", "")
    notes = sorted({f["peak_note"] for f in figures if f.get("peak_note")})
    run["peak_note"] = "; ".join(notes) or None
    run["per_rank"] = [
        {"rank": f.get("rank"), "achieved_gbps": f.get("achieved_gbps"), "utilisation": f.get("utilisation")}
        for f in figures
    ]
    return run

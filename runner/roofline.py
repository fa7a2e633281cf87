"""Memory-bandwidth roofline of a decode run. Torch-free.

Decoding one token per sequence has to read every weight once and move the KV
cache of every sequence in the batch. So a run moves at least

    bytes = sum over decode steps of (weight bytes + KV cache bytes moved at that step)

and its achieved bandwidth is bytes / generation seconds. Over the device's
peak bandwidth this is the utilisation: 1.0 means generation ran as fast as the
memory system allows (for batches small enough to be memory-bound). How many
KV bytes a step moves depends on the cache kind (`KV_TRAFFIC`).
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
    """KV positions one batch holds over its decode steps. With left padding every
    row holds the batch's longest prompt; at step t (from 1) a row holds
    longest + t - 1 positions. `generated` is the number of decode steps actually run
    (a batch stops early when every row hit EOS)."""
    if not prompt_lengths:
        return 0
    steps = max_new_tokens if generated is None else generated
    longest = max(prompt_lengths)
    rows = len(prompt_lengths)
    # sum over t = 1..steps of (longest + t - 1)
    return rows * (steps * longest + steps * (steps - 1) // 2)


# Cache kinds by the generation path that uses them (runner.rank.generation.path_name).
CACHE_OF_PATH = {"plain": "dynamic", "static": "static", "static+compile": "static", "continuous": "paged"}
# Times a step moves the positions a row holds, read off transformers 5.25 cache_utils:
# - dynamic: DynamicLayer.update is `torch.cat([self.keys, key_states])`, a new tensor
#   each step: the L old positions are read, L (+1) written, and attention then reads
#   the L (+1) it returned: 3 x the cache, not the 1 x of reading it in place.
# - paged (continuous batching): the new position is written into its page and attention
#   reads the pages in use: 1 x.
# - static: StaticLayer.update `index_copy_`s the new position in place (one position
#   written), but returns the whole preallocated buffer, and attention reads all of it,
#   masked positions too: 1 x the buffer's length (`cache_len`), not the positions in use.
KV_TRAFFIC = {"dynamic": 3, "paged": 1, "static": 1}


def kv_positions_moved(prompt_lengths: Sequence[int], steps: int, cache: str = "dynamic",
                       cache_len: int | None = None) -> int:
    """Positions (of every layer's keys and values) one batch moves over `steps`
    decode steps with this cache kind; `cache_len` is a static cache's buffer length."""
    if cache not in KV_TRAFFIC:
        raise ValueError(f"unknown cache kind {cache!r}; one of {sorted(KV_TRAFFIC)}")
    if cache == "static" and cache_len:
        return KV_TRAFFIC["static"] * len(prompt_lengths) * steps * cache_len
    return KV_TRAFFIC[cache] * kv_positions_read(prompt_lengths, steps, steps)


def traffic(weight_bytes: int, kv_bytes_per_token: int, batches: Sequence[tuple[Sequence[int], int]],
            cache: str = "dynamic", cache_len: int | None = None) -> dict:
    """Bytes a run must move, split into weights and KV cache: `batches` holds (prompt
    lengths, decode steps) per generate call; each step reads all weights once and
    moves the batch's KV cache as its cache kind does. A static cache's buffer is
    `cache_len` long, or the batch's longest prompt plus its steps when not given."""
    weights = kv = 0
    for lengths, steps in batches:
        weights += steps * weight_bytes
        length = max(cache_len or 0, max(lengths, default=0) + steps) if cache == "static" else None
        kv += kv_bytes_per_token * kv_positions_moved(lengths, steps, cache, length)
    return {"weight_bytes_moved": weights, "kv_bytes_moved": kv, "bytes": weights + kv, "cache": cache,
            "kv_traffic": KV_TRAFFIC[cache]}


def bytes_moved(weight_bytes: int, kv_bytes_per_token: int, batches: Sequence[tuple[Sequence[int], int]],
                cache: str = "dynamic", cache_len: int | None = None) -> int:
    """Total of `traffic`."""
    return traffic(weight_bytes, kv_bytes_per_token, batches, cache, cache_len)["bytes"]


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
    text = f"Bandwidth: {roofline['achieved_gbps']:.1f} GB/s moved (weights + KV cache traffic per decode step)"
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
    # the split the what-if predictions scale by (None for ranks stored before it was kept)
    for part in ("weight_bytes_moved", "kv_bytes_moved"):
        values = [f.get(part) for f in figures]
        run[part] = sum(values) if all(v is not None for v in values) else None
    run["cache"] = figures[0].get("cache")
    run["peak_source"] = figures[0].get("peak_source", "")
    notes = sorted({f["peak_note"] for f in figures if f.get("peak_note")})
    run["peak_note"] = "; ".join(notes) or None
    # each rank's shape of its bytes too: a stored run keeps no rank rows' roofline, and the
    # what-if predictions recover weights per step, KV per position and prompt length from these
    run["per_rank"] = [
        {"rank": f.get("rank"), "achieved_gbps": f.get("achieved_gbps"), "utilisation": f.get("utilisation"),
         **{k: f[k] for k in ("bytes", "weight_bytes", "kv_bytes_per_token", "kv_traffic", "decode_steps") if k in f}}
        for f in figures
    ]
    return run

"""One rank's roofline figures for one run: the bytes its generation moved against
its device's peak bandwidth. Taken after the run's timer stops, since the bandwidth
probe allocates buffers of its own."""

from __future__ import annotations


def rank_roofline(model, calls: list[tuple[list[int], int]], seconds: float, device: str, rank: int,
                  tp: int = 1, path: str = "plain", static_cache_len: int | None = None) -> dict:
    """Bytes this rank had to move (weights + KV cache traffic per decode step, as
    its generation path's cache moves it) over its generation time, against its
    device's peak bandwidth. A rank of a tensor group holds its share of the
    weights and of the key-value heads."""
    from runner.planner import shape_from_config
    from runner.rank.cuda import free_device_bytes, probe_decision
    from runner.roofline import (
        CACHE_OF_PATH,
        MEASURED_LABEL,
        known_bandwidth_gbps,
        measure_copy_bandwidth_gbps,
        traffic,
        utilisation,
    )

    local = [p.to_local() if hasattr(p, "to_local") else p for p in model.parameters()]  # DTensor shards
    weight_bytes = sum(p.numel() * p.element_size() for p in local)
    dtype_name = str(local[0].dtype).replace("torch.", "")
    kv_per_token = shape_from_config(model.config.to_dict(), dtype_name).kv_bytes_per_token // tp
    moved = traffic(weight_bytes, kv_per_token, calls, CACHE_OF_PATH[path], static_cache_len)
    note = None
    if device.startswith("cuda"):
        import torch

        name = torch.cuda.get_device_name(device)
        peak, source = known_bandwidth_gbps(name), f"{name}, data sheet"
        if peak is None:
            note = probe_decision(device, free_device_bytes(device))
            source = f"{name}, {MEASURED_LABEL}"
            if note is None:
                try:
                    peak = measure_copy_bandwidth_gbps(device)
                except torch.OutOfMemoryError:
                    # the figure is extra; the run it follows is complete and must stand
                    torch.cuda.empty_cache()
                    peak, note = None, "bandwidth probe skipped: out of device memory"
    else:
        # no table for CPUs: a single-threaded copy measures what one rank can stream
        peak, source = measure_copy_bandwidth_gbps("cpu", megabytes=128, repeats=3), f"CPU, {MEASURED_LABEL}"
    figures = utilisation(moved["bytes"], seconds, peak)
    return {**moved, **figures, "peak_source": source, "peak_note": note, "weight_bytes": weight_bytes,
            "kv_bytes_per_token": kv_per_token, "decode_steps": sum(steps for _, steps in calls), "rank": rank}

"""Which profiler events count as a tensor group's communication (runner.rank.tensor_parallel.comm_seconds).

CPU: a real recording, tests/fixtures/gloo_tp2_events.json, made by
tests/fixtures/record_comm_events.py (two gloo processes, tiny split tp 2, three new
tokens under torch.profiler). CUDA: no GPU here, so the list below is built from
what the profiler emits there:
- torch/autograd/profiler.py `_parse_kineto_results` turns each device kernel into an
  event of its own with `device_type=DeviceType.CUDA` on the device's timeline, next
  to the host ops (`DeviceType.CPU`) that launched it; `prof.events()` holds both;
- ProcessGroupNCCL records its host op as `nccl:all_reduce` (its `profilingTitle`),
  under `c10d::allreduce_` and `record_param_comms`, and the launch as `cudaLaunchKernel`;
- NCCL names its kernels `ncclDevKernel_AllReduce_Sum_f32_RING_LL(...)` since 2.19
  (NVIDIA/nccl issues #1595, #2196), `ncclKernel_...` before (#739).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from runner.rank.tensor_parallel import ProfiledEvent, comm_seconds, profiled_events

FIXTURE = Path(__file__).parent / "fixtures" / "gloo_tp2_events.json"


def host(name, start, end):
    return ProfiledEvent(name, "CPU", start, end)


def kernel(name, start, end):
    return ProfiledEvent(name, "CUDA", start, end)


def decode_step_on_two_gpus(t0: float) -> list[ProfiledEvent]:
    """One rank's events of one decode step's two all-reduces (attention out, MLP down), µs.
    The host runs ahead of the device, as it does in decode: its ops end before the kernels start."""
    events = []
    for k, (host_at, gemm, nccl) in enumerate([(0, (300, 420), (420, 460)), (200, (460, 600), (600, 645))]):
        h = t0 + host_at
        events += [
            host("aten::mm", h, h + 10),
            host("_c10d_functional::all_reduce", h + 20, h + 50),
            host("c10d::allreduce_", h + 25, h + 48),
            host("record_param_comms", h + 26, h + 47),
            host("nccl:all_reduce", h + 28, h + 45),
            host("cudaLaunchKernel", h + 35, h + 42),
            host("_c10d_functional::wait_tensor", h + 51, h + 55),  # a stream wait: the host goes on
            kernel("sm90_xmma_gemm_bf16bf16_bf16f32_f32_tn_n_tilesize64x64x64_cublas", t0 + gemm[0], t0 + gemm[1]),
            kernel("ncclDevKernel_AllReduce_Sum_f32_RING_LL(ncclDevKernelArgsStorage<4096ul>)" if k == 0 else
                   "ncclDevKernel_AllReduce_Sum_bf16_RING_LL(ncclDevKernelArgsStorage<4096ul>)",
                   t0 + nccl[0], t0 + nccl[1]),
        ]
    events.append(ProfiledEvent("Memcpy DtoH (Device -> Pinned)", "CUDA", t0 + 650, t0 + 655))
    return events


def test_on_cuda_only_the_nccl_kernels_device_time_counts():
    events = decode_step_on_two_gpus(0.0) + decode_step_on_two_gpus(1000.0)
    # 40 + 45 µs of NCCL kernels per step. Adding the host ops' intervals (which only enqueue the
    # kernels) read 153 µs per step: the all-reduce share was overstated 1.8 times.
    assert comm_seconds(events, on_cuda=True) == pytest.approx(2 * 85e-6)


def test_older_nccl_kernel_names_count_and_no_device_activity_gives_no_figure():
    old = [kernel("ncclKernel_AllReduce_RING_LL_Sum_float(ncclWorkElem)", 10, 30),
           host("nccl:all_reduce", 0, 5)]
    assert comm_seconds(old, on_cuda=True) == pytest.approx(20e-6)
    # the profiler saw no kernel at all (no CUPTI): unknown, not 0 %
    assert comm_seconds([host("nccl:all_reduce", 0, 5), host("c10d::allreduce_", 0, 6)], on_cuda=True) is None


def recorded() -> tuple[dict, list[dict]]:
    data = json.loads(FIXTURE.read_text())
    return data["recorded_with"], data["events"]


def as_events(rows) -> list[ProfiledEvent]:
    return [ProfiledEvent(r["name"], r["device_type"], r["start_us"], r["end_us"]) for r in rows]


def test_on_cpu_the_host_collectives_count_once_and_compute_never():
    meta, rows = recorded()
    assert meta["backend"] == "gloo" and meta["tp"] == 2
    counted = comm_seconds(as_events(rows), on_cuda=False)
    span = (max(r["end_us"] for r in rows) - min(r["start_us"] for r in rows)) / 1e6
    assert 0 < counted < span
    # compute (aten::mm, aten::linear: 173 events of the recording) never counts
    collectives = [r for r in rows if not r["name"].startswith("aten::")]
    assert len(collectives) < len(rows)
    assert comm_seconds(as_events(collectives), on_cuda=False) == pytest.approx(counted)
    # nested events count once: c10d::allreduce_ inside _c10d_functional::all_reduce adds nothing,
    # and their durations added up would be a third more than the time they held
    ids = {r["id"]: r for r in rows}
    nested = [r for r in rows if r["parent"] in ids and not ids[r["parent"]]["name"].startswith("aten::")]
    assert nested
    outer = [r for r in collectives if r not in nested]
    assert comm_seconds(as_events(outer), on_cuda=False) == pytest.approx(counted)
    assert sum(r["end_us"] - r["start_us"] for r in collectives) / 1e6 > 1.3 * counted
    # gloo's work runs on its own thread from enqueue to completion; a synchronous all-reduce
    # holds the caller that long, mostly after c10d::allreduce_ has returned (outside any op)
    ops_only = [r for r in outer if not r["name"].startswith("gloo:")]
    assert comm_seconds(as_events(ops_only), on_cuda=False) < 0.5 * counted
    # what was recorded on CPU is never read as CUDA
    assert comm_seconds(as_events(rows), on_cuda=True) is None


def test_profiler_events_are_read_by_their_device_type():
    from torch.autograd import DeviceType
    from torch.autograd.profiler_util import FunctionEvent

    def event(name, device, start, end):
        return FunctionEvent(id=0, name=name, thread=0, start_us=start, end_us=end, device_type=device)

    events = profiled_events([event("nccl:all_reduce", DeviceType.CPU, 0, 5),
                              event("ncclDevKernel_AllReduce_Sum_f32_RING_LL", DeviceType.CUDA, 10, 25)])
    assert [(e.device_type, e.start_us, e.end_us) for e in events] == [("CPU", 0, 5), ("CUDA", 10, 25)]
    assert comm_seconds(events, on_cuda=True) == pytest.approx(15e-6)

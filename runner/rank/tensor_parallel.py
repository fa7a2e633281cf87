"""Loading a model sharded over a tensor-parallel group, and measuring what its
collectives cost. Worker-side: imports torch.

Why the mesh is built here: transformers 5.24 turns `from_pretrained(...,
tp_plan="auto")` into `DistributedConfig(tp_size=None)`, whose size defaults to
WORLD_SIZE, and builds a fresh mesh over the whole world, dropping any
`device_mesh=` it was given. With 2 data-parallel groups of 2 ranks that shards
the model over all 4 ranks: it looks right while every group holds the same
prompt, and aborts in gloo ("received data size doesn't match") once the groups
hold prompts of different lengths, because the embedding's all-reduce then
spans groups with different sequence lengths. So the worker builds the (dp, tp)
mesh itself and hands transformers the view whose `tp` axis is this rank's group.
"""

from __future__ import annotations

import re
from contextlib import contextmanager
from dataclasses import dataclass

from runner.layout import Layout

# What the profiler's events are named (recorded: tests/fixtures/gloo_tp2_events.json).
# Host side, on every backend: the c10d ops (`c10d::allreduce_`), the functional
# collectives DTensor issues (`_c10d_functional::all_reduce`, `::wait_tensor`) and the
# backend's record of the work from enqueue to completion (`gloo:all_reduce`, run on
# gloo's own thread; `nccl:all_reduce` on CUDA, where it ends at the kernel's launch).
HOST_COLLECTIVE = re.compile(r"^(c10d::|_c10d_functional::|c10d_functional::|gloo:)")
# Device side: NCCL's kernels, `ncclDevKernel_AllReduce_Sum_f32_RING_LL(...)` since NCCL
# 2.19, `ncclKernel_AllReduce_RING_LL_Sum_float(...)` before.
NCCL_KERNEL = re.compile(r"^nccl(Dev)?Kernel")


def build_mesh(device_type: str, layout: Layout):
    """The run's device mesh over every rank, shaped as transformers' own
    (pp, dp_replicate, fsdp, tp), with the data-parallel copies on dp_replicate.
    Every rank must call this, in the same order (it creates process groups)."""
    from torch.distributed import init_device_mesh
    from transformers.distributed.utils import TransformersDeviceMesh

    shape = (1, layout.dp, 1, layout.tp_size)
    dense = init_device_mesh(device_type, shape, mesh_dim_names=("pp", "dp_replicate", "fsdp", "tp"))
    expert = init_device_mesh(device_type, shape, mesh_dim_names=("pp", "dp_replicate", "efsdp", "ep"))
    return TransformersDeviceMesh(dense, expert)


@contextmanager
def _mesh_of_ours(model_class, mesh, device):
    """`from_pretrained` with our mesh instead of one over the whole world (see the module's note)."""
    original = model_class.__dict__.get("prepare_distribute_model")

    def prepare(cls, distributed_config, device_map=None):
        return distributed_config, device, mesh

    model_class.prepare_distribute_model = classmethod(prepare)
    try:
        yield
    finally:
        if original is None:
            del model_class.prepare_distribute_model
        else:
            model_class.prepare_distribute_model = original


def load_sharded(path: str, layout: Layout, device: str, **kwargs):
    """The model at `path`, its layers split over this rank's tensor group by the
    model's own tensor-parallel plan; the mesh's tp axis is checked afterwards."""
    import torch
    import torch.distributed as dist
    from transformers import AutoConfig, AutoModelForCausalLM
    from transformers.distributed import DistributedConfig
    from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING

    config = AutoConfig.from_pretrained(path, trust_remote_code=kwargs.get("trust_remote_code", False))
    model_class = MODEL_FOR_CAUSAL_LM_MAPPING[type(config)]
    mesh = build_mesh(torch.device(device).type, layout)
    with _mesh_of_ours(model_class, mesh, torch.device(device)):
        model = AutoModelForCausalLM.from_pretrained(path, distributed_config=DistributedConfig(tp_size=layout.tp_size),
                                                     **kwargs)
    group = dist.get_process_group_ranks(mesh.get_mesh("tp").get_group())
    expected = layout.tp_group(dist.get_rank())
    if sorted(group) != expected:
        raise RuntimeError(f"the model's tensor group is ranks {group}, the layout asked for {expected}")
    return model


def tp_plan_problem(model_type: str, plan: dict | None) -> str | None:
    """Why a model cannot be split with tensor parallelism, or None."""
    if plan:
        return None
    return (f"transformers has no tensor-parallel plan for {model_type!r} models; run it with tp 1 "
            "(one copy per GPU), or use a model whose architecture has one (llama, mistral, qwen2, ...)")


def merged_seconds(intervals: list[tuple[float, float]]) -> float:
    """Length of the union of (start, end) intervals: nested or overlapping ops
    (an op and the kernel it launched, two threads) count once."""
    total, end_so_far = 0.0, float("-inf")
    for start, end in sorted(intervals):
        if end <= end_so_far:
            continue
        total += end - max(start, end_so_far)
        end_so_far = end
    return total


@dataclass(frozen=True)
class ProfiledEvent:
    """What the selection needs of one torch profiler event."""

    name: str
    device_type: str  # torch's DeviceType name: "CPU" for host ops and runtime calls, "CUDA" for kernels
    start_us: float
    end_us: float


def profiled_events(events) -> list[ProfiledEvent]:
    """`prof.events()` (torch FunctionEvents) as ProfiledEvents."""
    return [ProfiledEvent(e.name or "", getattr(e.device_type, "name", str(e.device_type)),
                          e.time_range.start, e.time_range.end) for e in events]


def comm_seconds(events: list[ProfiledEvent], on_cuda: bool) -> float | None:
    """Seconds collectives held a rank, from one profiled sample.

    On CUDA the NCCL kernels' device time, nothing else: the host ops only enqueue
    them, on the host's clock and ahead of the device, so adding their intervals
    to the kernels' counted each all-reduce about twice. On CPU (gloo) there are no
    kernels: the host events, the op and gloo's work from enqueue to completion,
    during which a synchronous all-reduce holds the caller (it waits outside any op,
    as the recorded fixture shows). Either way nested or overlapping events count
    once. None on CUDA when the profiler recorded no device activity at all."""
    if on_cuda:
        if not any(e.device_type == "CUDA" for e in events):
            return None
        chosen = [e for e in events if e.device_type == "CUDA" and NCCL_KERNEL.match(e.name)]
    else:
        chosen = [e for e in events if e.device_type == "CPU" and HOST_COLLECTIVE.match(e.name)]
    return merged_seconds([(e.start_us / 1e6, e.end_us / 1e6) for e in chosen])


def measure_comm(generate, batch: list[int], new_tokens: int, device: str) -> dict:
    """Runs one sample batch under the torch profiler (after the timed window, so
    the profiler's cost touches no figure) and returns its wall time and the part
    of it that collectives held."""
    import time

    from torch.profiler import ProfilerActivity, profile

    from runner.rank.cuda import synchronize

    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.startswith("cuda") else [])
    synchronize(device)
    with profile(activities=activities) as prof:
        start = time.perf_counter()
        generate(batch, new_tokens)
        synchronize(device)
        wall = time.perf_counter() - start
    on_cuda = device.startswith("cuda")
    comm = comm_seconds(profiled_events(prof.events()), on_cuda)
    counted = "NCCL kernels' device time" if on_cuda else "host collective ops (gloo), enqueue to completion"
    return {"sample_seconds": wall, "comm_seconds": comm,
            "fraction": min(1.0, comm / wall) if comm is not None and wall > 0 else None,
            "sample_prompts": len(batch), "sample_new_tokens": new_tokens,
            "source": f"torch profiler, one sample batch after the timed window; {counted}"}

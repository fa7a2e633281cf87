"""Every process group a tensor-parallel worker makes times out with its run.

Two real gloo processes go through the worker's sequence: the default group (as
PartialState makes it, with the run's limit), the (dp, tp) mesh of
runner.rank.tensor_parallel.build_mesh, then runner.rank.subworld.make_subworlds. Before,
the mesh's groups kept gloo's default of 30 minutes (10 on NCCL) whatever the
run's limit, and so did the runs' sub-groups.
"""

from __future__ import annotations

import json
import os

import pytest
import torch.multiprocessing as mp

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]

LIMIT_S, WAIT_S = 75.0, 300.0


def _rank(rank: int, port: int, out: str) -> None:
    from datetime import timedelta

    import torch
    import torch.distributed as dist
    from torch.distributed import distributed_c10d as c10d

    from runner.layout import Layout
    from runner.rank.subworld import make_subworlds
    from runner.rank.tensor_parallel import build_mesh

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE="4",
                      LOCAL_RANK=str(rank))
    dist.init_process_group("gloo", timeout=timedelta(seconds=LIMIT_S))
    build_mesh("cpu", Layout(4, 2))  # tp groups [0, 1] and [2, 3]: groups of their own
    subworlds = make_subworlds(4, [1, 2, 4], wait_s=WAIT_S, timeout_s=LIMIT_S)
    seen = {}
    for group in c10d._world.pg_map:
        timeout = group._get_backend(torch.device("cpu")).options._timeout.total_seconds()
        name = "waiting" if group is subworlds.waiting else f"{dist.get_process_group_ranks(group)}#{len(seen)}"
        seen[name] = timeout
    if rank == 0:
        with open(out, "w") as f:
            json.dump(seen, f)
    dist.barrier(group=subworlds.waiting)
    dist.destroy_process_group()


def test_every_group_of_a_tensor_parallel_worker_times_out_with_the_run(tmp_path):
    from runner.host.launcher import free_port

    out = tmp_path / "timeouts.json"
    mp.spawn(_rank, args=(free_port(), str(out)), nprocs=4)
    seen = json.loads(out.read_text())
    print(seen)
    assert seen.pop("waiting") == WAIT_S  # ranks outside a run wait out all of the launch's runs
    # the default group, the meshes' tp ([0, 1]) and dp ([0, 2]) groups, the 2-rank run's ([0, 1] again)
    assert {"[0, 1, 2, 3]", "[0, 1]", "[0, 2]"} <= {k.split("#")[0] for k in seen}
    assert set(seen.values()) == {LIMIT_S}, seen

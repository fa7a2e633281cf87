"""The script `accelerate launch` runs on every rank.

Reads a job file (JSON), loads the model once, then runs the launch's runs
("cells", `runner.host.launch_groups`) one after another, each on ranks 0..n-1 of the
launch (`runner.rank.subworld`), and reports progress as JSON lines on stdout
(`runner.events`), a run's tagged with its cell index. A run's ranks meet at a
barrier after its warm-up; each rank times its own generation from there, and the
run's time is the slowest rank's. Rank 0 writes each run's result file.

This file is the launch's entry script and its setup, once per launch; the model
is loaded by `runner.rank.loading`, each run is `runner.rank.cell` (warm-up, the
timed generate loop, the gather) and its result file `runner.rank.result_file`.
"""

from __future__ import annotations

import time

PROCESS_START = time.time()

import argparse  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import socket  # noqa: E402
import sys  # noqa: E402
import traceback  # noqa: E402
from pathlib import Path  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from runner.config import RunConfig  # noqa: E402
from runner.events import emit  # noqa: E402
from runner.layout import Layout  # noqa: E402
from runner.rank import fault_hooks  # noqa: E402
from runner.rank.cell import Loaded, run_cell  # noqa: E402
from runner.rank.loading import eos_ids, load_model_and_tokenizer  # noqa: E402
from runner.rank.rank_process import guard_rank  # noqa: E402


def job_cells(job: dict) -> list[dict]:
    """The runs of a launch: `cells` (config, result_path, plan, warmup_batches
    each), or the one run of a job written before launches were shared."""
    if job.get("cells"):
        return list(job["cells"])
    return [{k: job.get(k) for k in ("config", "result_path", "plan", "warmup_batches")}]


def run(job: dict) -> int:
    from datetime import timedelta

    import torch
    import torch.distributed as dist
    from accelerate import PartialState

    from runner.rank.cuda import check_device
    from runner.rank.subworld import free_memory, make_subworlds, world_barrier

    imported = time.time()
    cells = job_cells(job)
    configs = [RunConfig.from_dict(c["config"]) for c in cells]
    first = configs[0]
    world = int(job.get("world_size") or max(c.world_size for c in configs))
    device, dtype_name = job["device"], job["dtype"]
    # no collective may wait longer than a run may take (the launcher ends a run at its limit);
    # the default would be 10 minutes on NCCL, too short for a long load or warm-up
    limit = max(c.timeout_s for c in configs)
    state = PartialState(cpu=(device == "cpu"), timeout=timedelta(seconds=limit))
    rank = state.process_index
    emit("started", rank=rank, pid=os.getpid(), hostname=socket.gethostname(), time=PROCESS_START)

    if state.num_processes != world:
        emit("error", rank=rank, message=f"world size is {state.num_processes}, the run asked for {world}")
        return 3
    if device == "cuda":
        torch.cuda.set_device(state.local_process_index)
        torch_device = f"cuda:{state.local_process_index}"
        check_device(torch_device, job.get("expected_devices") or [], state.local_process_index)
    else:
        torch.set_num_threads(first.cpu_threads)
        torch_device = "cpu"

    t = time.time()
    emit("phase", rank=rank, phase="load")
    fault_hooks.pause("load")
    # a tensor-parallel launch holds runs of one GPU count only (launch_groups), sharded for that world
    model, tokenizer = load_model_and_tokenizer(job["model"], first, torch_device, dtype_name, state,
                                                Layout(world, first.tp_size))
    loaded_at = time.time()
    fault_hooks.fail_in_forward(model, rank, world)
    # the waiting room's timeout: every run's own limit (the launcher enforces each), all together
    subworlds = make_subworlds(world, [c.world_size for c in configs], wait_s=sum(c.timeout_s for c in configs),
                               timeout_s=limit)
    # the launch's own phases, once for all its runs
    emit("launch-phases", rank=rank, imports=[PROCESS_START, imported], load=[t, loaded_at])
    held = Loaded(state=state, rank=rank, device=torch_device, device_kind=device, dtype_name=dtype_name,
                  model=model, tokenizer=tokenizer, eos=eos_ids(model, tokenizer),
                  expected=job.get("expected_devices") or [], subworlds=subworlds, warmed=set())
    for index, (cell, config) in enumerate(zip(cells, configs)):
        emit("cell-start", rank=rank, cell=index, time=time.time())
        if rank < config.world_size:
            run_cell(index, cell, config, held)
        # ranks outside the run wait here, outside its timed region
        world_barrier(subworlds)
        free_memory(torch_device)
    emit("done", rank=rank)
    if dist.is_initialized():
        dist.destroy_process_group()
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Scaling Studio worker (run by accelerate launch)")
    parser.add_argument("--job", required=True, help="path of the job JSON file")
    args = parser.parse_args(argv)
    guard_rank()
    job = json.loads(Path(args.job).read_text())
    try:
        return run(job)
    except Exception as exc:  # report, then fail the rank so the launcher sees it
        emit("error", rank=int(os.environ.get("RANK", 0)), message=f"{type(exc).__name__}: {exc}")
        traceback.print_exc()
        return 1



if __name__ == "__main__":
    code = main()
    # Everything is reported and written by now. Leave without the interpreter's
    # teardown: the C++ destructors of torch's distributed backends occasionally
    # abort there ("terminate called without an active exception", SIGABRT seen once
    # in ~300 CPU runs), which would fail a run whose results are complete.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)

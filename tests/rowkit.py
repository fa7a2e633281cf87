"""Stored rows for the tests of the page's functions (forms, views, history):
a real SQLite store with runs and sweeps made the way the studio makes them. Runs
read back are db.rows.RunRows, as the studio reads them; a test that makes a run
row by hand makes it the same way, RunRow({...}), so no reader needs a fallback."""

from __future__ import annotations

from db.store import Store
from runner.config import RunConfig
from runner.result import RunResult
from studio.web import forms


def request(**changes) -> forms.SweepRequest:
    values = dict(prompts_text="Call me Ishmael.\nThe King is dead.", model="tiny", mode="batched", batch_size=4,
                  max_new_tokens=8, gpu_counts=["2", "1"], repeats=1)
    values.update(changes)
    return forms.SweepRequest(**values)


def store_run(store: Store, sweep_id: int | None, gpus: int, tps: float | None, *, status: str = "succeeded",
              repeat: int = 0, error: str | None = None, stderr: str | None = None) -> int:
    config = RunConfig(prompts=["a", "b"], gpus_per_node=gpus, max_new_tokens=4).to_dict()
    run_id = store.create_run(config, sweep_id=sweep_id, repeat_index=repeat)
    if status == "succeeded":
        seconds = 8 / tps
        result = RunResult(
            status="succeeded", config=config, device="cpu", dtype="float32", world_size=gpus, tokens=8,
            raw_tokens=10, seconds=seconds, tokens_per_second=tps,
            ranks=[{"rank": r, "num_prompts": 1, "tokens": 4, "seconds": seconds, "peak_memory_bytes": 2**20}
                   for r in range(gpus)],
            outputs=[{"prompt_index": 0, "rank": 0, "prompt": "a", "output": "xy", "tokens": 4}],
            phases={"launch": 1.0, "generate": seconds, "total": 3.0},
        )
    else:
        result = RunResult.failure(config, status, error or "it broke", stderr_tail=stderr)
    store.finish_run(run_id, result)
    return run_id


def sweep_with_runs(store: Store, points=((1, 100.0), (2, 150.0))) -> tuple[int, list[int]]:
    settings = RunConfig(prompts=["a", "b"], max_new_tokens=4).settings()
    sweep_id = store.create_sweep(settings, [p[0] for p in points], 1, name="demo")
    ids = [store_run(store, sweep_id, gpus, tps) for gpus, tps in points]
    store.finish_sweep(sweep_id, "succeeded")
    return sweep_id, ids


# A layout sweep on 4 GPUs as 4 replicas, 2 × tp 2 and tp 4 (and 2 GPUs as 2 replicas and tp 2):
# (GPUs, tp, tokens/s, TTFT p50 ms, TPOT p50 ms, all-reduce share)
LAYOUT_CELLS = ((2, 1, 200.0, 90.0, 40.0, None), (2, 2, 120.0, 60.0, 24.0, 0.18),
                (4, 1, 400.0, 95.0, 41.0, None), (4, 2, 230.0, 62.0, 23.0, 0.2), (4, 4, 130.0, 40.0, 14.0, 0.3))


def store_layout_run(store: Store, sweep_id: int | None, gpus: int, tp: int, tps: float, *, ttft: float | None = None,
                     tpot: float | None = None, comm: float | None = None, dtype: str = "float32",
                     agreement: float | None = None, reference: int | None = None, detail: dict | None = None,
                     repeat: int = 0) -> int:
    """A succeeded run of one layout, with its latency, all-reduce share and agreement as the runner stores them."""
    config = RunConfig(prompts=["a", "b"], gpus_per_node=gpus, tp_size=tp, max_new_tokens=4).to_dict()
    run_id = store.create_run(config, sweep_id=sweep_id, repeat_index=repeat, dp_size=gpus // tp)
    seconds = 8 / tps
    store.finish_run(run_id, RunResult(
        status="succeeded", config=config, device="cpu", dtype=dtype, world_size=gpus, tokens=8, raw_tokens=8,
        seconds=seconds, tokens_per_second=tps,
        ranks=[{"rank": r, "num_prompts": 1, "tokens": 4, "seconds": seconds} for r in range(gpus)],
        outputs=[{"prompt_index": 0, "rank": 0, "prompt": "a", "output": "xy", "tokens": 4, "token_ids": [5, 6]}],
        latency={"ttft_ms_p50": ttft, "tpot_ms_p50": tpot} if ttft or tpot else None, comm_fraction=comm))
    if agreement is not None or reference is not None:
        store.set_agreement(run_id, agreement, reference, detail)
    return run_id


def layout_sweep(store: Store, cells=LAYOUT_CELLS, dtype: str = "float32", below: dict | None = None) -> tuple[int, list[int]]:
    """A finished layout sweep; the first run is the agreement reference, the others agree 100 %
    unless `below` maps a cell index to (agreement, detail)."""
    settings = RunConfig(prompts=["a", "b"], max_new_tokens=4).settings()
    sweep_id = store.create_sweep({**settings, "axes": {"gpus_per_node": [2, 4], "tp_size": [1, 2, 4]}}, [2, 4], 1,
                                  name="layouts")
    ids: list[int] = []
    for i, (gpus, tp, tps, ttft, tpot, comm) in enumerate(cells):
        agreement, detail = (below or {}).get(i, (1.0, {"compared": 2, "identical": 2, "differences": []}))
        ids.append(store_layout_run(store, sweep_id, gpus, tp, tps, ttft=ttft, tpot=tpot, comm=comm, dtype=dtype,
                                    agreement=None if not ids else agreement, reference=ids[0] if ids else None,
                                    detail=detail if ids else None))
    store.finish_sweep(sweep_id, "succeeded")
    return sweep_id, ids

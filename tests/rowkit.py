"""Stored rows for the tests of the page's functions (forms, views, history):
a real SQLite store with runs and sweeps made the way the studio makes them."""

from __future__ import annotations

from db.store import Store
from runner.config import RunConfig
from runner.result import RunResult
from studio import forms


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

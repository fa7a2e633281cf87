"""What rank 0 writes for each run of a launch, after every rank's record was
gathered to it: the run's result file, or why the run failed. The file (JSON) is
what crosses to the host, which reads it in `runner.host.cell_results`."""

from __future__ import annotations

import json
import time
from pathlib import Path

from runner.config import RunConfig
from runner.events import emit
from runner.metrics import run_summary as run_latency


def finish_failed(index: int, cell: dict, rank: int, errors: list, cell_start: float) -> None:
    """A run that failed inside a live launch: rank 0 stores why, and the launch goes on."""
    if rank != 0:
        return None
    message = "; ".join(f"rank {r}: {e}" for r, e in enumerate(errors) if e)
    write_json(Path(cell["result_path"]), {"status": "failed", "error": message, "wall": [cell_start, time.time()]})
    emit("cell-end", rank=0, cell=index, status="failed", error=message)
    return None


def write_result(cell: dict, config: RunConfig, records: list[dict], device: str, dtype_name: str,
                 wall: list[float] | None = None) -> None:
    records = sorted(records, key=lambda r: r["rank"])
    outputs = sorted((o for r in records for o in r.pop("outputs")), key=lambda o: o["prompt_index"])
    seconds = max(r["seconds"] for r in records)
    # a tensor group's ranks generate the same tokens together: count each group once, by its leader
    leaders = [r for r in records if r.get("tp_rank", 0) == 0]
    tokens = sum(r["tokens"] for r in leaders)
    environment = {"nodes": [r.pop("environment") for r in records if r.get("environment")]}
    result = {
        "status": "succeeded",
        "tokens": tokens,
        "raw_tokens": sum(r["raw_tokens"] for r in leaders),
        "seconds": seconds,
        "tokens_per_second": tokens / seconds if seconds > 0 else None,
        "world_size": len(records),
        "device": device,
        "dtype": dtype_name,
        "ranks": records,
        "outputs": outputs,
        "environment": environment,
        "latency": run_latency(outputs) if config.latency else None,
        "wall": wall,  # the run's start and end inside its launch (time.time)
    }
    write_json(Path(cell["result_path"]), result)


def write_json(path: Path, data: dict) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data))
    tmp.replace(path)

"""Moving runs between studios as JSON: `studio export` and `studio import`.

An export is one JSON object: {"format": "scaling-studio-runs", "version": 1,
"exported_at", "sweeps": [sweep rows], "runs": [run rows, each with "outputs" and
"ranks"]}, the rows as the database holds them. It is how a cluster job's result
(node 0's database on a compute node) reaches the studio's database.

`import_file` validates the whole file first and reports every problem with where
it is; only a clean file is written, in one transaction, under new ids, skipping
runs that are already there and never changing a stored row.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from db.store import Store
from studio.exchange.output_file import write_output

FORMAT = "scaling-studio-runs"
VERSION = 1
MAX_BYTES = 512 * 2**20  # a sane ceiling: 512 MiB of JSON is far past any real export
FINISHED = ("succeeded", "failed", "cancelled", "interrupted", "external")


class ExportFileError(ValueError):
    """The file cannot be imported; `problems` lists each reason with its place."""

    def __init__(self, path: str, problems: list[str]):
        shown = problems[:20] + ([f"... and {len(problems) - 20} more"] if len(problems) > 20 else [])
        super().__init__(f"{path}: nothing imported:\n  " + "\n  ".join(shown))
        self.problems = problems


def build_export(store: Store, *, run_ids: list[int] | None = None, sweep_id: int | None = None) -> dict:
    sweeps, runs = store.export_rows(run_ids=run_ids, sweep_id=sweep_id)
    return {
        "format": FORMAT,
        "version": VERSION,
        "exported_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "sweeps": sweeps,
        "runs": runs,
    }


def write_export(data: dict, path: str | Path, *, force: bool = False) -> None:
    """Written beside the target and renamed: a cluster job's result file is never seen
    half-written. Its folder is made (a job's result folder may not exist yet)."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    write_output(path, json.dumps(data, indent=1, default=str), force=force, option="--out")


# validation -----------------------------------------------------------------
def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


REQUIRED_RUN = {
    "id": _is_int,
    "created_at": lambda v: isinstance(v, str) and bool(v),
    "status": lambda v: v in FINISHED,
    "model": lambda v: isinstance(v, str) and bool(v),
    "mode": lambda v: isinstance(v, str) and bool(v),
    "batch_size": _is_int,
    "max_new_tokens": _is_int,
    "num_gpus": lambda v: _is_int(v) and v >= 1,
    "num_prompts": lambda v: _is_int(v) and v >= 0,
    "config": lambda v: isinstance(v, dict),
}
OPTIONAL_RUN = {
    "num_nodes": lambda v: _is_int(v) and v >= 1,
    "world_size": _is_int,
    "tokens": _is_int,
    "raw_tokens": _is_int,
    "padding_tokens": _is_int,
    "seconds": lambda v: _is_number(v) and v >= 0,
    "tokens_per_second": lambda v: _is_number(v) and v >= 0,
    "imbalance": _is_number,
    "sweep_id": _is_int,
    "repeat_index": lambda v: _is_int(v) and v >= 0,
}
REQUIRED_OUTPUT = {"prompt_index": _is_int, "rank": _is_int, "prompt": lambda v: isinstance(v, str),
                   "output": lambda v: isinstance(v, str), "tokens": _is_int}
REQUIRED_RANK = {"rank": _is_int, "num_prompts": _is_int, "tokens": _is_int, "seconds": _is_number}
REQUIRED_SWEEP = {"id": _is_int, "created_at": lambda v: isinstance(v, str) and bool(v),
                  "status": lambda v: isinstance(v, str) and bool(v)}


def _check_fields(where: str, row: Any, required: dict, optional: dict, problems: list[str]) -> bool:
    if not isinstance(row, dict):
        problems.append(f"{where}: must be an object")
        return False
    for name, ok in required.items():
        if name not in row or row[name] is None:
            problems.append(f"{where}.{name}: is missing")
        elif not ok(row[name]):
            problems.append(f"{where}.{name}: {row[name]!r} is not a valid value")
    for name, ok in optional.items():
        if row.get(name) is not None and not ok(row[name]):
            problems.append(f"{where}.{name}: {row[name]!r} is not a valid value")
    return True


def validate_export(data: Any) -> list[str]:
    """Every problem in an export, each with its place; [] when it can be imported."""
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        return [f"is not a Scaling Studio export (expected \"format\": \"{FORMAT}\"); make one with `studio export`"]
    if data.get("version") != VERSION:
        return [f"is export version {data.get('version')!r}; this studio reads version {VERSION}"]
    problems: list[str] = []
    sweeps, runs = data.get("sweeps"), data.get("runs")
    if not isinstance(sweeps, list) or not isinstance(runs, list):
        return ["\"sweeps\" and \"runs\" must both be lists"]
    sweep_ids = set()
    for i, sweep in enumerate(sweeps):
        if _check_fields(f"sweeps[{i}]", sweep, REQUIRED_SWEEP, {}, problems) and _is_int(sweep.get("id")):
            if sweep["id"] in sweep_ids:
                problems.append(f"sweeps[{i}].id: {sweep['id']} appears twice")
            sweep_ids.add(sweep["id"])
    run_ids = set()
    for i, run in enumerate(runs):
        where = f"runs[{i}]"
        if not _check_fields(where, run, REQUIRED_RUN, OPTIONAL_RUN, problems):
            continue
        if _is_int(run.get("id")):
            if run["id"] in run_ids:
                problems.append(f"{where}.id: {run['id']} appears twice")
            run_ids.add(run["id"])
        if run.get("sweep_id") is not None and run["sweep_id"] not in sweep_ids:
            problems.append(f"{where}.sweep_id: sweep {run['sweep_id']} is not in the file's sweeps")
        outputs, ranks = run.get("outputs", []), run.get("ranks", [])
        if not isinstance(outputs, list) or not isinstance(ranks, list):
            problems.append(f"{where}: \"outputs\" and \"ranks\" must be lists")
            continue
        for j, output in enumerate(outputs):
            _check_fields(f"{where}.outputs[{j}]", output, REQUIRED_OUTPUT, {}, problems)
        for j, rank in enumerate(ranks):
            _check_fields(f"{where}.ranks[{j}]", rank, REQUIRED_RANK, {}, problems)
        if run.get("status") == "succeeded":
            if not _is_number(run.get("tokens_per_second")) or not _is_int(run.get("tokens")):
                problems.append(f"{where}: a succeeded run needs tokens and tokens_per_second")
            elif ranks and all(isinstance(r, dict) and _is_int(r.get("tokens")) for r in ranks):
                total = sum(r["tokens"] for r in ranks)
                if total != run["tokens"]:
                    problems.append(f"{where}.tokens: {run['tokens']} is not the sum of its ranks' tokens ({total})")
        if _is_int(run.get("num_prompts")):
            bad = [o.get("prompt_index") for o in outputs if isinstance(o, dict) and _is_int(o.get("prompt_index"))
                   and not 0 <= o["prompt_index"] < run["num_prompts"]]
            if bad:
                problems.append(f"{where}.outputs: prompt_index {bad[0]} is outside 0..{run['num_prompts'] - 1}")
    return problems


def read_export(path: str | Path) -> dict:
    path = Path(path)
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise ExportFileError(str(path), [f"cannot read it: {exc.strerror or exc}"]) from None
    if size > MAX_BYTES:
        raise ExportFileError(str(path), [f"is {size / 2**20:.0f} MiB; the limit is {MAX_BYTES / 2**20:.0f} MiB"])
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise ExportFileError(str(path), ["is not UTF-8 text"]) from None
    except ValueError as exc:
        raise ExportFileError(str(path), [f"is not valid JSON: {exc}"]) from None
    problems = validate_export(data)
    if problems:
        raise ExportFileError(str(path), problems)
    return data


def import_file(path: str | Path, store: Store) -> dict:
    """Validate, then add the file's runs; returns what was added and skipped."""
    data = read_export(path)
    # only the sweeps the runs use, so an export of a few runs adds no empty sweeps
    used = {r.get("sweep_id") for r in data["runs"]}
    return store.import_rows([s for s in data["sweeps"] if s["id"] in used], data["runs"])

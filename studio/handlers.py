"""What the studio's page and API do, as plain functions.

Nothing here builds a component: form values come in, and out come a validated
sweep plan, tables (pandas DataFrames), HTML snippets and plain dicts. The page
(`studio.app`) and the API (`studio.api`) both call these, so a setting refused
in the browser is refused the same way for `gradio_client`. Torch-free.
"""

from __future__ import annotations

import csv
import html
import io
import json
import os
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

import pandas as pd

from db.store import Store
from runner import phases, roofline
from runner.config import ConfigError, RunConfig, for_users
from runner.hardware import detect
from runner.models import arch_names
from runner.prompts import MAX_FILE_BYTES, load_prompts, parse_prompts, preset
from runner.validate import remote_code_allowed
from studio.analysis import world_size
from studio.figures import overhead_seconds
from studio.sweep import SweepPlan, parse_gpu_counts, plan_sweep

# The page's settings, in the order the Run tab lays them out. A ConfigError's
# field is mapped onto one of these so its message appears next to that field.
FORM_FIELDS = ("prompts", "model", "mode", "batch_size", "max_new_tokens", "fixed_length", "dtype",
               "gpu_counts", "repeats", "name")
FIELD_OF_ERROR = {
    "prompts": "prompts", "preset": "prompts", "model": "model", "trust_remote_code": "model", "mode": "mode",
    "batch_size": "batch_size", "max_new_tokens": "max_new_tokens", "fixed_length": "fixed_length",
    "dtype": "dtype", "device": "dtype", "num_gpus": "gpu_counts", "gpus": "gpu_counts", "repeats": "repeats",
    "label": "name", "name": "name",
}
FINAL_STATES = ("succeeded", "failed", "cancelled", "interrupted")
PHASE_WORDS = {"launching": "starting accelerate", "load": "loading the model", "warmup": "warm-up",
               "generate": "generating"}
STATUS_COLORS = {"succeeded": "#16a34a", "failed": "#dc2626", "cancelled": "#d97706", "interrupted": "#d97706",
                 "running": "#2563eb", "queued": "#6b7280"}
LOG_TAIL = 40


# --- the sweep form -----------------------------------------------------------

@dataclass
class SweepRequest:
    """Everything the Run tab (or an API call) sends to start a sweep."""

    prompts_text: str = ""
    prompts_file: str | None = None
    preset: str = ""
    prompts_format: str = "txt"  # how prompts_text is written: txt (one a line), jsonl or csv
    model: str = "tiny"
    mode: str = "batched"
    batch_size: int | float | None = 16
    max_new_tokens: int | float | None = 100
    fixed_length: bool = False
    dtype: str = "auto"
    gpu_counts: str | list = "1"
    repeats: int | float | None = 1
    name: str = ""


def _whole(name: str, value, label: str) -> int:
    """A number field as an int; gradio gives floats, or None for an empty box."""
    if value is None or value == "":
        raise ConfigError(name, f"{label} is empty; write a whole number")
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            raise ConfigError(name, f"{label} must be a whole number, got {value!r}") from None
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value  # RunConfig refuses the rest with its own words


def collect_prompts(text: str | None, file_path: str | None = None, preset_name: str = "",
                    text_format: str = "txt") -> list[str]:
    """Prompts from, in this order of precedence, an uploaded file, a preset, the text box."""
    if file_path:
        return load_prompts(file_path)
    if preset_name:
        return preset(preset_name)
    text = text or ""
    if len(text.encode("utf-8")) > MAX_FILE_BYTES:
        raise ConfigError("prompts", f"the prompts are larger than {MAX_FILE_BYTES // 2**20} MiB; send fewer")
    if not text.strip():
        raise ConfigError("prompts", "no prompts: write one prompt a line, upload a file or load the preset")
    if text_format not in ("txt", "jsonl", "csv"):
        raise ConfigError("prompts", f"unknown prompts format {text_format!r}; use txt, jsonl or csv")
    return parse_prompts(text, text_format, source="the prompts")


def gpu_counts_of(value: str | list | tuple | None) -> list[int]:
    if value is None or (isinstance(value, (list, tuple)) and not value):
        raise ConfigError("gpus", "no GPU count chosen; tick at least one")
    if isinstance(value, (list, tuple)):
        value = [str(v) for v in value]
    return sorted(parse_gpu_counts(value))


def plan_request(request: SweepRequest) -> SweepPlan:
    """Validate the whole sweep; raises ConfigError before anything is stored or launched."""
    prompts = collect_prompts(request.prompts_text, request.prompts_file, request.preset, request.prompts_format)
    counts = gpu_counts_of(request.gpu_counts)
    repeats = _whole("repeats", request.repeats, "repeats")
    name = (request.name or "").strip()
    config = RunConfig(
        prompts=prompts, model=(request.model or "").strip(), mode=request.mode,
        batch_size=_whole("batch_size", request.batch_size, "batch size"),
        max_new_tokens=_whole("max_new_tokens", request.max_new_tokens, "max new tokens"),
        num_gpus=counts[0], dtype=request.dtype, fixed_length=bool(request.fixed_length), label=name,
        # on only when the server was started with --trust-remote-code
        trust_remote_code=remote_code_allowed(),
    )
    return plan_sweep(config, counts, repeats, name=name)


def form_field(error: ConfigError) -> str:
    """Which Run-tab field an error belongs next to."""
    return FIELD_OF_ERROR.get(error.field, "prompts")


def field_message(error: ConfigError) -> str:
    """The error with its field named as the API names it (max_new_tokens, gpus, ...)."""
    return f"{error.field}: {error.message}"


def check_request(request: SweepRequest) -> dict[str, str]:
    """{form field: message} for the page's per-field validation; empty when all is well."""
    try:
        plan_request(request)
    except ConfigError as exc:
        target = form_field(exc)
        # next to its own field the field's name is noise; next to another one it is needed
        return {target: exc.message if exc.field == target else field_message(exc)}
    return {}


def prompt_summary(text: str | None, file_path: str | None) -> str:
    """One line under the prompt inputs saying what a Run would use."""
    try:
        prompts = collect_prompts(text, file_path)
    except ConfigError as exc:
        if not file_path and not (text or "").strip():
            return "No prompts yet: write one a line, upload a file, or load the reference preset."
        return f"⚠ {exc.message}"
    source = f"the file {file_path.rsplit('/', 1)[-1]}" if file_path else "the text box"
    longest = max(len(p) for p in prompts)
    return f"{len(prompts)} prompt(s) from {source}; the longest has {longest} characters."


def preset_text(name: str = "seed") -> str:
    return "\n".join(preset(name))


def form_values(sweep_runs: list[dict]) -> dict | None:
    """The Run-tab form as it was for a stored sweep, so a reopened page shows the
    settings behind the sweep it displays. None when nothing is stored."""
    configs = [r["config"] for r in sweep_runs if isinstance(r.get("config"), dict)]
    if not configs:
        return None
    config = configs[0]
    prompts = config.get("prompts") or []
    return {
        "prompts": "\n".join(prompts) if not any("\n" in p for p in prompts) else "",
        "model": config.get("model", "tiny"), "mode": config.get("mode", "batched"),
        "batch_size": config.get("batch_size"), "max_new_tokens": config.get("max_new_tokens"),
        "fixed_length": bool(config.get("fixed_length")), "dtype": config.get("dtype", "auto"),
        "gpu_counts": sorted({c["num_gpus"] for c in configs}),
        "repeats": 1 + max((r.get("repeat_index") or 0) for r in sweep_runs), "name": config.get("label", ""),
    }


# --- machine-dependent choices ------------------------------------------------

def device_choices() -> dict:
    """What the GPU-count boxes offer: GPUs when there are any, else CPU processes."""
    inventory = detect()
    device = inventory.default_device
    limit = inventory.max_processes(device)
    what = "GPUs" if device == "cuda" else "CPU processes (no GPU found)"
    return {"device": device, "max": limit, "counts": list(range(1, limit + 1)), "what": what}


def model_choices() -> list[str]:
    """What the model box offers: tiny, the shipped architectures, model folders under
    STUDIO_MODEL_DIRS and hub ids already in the Hugging Face cache. Any other value
    may still be typed; it is checked like the rest."""
    choices = ["tiny"] + [f"arch:{name}" for name in arch_names()]
    for root in [p for p in os.environ.get("STUDIO_MODEL_DIRS", "").split(os.pathsep) if p.strip()]:
        try:
            choices += sorted(str(d) for d in Path(root).iterdir() if (d / "config.json").is_file())
        except OSError:
            continue
    try:  # a directory listing only: scanning the cache would read every file's metadata
        from huggingface_hub import constants

        cached = Path(constants.HF_HUB_CACHE)
        choices += sorted(d.name[len("models--"):].replace("--", "/", 1) for d in cached.iterdir()
                          if d.name.startswith("models--") and "--" in d.name[len("models--"):])
    except (ImportError, OSError):
        pass
    return choices


# --- a sweep's live view --------------------------------------------------------

def sweep_snapshot(status: dict | None, sweep: dict | None) -> dict | None:
    """One sweep as the page and the API see it: the supervisor's live status
    merged with the stored rows (which outlive the supervisor's memory)."""
    if status is None and sweep is None:
        return None
    rows = {r["id"]: r for r in (sweep or {}).get("runs", [])}
    live = {r["run_id"]: r for r in (status or {}).get("runs", [])}
    ids = [r["run_id"] for r in (status or {}).get("runs", [])] or sorted(rows)
    runs = []
    for run_id in ids:
        row, now = rows.get(run_id, {}), live.get(run_id, {})
        status_word = now.get("status") or row.get("status")
        if row.get("status") in FINAL_STATES:
            status_word = row["status"]  # the stored word is the final one
        runs.append({
            "run_id": run_id,
            "num_gpus": now.get("num_gpus", row.get("num_gpus")),
            "world_size": world_size(row) if row else now.get("num_gpus"),
            "repeat": now.get("repeat", row.get("repeat_index", 0)),
            "status": status_word,
            "phase": now.get("phase", ""),
            "done": now.get("done", row.get("num_prompts") if status_word == "succeeded" else 0),
            "total": now.get("total", row.get("num_prompts")),
            "tokens_per_second": row.get("tokens_per_second", now.get("tokens_per_second")),
            "seconds": row.get("seconds"),
            "tokens": row.get("tokens"),
            "error": for_users(row.get("error") or now.get("error")),
            "stderr_tail": for_users(row.get("stderr_tail")),
        })
    state = (status or {}).get("state") or (sweep or {}).get("status")
    return {
        "sweep_id": (status or {}).get("sweep_id") or (sweep or {}).get("id"),
        "state": state,
        "finished": state in FINAL_STATES,
        "queue_position": (status or {}).get("queue_position"),
        "current_run_id": (status or {}).get("current_run_id"),
        "gpu_counts": (status or {}).get("gpu_counts") or (sweep or {}).get("gpu_counts"),
        "repeats": (status or {}).get("repeats") or (sweep or {}).get("repeats"),
        "name": (sweep or {}).get("name") or "",
        "settings": (sweep or {}).get("settings") or {},
        "runs": runs,
        "log": list((status or {}).get("log") or [])[-LOG_TAIL:],
    }


def load_sweep(supervisor, store: Store, sweep_id: int | None) -> tuple[dict | None, list[dict]]:
    """(snapshot, stored run rows) of a sweep; the current or latest one when sweep_id is None."""
    status = supervisor.status(sweep_id)
    if status is None and sweep_id is None:
        return None, []
    sweep = store.get_sweep(sweep_id if sweep_id is not None else status["sweep_id"])
    snapshot = sweep_snapshot(status, sweep)
    return snapshot, (sweep or {}).get("runs", [])


def _bar(done: int, total: int, color: str) -> str:
    share = 0 if not total else max(0, min(100, round(100 * done / total)))
    return (f"<div class='studio-bar' role='progressbar' aria-valuenow='{done}' aria-valuemax='{total}'>"
            f"<div style='width:{share}%; background:{color}'></div></div>")


def progress_html(snapshot: dict | None) -> str:
    """A line for the sweep and a progress bar per run (prompts done / total)."""
    if snapshot is None:
        return ("<div class='studio-progress studio-empty'>No sweep yet. Choose prompts and settings, "
                "then press <b>Run sweep</b>.</div>")
    e = html.escape
    state = snapshot["state"] or "?"
    runs = snapshot["runs"]
    finished = sum(1 for r in runs if r["status"] in FINAL_STATES)
    head = f"<b>Sweep {snapshot['sweep_id']}</b>"
    if snapshot.get("name"):
        head += f" “{e(snapshot['name'])}”"
    head += (f" <span class='studio-state' style='color:{STATUS_COLORS.get(state, '#111')}'>{e(state)}</span>"
             f" · {finished} of {len(runs)} run(s) finished")
    if snapshot.get("queue_position"):
        head += f" · waiting: position {snapshot['queue_position']} in the queue, behind another sweep"
    lines = [f"<div class='studio-head'>{head}</div>"]
    for run in runs:
        status_word = run["status"] or "?"
        color = STATUS_COLORS.get(status_word, "#6b7280")
        what = f"{run['world_size']} process{'es' if (run['world_size'] or 1) > 1 else ''}"
        detail = e(status_word)
        if status_word == "running":
            detail = e(PHASE_WORDS.get(run["phase"], run["phase"] or "running"))
        if run.get("tokens_per_second"):
            detail += f" · <b>{run['tokens_per_second']:.1f} tokens/s</b>"
        lines.append(
            f"<div class='studio-run' data-status='{e(status_word)}'>"
            f"<span class='studio-run-name'>run {run['run_id']} · {what} · repeat {run['repeat'] + 1}</span>"
            f"{_bar(run['done'] or 0, run['total'] or 0, color)}"
            f"<span class='studio-count'>{run['done'] or 0} / {run['total'] or 0} prompts</span>"
            f"<span class='studio-detail' style='color:{color}'>{detail}</span></div>"
        )
        if run.get("error") and status_word != "succeeded":
            tail = run.get("stderr_tail") or ""
            lines.append(
                f"<div class='studio-error'><b>Run {run['run_id']} {e(status_word)}:</b> {e(run['error'])}"
                + (f"<details><summary>stderr tail</summary><pre>{e(tail)}</pre></details>" if tail else "")
                + "</div>"
            )
    return "<div class='studio-progress'>" + "".join(lines) + "</div>"


def _speedups(rows: list[dict]) -> dict[int, float]:
    """Each run's throughput over the median throughput of its sweep's smallest count."""
    from studio.figures import build_series

    out: dict[int, float] = {}
    for series in build_series(rows):
        base = series.baseline()
        if not base:
            continue
        for point in series.points:
            for run in point.runs:
                out[run["id"]] = run["tokens_per_second"] / base[1]
    return out


RESULT_COLUMNS = ["run", "GPUs", "repeat", "status", "tokens/s", "speedup", "gen. s", "imbalance"]


def results_table(rows: list[dict], finished_only: bool = True) -> pd.DataFrame:
    """The sweep's runs as a table; speedup is over the sweep's smallest count."""
    speedups = _speedups(rows)
    data = []
    for r in sorted(rows, key=lambda r: (world_size(r), r.get("repeat_index") or 0, r["id"])):
        if finished_only and r["status"] not in FINAL_STATES:
            continue
        data.append([
            r["id"], world_size(r), (r.get("repeat_index") or 0) + 1, r["status"],
            _round(r.get("tokens_per_second"), 1), _round(speedups.get(r["id"]), 2), _round(r.get("seconds"), 3),
            _round(r.get("imbalance"), 2),
        ])
    return pd.DataFrame(data, columns=RESULT_COLUMNS)


def _round(value, digits: int):
    return None if value is None else round(float(value), digits)


def log_text(snapshot: dict | None) -> str:
    if not snapshot:
        return ""
    return for_users("\n".join(snapshot["log"][-LOG_TAIL:]))


def log_html(snapshot: dict | None) -> str:
    """The log tail as a scroll box that stays at its newest line."""
    body = html.escape(log_text(snapshot)) or "The sweep's log, the workers' stderr included, shows here."
    return (f"<div class='studio-log-title'>Log (last {LOG_TAIL} lines, the workers' stderr included)</div>"
            f"<div class='studio-log'><pre>{body}</pre></div>")


def finished_signature(rows: list[dict]) -> str:
    """Changes exactly when a run finishes: the chart and table redraw only then."""
    return json.dumps([(r["id"], r["status"], r.get("tokens_per_second")) for r in rows
                       if r["status"] in FINAL_STATES])


# --- history ------------------------------------------------------------------

HISTORY_COLUMNS = ["run", "sweep", "created (UTC)", "status", "model", "mode", "batch", "new tokens", "prompts",
                   "GPUs", "repeat", "tokens/s", "gen. seconds", "error"]
ANY = "any"


def parse_day(text: str | None, name: str) -> date | None:
    text = (text or "").strip()
    if not text:
        return None
    try:
        return date.fromisoformat(text[:10])
    except ValueError:
        raise ConfigError(name, f"{text!r} is not a date; write it as YYYY-MM-DD, e.g. 2025-01-31") from None


def history_filters(model=None, mode=None, batch_size=None, status=None, since=None, until=None) -> dict:
    """Filter values from the page or API as Store.list_runs arguments; 'any' and blanks mean no filter."""
    def clean(value):
        return None if value in (None, "", ANY) else value

    filters = {"model": clean(model), "mode": clean(mode), "status": clean(status)}
    batch = clean(batch_size)
    if batch is not None:
        try:
            filters["batch_size"] = int(float(batch))
        except (TypeError, ValueError):
            raise ConfigError("batch_size", f"filter {batch!r} is not a whole number") from None
    first, last = parse_day(since, "since"), parse_day(until, "until")
    if first and last and last < first:
        raise ConfigError("until", f"{last} is before {first}; swap the dates")
    # created_at is ISO text in UTC, so dates compare as strings; `until` includes its day
    filters["since"] = first.isoformat() if first else None
    filters["until"] = (last + timedelta(days=1)).isoformat() if last else None
    return filters


def for_display(run: dict) -> dict:
    """A stored run as remote users see it: error text and stderr without server paths."""
    for key in ("error", "stderr_tail"):
        run[key] = for_users(run.get(key))
    return run


def list_history(store: Store, limit: int = 1000, **filters) -> list[dict]:
    return [for_display(r) for r in store.list_runs(limit=limit, **history_filters(**filters))]


def history_table(runs: list[dict]) -> pd.DataFrame:
    data = [[
        r["id"], r.get("sweep_id"), (r.get("created_at") or "")[:19].replace("T", " "), r["status"], r["model"],
        r["mode"], r["batch_size"], r["max_new_tokens"], r["num_prompts"], world_size(r),
        (r.get("repeat_index") or 0) + 1, _round(r.get("tokens_per_second"), 1), _round(r.get("seconds"), 3),
        (r.get("error") or "")[:120],
    ] for r in runs]
    return pd.DataFrame(data, columns=HISTORY_COLUMNS)


def filter_choices(store: Store) -> dict[str, list]:
    """The values the History filters offer, from what is stored."""
    return {
        "model": [ANY] + [v for v in store.distinct("model") if v],
        "mode": [ANY] + [v for v in store.distinct("mode") if v],
        "batch_size": [ANY] + [str(v) for v in store.distinct("batch_size") if v is not None],
        "status": [ANY] + [v for v in store.distinct("status") if v],
    }


def run_label(r: dict) -> str:
    return (f"run {r['id']} · {r['model']} · {r['mode']} · {world_size(r)} GPU(s) · {r['status']}"
            + (f" · {r['tokens_per_second']:.1f} tok/s" if r.get("tokens_per_second") else ""))


def sweep_label(s: dict) -> str:
    counts = ",".join(str(c) for c in (s.get("gpu_counts") or []))
    name = f" “{s['name']}”" if s.get("name") else ""
    return (f"sweep {s['id']}{name} · {s.get('model')} · {s.get('mode')} · batch {s.get('batch_size')} · "
            f"GPUs {counts} · {s.get('status')} · {(s.get('created_at') or '')[:16].replace('T', ' ')}")


def run_choices(runs: list[dict]) -> list[tuple[str, int]]:
    return [(run_label(r), r["id"]) for r in runs]


def sweep_choices(store: Store) -> list[tuple[str, int]]:
    return [(sweep_label(s), s["id"]) for s in store.list_sweeps()]


def _ids(values) -> list[int]:
    if values is None:
        return []
    if isinstance(values, (int, float, str)):
        values = [values]
    out = []
    for v in values:
        try:
            out.append(int(v))
        except (TypeError, ValueError):
            raise ConfigError("ids", f"{v!r} is not a run or sweep id") from None
    return out


def selected_runs(store: Store, sweep_ids=None, run_ids=None) -> list[dict]:
    """Runs of the chosen sweeps plus the chosen runs, each once, oldest first."""
    ids = set(_ids(run_ids))
    for sweep_id in _ids(sweep_ids):
        sweep = store.get_sweep(sweep_id)
        if sweep is None:
            raise ConfigError("sweep_ids", f"there is no sweep {sweep_id}; refresh the History tab")
        ids.update(r["id"] for r in sweep["runs"])
    if not ids:
        return []
    return sorted(store.list_runs(ids=ids, limit=len(ids)), key=lambda r: r["id"])


# --- one run in detail ------------------------------------------------------------

def _fmt(value, digits: int = 3) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return html.escape(str(value))


def _when(stamp: str | None) -> str | None:
    return f"{stamp[:19].replace('T', ' ')} UTC" if stamp else None


def run_summary_parts(run: dict) -> list[str]:
    """[title, settings table, results table, times table] in Markdown."""
    config = run.get("config") or {}
    title = f"### Run {run['id']}" + (f" of sweep {run['sweep_id']}" if run.get("sweep_id") is not None else "")
    title += f" — {run['status']}"
    settings = [
        ("model", run["model"]), ("mode", run["mode"]), ("batch size", run["batch_size"]),
        ("max new tokens", run["max_new_tokens"]), ("fixed length", config.get("fixed_length")),
        ("prompts", run["num_prompts"]), ("GPUs / processes", world_size(run)),
        ("nodes", run.get("num_nodes")), ("repeat", (run.get("repeat_index") or 0) + 1),
        ("device", run.get("device") or config.get("device")), ("dtype", run.get("dtype") or config.get("dtype")),
        ("sampling", "sample" if config.get("do_sample") else "greedy"), ("seed", config.get("seed")),
        ("warm-up", config.get("warmup")), ("label", run.get("label") or "–"),
    ]
    generate, overhead = overhead_seconds(run.get("phases") or {})
    results = [
        ("tokens (real, padding excluded)", run.get("tokens")), ("raw tokens (with padding)", run.get("raw_tokens")),
        ("padding tokens", run.get("padding_tokens")), ("generation seconds (slowest rank)", run.get("seconds")),
        ("tokens / second", run.get("tokens_per_second")), ("rank imbalance (slowest / mean)", run.get("imbalance")),
        ("overhead seconds (all but generate)", overhead if run.get("phases") else None),
    ]
    for key, label in (("bandwidth_gbps", "memory bandwidth (GB/s)"),
                       ("bandwidth_utilisation", "bandwidth utilisation")):
        if run.get(key) is not None:
            results.append((label, run[key]))
    if run.get("roofline"):
        results.append(("bandwidth", roofline.describe(run["roofline"])))
    if run.get("phases"):
        results.append(("where the time went", phases.describe(run["phases"])))
    times = [("created", _when(run.get("created_at"))), ("started", _when(run.get("started_at"))),
             ("finished", _when(run.get("finished_at"))), ("exit code", run.get("exit_code"))]

    def table(rows, head):
        return f"| {head} | |\n|---|---|\n" + "\n".join(f"| {k} | {_fmt(v)} |" for k, v in rows)

    return [title, table(settings, "setting"), table(results, "result"), table(times, "when")]


def error_markdown(run: dict) -> str:
    if not run.get("error") and not run.get("stderr_tail"):
        return ""
    text = f"**This run {run['status']}:** {html.escape(run.get('error') or 'no message')}"
    if run.get("partial"):
        text += "\n\nOnly part of the outputs were stored (the ones finished before it stopped)."
    return text


def outputs_table(run: dict) -> pd.DataFrame:
    rows = [[o["prompt_index"], o["rank"], o["tokens"], o["prompt"], o["output"]] for o in run.get("outputs") or []]
    return pd.DataFrame(rows, columns=["prompt #", "rank", "tokens", "prompt", "output"])


def get_run(store: Store, run_id) -> dict:
    try:
        run_id = int(run_id)
    except (TypeError, ValueError):
        raise ConfigError("run_id", f"{run_id!r} is not a run id; pick a run in the table") from None
    run = store.get_run(run_id)
    if run is None:
        raise ConfigError("run_id", f"there is no run {run_id}; it may have been deleted. Refresh the table")
    return for_display(run)


# --- export and delete ---------------------------------------------------------------

EXPORT_COLUMNS = ("id", "sweep_id", "repeat_index", "status", "created_at", "started_at", "finished_at", "model",
                  "mode", "batch_size", "max_new_tokens", "num_prompts", "num_gpus", "num_nodes", "world_size",
                  "device", "dtype", "tokens", "raw_tokens", "padding_tokens", "seconds", "tokens_per_second",
                  "imbalance", "label", "error")


def export_text(store: Store, runs: list[dict], fmt: str) -> str:
    """The runs as CSV (one row each, summary columns) or JSON (everything, outputs included)."""
    if fmt == "csv":
        out = io.StringIO()
        extra = [k for k in ("bandwidth_gbps", "bandwidth_utilisation") if any(k in r for r in runs)]
        writer = csv.writer(out)
        writer.writerow([*EXPORT_COLUMNS, *extra, "phases"])
        for r in runs:
            writer.writerow([r.get(k) for k in (*EXPORT_COLUMNS, *extra)] + [json.dumps(r.get("phases"))])
        return out.getvalue()
    if fmt == "json":
        full = [store.get_run(r["id"]) for r in runs]
        return json.dumps([r for r in full if r is not None], indent=2, default=str)
    raise ConfigError("format", f"unknown export format {fmt!r}; use csv or json")


def delete_selected(store: Store, sweep_ids=None, run_ids=None) -> str:
    """Delete the chosen runs (whole sweeps when sweeps are chosen); running ones are refused."""
    sweeps, runs = _ids(sweep_ids), _ids(run_ids)
    if not sweeps and not runs:
        raise ConfigError("selection", "nothing selected; choose runs or sweeps first")
    chosen = selected_runs(store, sweeps, runs)
    busy = [r["id"] for r in chosen if r["status"] in ("queued", "running")]
    if busy:
        raise ConfigError("selection", f"run {busy[0]} is still {'queued or running'}; stop its sweep first")
    try:
        count = store.delete_runs([r["id"] for r in chosen])
        for sweep_id in sweeps:
            store.delete_sweep(sweep_id)
    except ValueError as exc:  # the store refuses active runs and read-only reference sweeps
        raise ConfigError("selection", str(exc)) from None
    return f"Deleted {count} run(s)" + (f" and {len(sweeps)} sweep(s)" if sweeps else "") + "."


# --- compare -------------------------------------------------------------------------

COMPARE_COLUMNS = ["series", "GPUs", "runs", "median tokens/s", "min tokens/s", "max tokens/s", "speedup",
                   "ideal speedup", "efficiency", "median gen. seconds"]


def compare_table(runs: list[dict]) -> pd.DataFrame:
    """Per sweep and GPU count: the numbers behind the Compare charts."""
    from studio.figures import build_series

    data = []
    for series in build_series(runs):
        base = series.baseline()
        for p in series.points:
            tps = p.median("tokens_per_second")
            speedup = tps / base[1] if base else None
            ideal = p.x / base[0] if base else None
            data.append([
                series.label, p.x, len(p.runs), _round(tps, 1), _round(min(p.values("tokens_per_second")), 1),
                _round(max(p.values("tokens_per_second")), 1), _round(speedup, 2), _round(ideal, 2),
                _round(speedup / ideal if speedup and ideal else None, 2), _round(p.median("seconds"), 3),
            ])
    return pd.DataFrame(data, columns=COMPARE_COLUMNS)


def compare_points(runs: list[dict]) -> list[dict]:
    """compare_table as plain dicts, for the API."""
    table = compare_table(runs)
    return [dict(zip(COMPARE_COLUMNS, row)) for row in table.itertuples(index=False, name=None)]


def run_public(run: dict) -> dict:
    """A run row for the API: the stored columns with the prompts cut out of the config."""
    out = {k: v for k, v in run.items() if k not in ("outputs", "ranks", "pids")}
    config = dict(out.get("config") or {})
    config.pop("prompts", None)
    out["config"] = config
    return out




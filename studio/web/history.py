"""The History tab and its API: filtering stored runs, choosing, exporting and
deleting them. Every way out to a remote user goes through `for_display`, which
takes server paths out of error text. Torch-free."""

from __future__ import annotations

import csv
import io
import json
from datetime import date, timedelta

import pandas as pd

from db.store import Store
from runner.config import ConfigError, whole
from runner.metrics import RUN_FIELDS
from studio.analysis.cost import stored_costs
from studio.analysis.layouts import agreement_cells
from studio.exchange.peers.detail import history_status
from studio.sweeps.grid import sweep_layouts, sweep_value
from studio.sweeps.reference import published_date
from studio.web.params import id_list, record_id
from studio.web.views import for_display, rounded

# What fits 1440 px without scrolling sideways (issue 24 item 8); mode, new tokens, prompts,
# repeat, generation seconds and the whole error are in the run's view, a click away.
HISTORY_COLUMNS = ["run", "sweep", "created (UTC)", "status", "model", "batch", "GPUs", "layout", "tokens/s",
                   "$ per M tokens", "agreement", "error"]
ERROR_CHARS = 48
# shares of the table's width, so a long model name or error wraps instead of widening the table
COLUMN_WIDTHS = ["4%", "5%", "13%", "9%", "13%", "5%", "5%", "9%", "7%", "7%", "8%", "15%"]
ANY = "any"
# The History tab's labels, which its refusals name (the API's since/until stay in its own messages)
LABELS = {"model": "Model", "mode": "Mode", "batch_size": "Batch size", "status": "Status",
          "since": "From date (UTC)", "until": "To date (inclusive)", "sweep_ids": "Selected sweeps",
          "run_ids": "Selected runs", "run_id": "Run id", "selection": "Selection"}


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
        # 1.5 matched no run and Infinity ended in an OverflowError; both are refused
        filters["batch_size"] = whole("batch_size", batch, 1, example="16")
    first, last = parse_day(since, "since"), parse_day(until, "until")
    if first and last and last < first:
        raise ConfigError("until", f"{last} is before {first}; swap the dates")
    # created_at is ISO text in UTC, so dates compare as strings; `until` includes its day
    filters["since"] = first.isoformat() if first else None
    filters["until"] = (last + timedelta(days=1)).isoformat() if last else None
    return filters


def list_history(store: Store, limit: int = 1000, **filters) -> list[dict]:
    return [for_display(r) for r in store.list_runs(limit=limit, **history_filters(**filters))]


def shortened(text: str, most: int) -> str:
    return text if len(text) <= most else text[:most - 1].rstrip() + "…"


def _when_and_status(r: dict) -> tuple[str, str]:
    """A published figure shows its publication date and says it was not run here."""
    published = published_date(r)
    if published:
        return f"published {published}", "published figure"
    if r.get("tool"):  # measured by another tool, imported (studio.exchange.peers)
        return (r.get("created_at") or "")[:16].replace("T", " "), history_status(r) or r["status"]
    return (r.get("created_at") or "")[:16].replace("T", " "), r["status"]


def history_table(runs: list[dict], store: Store | None = None) -> pd.DataFrame:
    agreement = agreement_cells(runs)
    cost = stored_costs(runs, store.sweep_prices if store is not None else None)
    data = [[
        r["id"], r.get("sweep_id"), *_when_and_status(r), r["model"], r["batch_size"], r["world_size"],
        r["layout"], rounded(r.get("tokens_per_second"), 1), rounded(cost[r["id"]]["usd_per_million_tokens"], 3),
        agreement[r["id"]], shortened(r.get("error") or "", ERROR_CHARS),
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
    return (f"run {r['id']} · {r['model']} · {r['mode']} · {r['world_size']} GPU(s)"
            + (f" as {r['layout']}" if r["tp_size"] > 1 else "") + f" · {r['status']}"
            + (f" · {r['tokens_per_second']:.1f} tok/s" if r.get("tokens_per_second") else ""))


def sweep_label(s: dict) -> str:
    counts = ",".join(str(c) for c in (s.get("gpu_counts") or []))
    name = f" “{s['name']}”" if s.get("name") else ""
    published = published_date(s)
    when = (f"published figures of {published}, not run here" if published
            else f"{s.get('status')} · {(s.get('created_at') or '')[:16].replace('T', ' ')}")
    return (f"sweep {s['id']}{name} · {s.get('model')} · {sweep_value(s, 'mode')} · batch {sweep_value(s, 'batch_size')} · "
            f"GPUs {counts}{sweep_layouts(s)} · {when}")


def run_choices(runs: list[dict]) -> list[tuple[str, int]]:
    return [(run_label(r), r["id"]) for r in runs]


def sweep_choices(store: Store) -> list[tuple[str, int]]:
    return [(sweep_label(s), s["id"]) for s in store.list_sweeps()]


def opening_sweep(sweeps: list[dict]) -> int | None:
    """The sweep a tab opens on, from a newest-first list: the newest one measured
    here. Published sweeps are added on demand and so take the highest ids; opening
    on them would hide the user's own newest sweep."""
    measured = next((s for s in sweeps if not s.get("external") and s.get("origin") != "import"), None)
    chosen = measured or (sweeps[0] if sweeps else None)
    return chosen["id"] if chosen else None


def selected_runs(store: Store, sweep_ids=None, run_ids=None) -> list[dict]:
    """Runs of the chosen sweeps plus the chosen runs, each once, oldest first."""
    ids = set(id_list("run_ids", run_ids))
    for sweep_id in id_list("sweep_ids", sweep_ids):
        sweep = store.get_sweep(sweep_id)
        if sweep is None:
            raise ConfigError("sweep_ids", f"there is no sweep {sweep_id}; refresh the History tab")
        ids.update(r["id"] for r in sweep["runs"])
    if not ids:
        return []
    return sorted((for_display(r) for r in store.list_runs(ids=ids, limit=len(ids))), key=lambda r: r["id"])


def get_run(store: Store, run_id) -> dict:
    run_id = record_id("run_id", run_id)
    run = store.get_run(run_id)
    if run is None:
        raise ConfigError("run_id", f"there is no run {run_id}; it may have been deleted. Refresh the table")
    return for_display(run)


# --- export and delete ---------------------------------------------------------------

EXPORT_COLUMNS = ("id", "sweep_id", "repeat_index", "status", "created_at", "started_at", "finished_at", "model",
                  "mode", "batch_size", "max_new_tokens", "num_prompts", "num_gpus", "num_nodes", "world_size",
                  "tp_size", "dp_size", "device", "dtype", "tokens", "raw_tokens", "padding_tokens", "seconds",
                  "tokens_per_second", *RUN_FIELDS, "imbalance", "comm_fraction", "agreement", "agreement_reference",
                  "label", "error")


def export_text(store: Store, runs: list[dict], fmt: str) -> str:
    """The runs as CSV (one row each, summary columns) or JSON (everything, outputs included)."""
    if fmt == "csv":
        out = io.StringIO()
        extra = [k for k in ("bandwidth_gbps", "bandwidth_utilisation") if any(k in r for r in runs)]
        writer = csv.writer(out)
        writer.writerow([*EXPORT_COLUMNS, *extra, "phases"])
        for r in map(for_display, runs):
            writer.writerow([r.get(k) for k in (*EXPORT_COLUMNS, *extra)] + [json.dumps(r.get("phases"))])
        return out.getvalue()
    if fmt == "json":
        full = [store.get_run(r["id"]) for r in runs]
        return json.dumps([for_display(r) for r in full if r is not None], indent=2, default=str)
    raise ConfigError("format", f"unknown export format {fmt!r}; use csv or json")


def delete_selected(store: Store, sweep_ids=None, run_ids=None) -> str:
    """Delete the chosen runs (whole sweeps when sweeps are chosen); running ones are refused."""
    sweeps, runs = id_list("sweep_ids", sweep_ids), id_list("run_ids", run_ids)
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


def run_public(run: dict) -> dict:
    """A run row for the API: the stored columns with the prompts cut out of the config."""
    out = {k: v for k, v in for_display(run).items() if k not in ("outputs", "ranks", "pids")}
    config = dict(out.get("config") or {})
    config.pop("prompts", None)
    out["config"] = config
    return out

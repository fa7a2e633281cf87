"""What the page shows of sweeps and runs: progress, log, results and compare
tables, one run in detail. Pure functions of stored rows and the supervisor's
status; every figure comes from `studio.analysis.stats`. Torch-free."""

from __future__ import annotations

import html
import json

import pandas as pd

from db.store import Store
from runner import phases, roofline
from runner.config import for_users
from studio.analysis.cost import stored_costs
from studio.analysis.layouts import agreement_cells, agreement_detail, agreement_text, first_differences
from studio.analysis.stats import SETTING_AXES, run_speedups, scaling_series, varied_settings
from studio.charts.figures import overhead_seconds, series_labels
from studio.exchange.peers.detail import imported_parts
from studio.sweeps.grid import describe_cell
from studio.sweeps.supervisor import server_line

FINAL_STATES = ("succeeded", "failed", "cancelled", "interrupted")
PHASE_WORDS = {"waiting": "waiting for the hardware (another studio's job)",
               "launching": "starting accelerate", "load": "loading the model", "warmup": "warm-up",
               "generate": "generating"}
STATUS_COLORS = {"succeeded": "#16a34a", "failed": "#dc2626", "cancelled": "#d97706", "interrupted": "#d97706",
                 "running": "#2563eb", "queued": "#6b7280"}
LOG_TAIL = 40



def for_display(run: dict) -> dict:
    """A stored run as remote users see it: error text and stderr tail without
    server paths. Every way a run leaves the server (page, API, export) passes here."""
    out = {**run, "error": for_users(run.get("error")), "stderr_tail": for_users(run.get("stderr_tail"))}
    if "agreement_detail" in run:  # stored as JSON text
        out["agreement_detail"] = agreement_detail(run) or None
    return out


# --- a sweep's live view --------------------------------------------------------

def sweep_snapshot(status: dict | None, sweep: dict | None) -> dict | None:
    """One sweep as the page and the API see it: the supervisor's live status
    merged with the stored rows (which outlive the supervisor's memory)."""
    if status is None and sweep is None:
        return None
    rows = {r["id"]: for_display(r) for r in (sweep or {}).get("runs", [])}
    live = {r["run_id"]: r for r in (status or {}).get("runs", [])}
    # The stored rows say which runs the sweep has: a resumed sweep's earlier runs
    # are there, a deleted run is not. Ids follow the plan's order (created in it).
    ids = sorted(rows) if sweep is not None else list(live)
    runs = []
    for run_id in ids:
        row, now = rows.get(run_id, {}), live.get(run_id, {})
        status_word = now.get("status") or row.get("status")
        if row.get("status") in FINAL_STATES:
            status_word = row["status"]  # the stored word is the final one
        runs.append({
            "run_id": run_id,
            "num_gpus": now.get("num_gpus", row.get("num_gpus")),
            "world_size": row["world_size"] if row else now.get("num_gpus"),
            "tp_size": row["tp_size"] if row else 1, "dp_size": row["dp_size"] if row else None,
            "layout": row["layout"] if row else None,
            "agreement": row.get("agreement"),
            "repeat": now.get("repeat", row.get("repeat_index", 0)),
            "status": status_word,
            "phase": now.get("phase", ""),
            "done": now.get("done", row.get("num_prompts") if status_word == "succeeded" else 0),
            "total": now.get("total", row.get("num_prompts")),
            "tokens_per_second": row.get("tokens_per_second", now.get("tokens_per_second")),
            "load": row.get("scenario") if row.get("mode") == "server" else None,  # the server scenario's load
            "seconds": row.get("seconds"),
            "tokens": row.get("tokens"),
            "setting": {axis: row.get(axis) for axis in SETTING_AXES},
            "error": row.get("error") or for_users(now.get("error")),
            "stderr_tail": row.get("stderr_tail"),
        })
    state = (status or {}).get("state") or (sweep or {}).get("status")
    return {
        "sweep_id": (status or {}).get("sweep_id") or (sweep or {}).get("id"),
        "state": state,
        # published figures (state "external") were finished before they were stored
        "finished": state in FINAL_STATES or bool((sweep or {}).get("external")),
        "queue_position": (status or {}).get("queue_position"),
        "current_run_id": (status or {}).get("current_run_id"),
        "gpu_counts": (status or {}).get("gpu_counts") or (sweep or {}).get("gpu_counts"),
        "repeats": (status or {}).get("repeats") or (sweep or {}).get("repeats"),
        "name": (sweep or {}).get("name") or "",
        "settings": (sweep or {}).get("settings") or {},
        "runs": runs,
        "server": (status or {}).get("server") if state not in FINAL_STATES else None,
        "log": [for_users(line) for line in list((status or {}).get("log") or [])[-LOG_TAIL:]],
    }


def load_sweep(supervisor, store: Store, sweep_id: int | None) -> tuple[dict | None, list[dict]]:
    """(snapshot, stored run rows) of a sweep; the current or latest one when sweep_id is None."""
    status = supervisor.status(sweep_id)
    if status is None and sweep_id is None:
        return None, []
    sweep = store.get_sweep(sweep_id if sweep_id is not None else status["sweep_id"])
    if sweep is None:  # deleted (by this server or another program): the memory of it is stale
        return None, []
    snapshot = sweep_snapshot(status, sweep)
    return snapshot, (sweep or {}).get("runs", [])


def _bar(done: int, total: int, color: str) -> str:
    share = 0 if not total else max(0, min(100, round(100 * done / total)))
    return (f"<div class='studio-bar' role='progressbar' aria-valuenow='{done}' aria-valuemax='{total}'>"
            f"<div style='width:{share}%; background:{color}'></div></div>")


def setting_text(settings: dict, key: str) -> str:
    """A sweep's setting as its header shows it: a grid stores a varied setting as
    None at the top level and its values under `axes`."""
    value = settings.get(key)
    if value is None and (settings.get("axes") or {}).get(key):
        return ", ".join(str(v) for v in settings["axes"][key])
    return "–" if value is None else str(value)


def queue_line(queue: list[dict], shown: int | None) -> str:
    """The sweeps waiting behind the running one, so a submit never hides what runs."""
    waiting = [q for q in queue if q["state"] == "queued" and q["sweep_id"] != shown]
    if not waiting:
        return ""
    names = ", ".join(f"sweep {q['sweep_id']} (position {q['position']})" for q in waiting)
    return f"<div class='studio-queue'>Waiting in the queue: {names}. Each starts when the one before it ends.</div>"


def ended_text(ended: list[str], total: int) -> str:
    """"3 of 4 run(s) finished", or, when some did not succeed, how each ended: a
    cancelled sweep's runs did not finish."""
    if all(status == "succeeded" for status in ended):
        return f"{len(ended)} of {total} run(s) finished"
    words = ", ".join(f"{ended.count(s)} {s}" for s in FINAL_STATES if ended.count(s))
    return f"{len(ended)} of {total} run(s) ended: {words}"


def progress_html(snapshot: dict | None, queue: list[dict] | None = None) -> str:
    """A line for the sweep, a progress bar per run (prompts done / total), and the
    sweeps queued behind it."""
    waiting = queue_line(queue or [], snapshot["sweep_id"] if snapshot else None)
    if snapshot is None:
        return ("<div class='studio-progress studio-empty'>No sweep yet. Choose prompts and settings, "
                "then press <b>Run sweep</b>." + waiting + "</div>")
    e = html.escape
    state = snapshot["state"] or "?"
    runs = snapshot["runs"]
    ended = [r["status"] for r in runs if r["status"] in FINAL_STATES]
    head = f"<b>Sweep {snapshot['sweep_id']}</b>"
    if snapshot.get("name"):
        head += f" “{e(snapshot['name'])}”"
    server = (snapshot.get("settings") or {}).get("scenario") == "server"  # its runs are its loads, stored as they end
    head += (f" <span class='studio-state' style='color:{STATUS_COLORS.get(state, '#111')}'>{e(state)}</span>"
             f" · {f'{len(runs)} load(s) stored' if server else ended_text(ended, len(runs))}")
    if snapshot.get("queue_position"):
        head += f" · waiting: position {snapshot['queue_position']} in the queue, behind another sweep"
    lines = [f"<div class='studio-head'>{head}</div>"]
    # the layout is named beside the process count, not again among the settings
    cells = grid_cells_of({r["run_id"]: {k: v for k, v in (r.get("setting") or {}).items() if k != "tp_size"}
                           for r in runs})
    layouts_vary = len({r["tp_size"] for r in runs}) > 1
    settings = snapshot.get("settings") or {}
    if settings.get("scenario") == "server":
        lines.append(f"<div class='studio-settings'>{e(str(settings.get('model')))} · server scenario · "
                     f"{e(str(settings.get('profile')))} profile · {e(setting_text(settings, 'max_new_tokens'))} new "
                     f"tokens · {e(setting_text(settings, 'num_prompts'))} prompts</div>")
    elif settings.get("model"):  # what the shown sweep ran; the form above may hold other settings now
        lines.append(f"<div class='studio-settings'>{e(str(settings['model']))} · {e(str(settings.get('mode')))}"
                     f" · batch {e(setting_text(settings, 'batch_size'))}"
                     f" · {e(setting_text(settings, 'max_new_tokens'))} new tokens"
                     f" · {e(setting_text(settings, 'num_prompts'))} prompts</div>")
    if waiting:
        lines.append(waiting)
    if snapshot.get("server"):  # the cell and load under way: its runs are stored as each cell ends
        now = snapshot["server"]
        lines.append(f"<div class='studio-run studio-server' data-status='running'><span class='studio-run-name'>"
                     f"{e(server_line(now))}</span>{_bar(now.get('done') or 0, now.get('total') or 0, '#2563eb')}</div>")
    for run in runs:
        status_word = run["status"] or "?"
        color = STATUS_COLORS.get(status_word, "#6b7280")
        what = f"{run['world_size']} process{'es' if run['world_size'] > 1 else ''}"
        if run.get("layout") and (layouts_vary or run["tp_size"] > 1):
            what += f" as {e(run['layout'])}"
        if cells.get(run["run_id"]):
            what += f" · {e(cells[run['run_id']])}"
        detail = e(status_word)
        if status_word == "running":
            detail = e(PHASE_WORDS.get(run["phase"], run["phase"] or "running"))
        if run.get("tokens_per_second"):
            detail += f" · <b>{run['tokens_per_second']:.1f} tokens/s</b>"
        lines.append(
            f"<div class='studio-run' data-status='{e(status_word)}'>"
            f"<span class='studio-run-name'>run {run['run_id']} · {what} · "
            f"{e(run['load']) if run.get('load') else 'repeat ' + str(run['repeat'] + 1)}</span>"
            f"{_bar(run['done'] or 0, run['total'] or 0, color)}"
            f"<span class='studio-count'>{run['done'] or 0} / {run['total'] or 0} "
            f"{'requests' if run.get('load') else 'prompts'}</span>"
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


RESULT_COLUMNS = ["run", "GPUs", "layout", "setting", "repeat", "status", "tokens/s", "speedup", "gen. s",
                  "TTFT p50 ms", "TPOT p50 ms", "imbalance", "agreement"]


def grid_cells_of(settings_by_run: dict[int, dict]) -> dict[int, str]:
    """Per run, the settings that tell the sweep's cells apart ("batch 8"); empty for a plain GPU sweep."""
    varied = varied_settings(settings_by_run.values())
    return {run_id: describe_cell(s, varied) for run_id, s in settings_by_run.items()}


def results_table(rows: list[dict], finished_only: bool = True) -> pd.DataFrame:
    """The sweep's runs as a table; speedup is over the smallest count of the run's own setting."""
    speedups = run_speedups(rows)
    cells = grid_cells_of({r["id"]: {a: r.get(a) for a in SETTING_AXES if a != "tp_size"} for r in rows})
    agreement = agreement_cells(rows)
    data = []
    for r in sorted(rows, key=lambda r: (r["world_size"], r["tp_size"], r.get("repeat_index") or 0, r["id"])):
        if finished_only and r["status"] not in FINAL_STATES:
            continue
        data.append([
            r["id"], r["world_size"], r["layout"], cells.get(r["id"]) or "–", (r.get("repeat_index") or 0) + 1,
            r["status"], rounded(r.get("tokens_per_second"), 1), rounded(speedups.get(r["id"]), 2),
            rounded(r.get("seconds"), 3), rounded(r.get("ttft_ms_p50"), 1), rounded(r.get("tpot_ms_p50"), 2),
            rounded(r.get("imbalance"), 2), agreement[r["id"]],
        ])
    return pd.DataFrame(data, columns=RESULT_COLUMNS)


def rounded(value, digits: int):
    return None if value is None else round(float(value), digits)


def log_text(snapshot: dict | None) -> str:
    if not snapshot:
        return ""
    return "\n".join(snapshot["log"][-LOG_TAIL:])


def log_html(snapshot: dict | None) -> str:
    """The log tail as a scroll box that stays at its newest line."""
    body = html.escape(log_text(snapshot)) or "The sweep's log, the workers' stderr included, shows here."
    return (f"<div class='studio-log-title'>Log (last {LOG_TAIL} lines, the workers' stderr included)</div>"
            f"<div class='studio-log'><pre>{body}</pre></div>")


def finished_signature(rows: list[dict]) -> str:
    """Changes exactly when a run finishes: the chart and table redraw only then."""
    return json.dumps([(r["id"], r["status"], r.get("tokens_per_second")) for r in rows
                       if r["status"] in FINAL_STATES])


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
        ("prompts", run["num_prompts"]), ("GPUs / processes", run["world_size"]),
        ("layout", f"{run['layout']} (tp {run['tp_size']}, dp {run['dp_size']})"),
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
    if run.get("comm_fraction") is not None:
        results.append(("share of a decode step in all-reduce", f"{100 * run['comm_fraction']:.1f} %"))
    if run.get("agreement") is not None:
        reference = f" (against run {run['agreement_reference']})" if run.get("agreement_reference") else ""
        results.append(("agreement with the reference (greedy tokens)", agreement_text(run) + reference))
        results += [("first difference", text) for text in first_differences(run)]
    for key, label in (("bandwidth_gbps", "memory bandwidth (GB/s)"),
                       ("bandwidth_utilisation", "bandwidth utilisation")):
        if run.get(key) is not None:
            results.append((label, run[key]))
    if run.get("roofline"):
        results.append(("bandwidth", roofline.describe(run["roofline"])))
    if run.get("phases"):
        results.append(("where the time went", phases.describe(run["phases"])))
    if run.get("launch"):
        results.append(("shared launch", phases.describe_launch(run["launch"])))
    times = [("created", _when(run.get("created_at"))), ("started", _when(run.get("started_at"))),
             ("finished", _when(run.get("finished_at"))), ("exit code", run.get("exit_code"))]

    def table(rows, head):
        return f"| {head} | |\n|---|---|\n" + "\n".join(f"| {k} | {_fmt(v)} |" for k, v in rows)

    return imported_parts(run, [title, table(settings, "setting"), table(results, "result"), table(times, "when")])


def error_markdown(run: dict) -> str:
    if not run.get("error") and not run.get("stderr_tail"):
        return ""
    text = f"**This run {run['status']}:** {html.escape(run.get('error') or 'no message')}"
    if run.get("partial"):
        text += "\n\nOnly part of the outputs were stored (the ones finished before it stopped)."
    return text


def outputs_label(run: dict) -> str:
    """The outputs' caption: `tiny` and `arch:` models have random weights, and their
    text ("aaaa", bytes that are not UTF-8) would otherwise read as a broken run."""
    model = str(run.get("model") or (run.get("config") or {}).get("model") or "")
    if model == "tiny" or model.startswith("arch:"):
        return (f"Outputs ({model} has random weights: the text is noise by design; "
                "the token counts and times are what the run measures)")
    return "Outputs"


def outputs_table(run: dict) -> pd.DataFrame:
    rows = [[o["prompt_index"], o["rank"], o["tokens"], o["prompt"], o["output"]] for o in run.get("outputs") or []]
    return pd.DataFrame(rows, columns=["prompt #", "rank", "tokens", "prompt", "output"])


# --- compare -------------------------------------------------------------------------

COMPARE_COLUMNS = ["series", "GPUs", "runs", "median tokens/s", "min tokens/s", "max tokens/s", "speedup",
                   "ideal speedup", "efficiency", "median gen. seconds", "median $ per M tokens"]


def compare_table(runs: list[dict], store=None) -> pd.DataFrame:
    """Per sweep and GPU count: the numbers behind the Compare charts; the cost at the
    prices kept with each sweep (`store`), else the example prices (studio.analysis.cost)."""
    data = []
    cost = stored_costs(runs, store.sweep_prices if store is not None else None)  # a CPU run: none unless kept
    all_series = scaling_series(runs)
    labels = series_labels(all_series)
    for series in all_series:
        for p in series.points:
            tps = p.values("tokens_per_second")
            data.append([
                labels[series.key], p.x, len(p.runs), rounded(p.median("tokens_per_second"), 1),
                rounded(min(tps), 1), rounded(max(tps), 1), rounded(p.speedup, 2), rounded(p.ideal_speedup, 2),
                rounded(p.efficiency, 2), rounded(p.median("seconds"), 3),
                rounded(_median([cost[r["id"]]["usd_per_million_tokens"] for r in p.runs if r.get("id") in cost]), 3),
            ])
    return pd.DataFrame(data, columns=COMPARE_COLUMNS)


def _median(values: list) -> float | None:
    values = sorted(v for v in values if v is not None)
    return values[(len(values) - 1) // 2] if values else None


def compare_points(runs: list[dict], store=None) -> list[dict]:
    """compare_table as plain dicts, for the API."""
    table = compare_table(runs, store)
    return [dict(zip(COMPARE_COLUMNS, row)) for row in table.itertuples(index=False, name=None)]

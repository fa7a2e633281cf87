"""The web studio's Analysis tab: why a sweep scales the way it does.

`build_analysis_tab(db_path)` adds a `gr.Tab("Analysis")` to the caller's Blocks.
The handlers below it are plain functions of (db path, choices) returning plain
values and figures, so tests call them without a browser; the tab only wires
them to components. The reference post's sweeps are stored (read-only) the
first time the sweep list is filled, so they can be picked like any sweep."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pandas as pd

from db.store import Store
from studio import analysis_figures as figs
from studio.analysis import compare
from studio.reference import ensure_reference_sweeps
from studio.report import ReportError, ab_rows, fit_rows, load_analysis, points_rows, report_html, representative_runs

REPORT_DIR = Path(tempfile.gettempdir()) / "scaling-studio-reports"


def sweep_label(sweep: dict) -> str:
    counts = ",".join(str(c) for c in (sweep.get("gpu_counts") or []))
    parts = [f"#{sweep['id']}", sweep.get("name") or "", f"{sweep.get('model')}", f"{sweep.get('mode')}",
             f"batch {sweep.get('batch_size')}", f"GPUs {counts}", f"x{sweep.get('repeats') or 1}"]
    if sweep.get("external"):
        parts.append("(reference, read-only)")
    else:
        parts.append(sweep.get("status") or "")
    return " · ".join(p for p in parts if p)


def list_sweep_choices(db_path, with_reference: bool = True) -> list[tuple[str, str]]:
    """(label, id) for every sweep, newest first; stores the reference sweeps
    once unless `with_reference` is false (building the page writes nothing)."""
    store = Store(db_path)
    if with_reference:
        ensure_reference_sweeps(store)
    return [(sweep_label(s), str(s["id"])) for s in store.list_sweeps()]


def _frame(headers_rows: tuple[list[str], list[list[str]]]) -> pd.DataFrame:
    headers, rows = headers_rows
    return pd.DataFrame(rows, columns=headers)


def _run_label(run: dict) -> str:
    n = run.get("world_size") or run["num_gpus"]
    tps = f"{run['tokens_per_second']:.1f} tokens/s" if run.get("tokens_per_second") else run["status"]
    return f"run {run['id']} · {n} GPU · repeat {(run.get('repeat_index') or 0) + 1} · {tps}"


def analyse(db_path, sweep_id, compare_id=None) -> dict:
    """Everything the tab shows for one sweep (and an optional B sweep)."""
    empty = {"explanation": "Pick a sweep to see why it scales the way it does.", "points": _frame(([], [])),
             "fits": _frame(([], [])), "ab": _frame(([], [])), "throughput": None, "speedup": None,
             "efficiency": None, "run_choices": [], "run": None, "timeline": None, "report": None}
    if sweep_id in (None, ""):
        return empty
    store = Store(db_path)
    try:
        analysis = load_analysis(store, int(sweep_id))
        other = load_analysis(store, int(compare_id)) if compare_id not in (None, "") else None
    except (ReportError, ValueError) as exc:
        return {**empty, "explanation": f"**Cannot analyse:** {exc}"}
    runs = [r for r in analysis["_runs"].values() if analysis["_ranks"].get(r["id"])]
    runs.sort(key=lambda r: (r.get("world_size") or r["num_gpus"], r.get("repeat_index") or 0))
    chosen = representative_runs(analysis)
    default_run = chosen[-1][0]["id"] if chosen else None
    comparison = compare(analysis, other) if other is not None else None
    REPORT_DIR.mkdir(parents=True, exist_ok=True)
    report = REPORT_DIR / f"sweep-{analysis['sweep']['id']}" \
        f"{'-vs-' + str(other['sweep']['id']) if other else ''}-report.html"
    report.write_text(report_html(analysis, other), encoding="utf-8")
    text = "\n\n".join(analysis["explanation"].splitlines())
    if analysis["sweep"].get("external"):
        text = ("*Published figures from the reference post (read-only, not measured here).*\n\n" + text)
    return {
        "explanation": text,
        "points": _frame(points_rows(analysis)),
        "fits": _frame(fit_rows(analysis)),
        "ab": _frame(ab_rows(comparison)) if comparison else _frame(([], [])),
        "throughput": figs.compare_figure(analysis, other, comparison) if other else figs.throughput_figure(analysis),
        "speedup": figs.speedup_figure(analysis),
        "efficiency": figs.efficiency_figure(analysis),
        "run_choices": [(_run_label(r), str(r["id"])) for r in runs],
        "run": str(default_run) if default_run else None,
        "timeline": timeline_for_run(db_path, default_run) if default_run else None,
        "report": str(report),
    }


def timeline_for_run(db_path, run_id):
    """The Gantt chart of one run's ranks."""
    if run_id in (None, ""):
        return None
    run = Store(db_path).get_run(int(run_id))
    if run is None:
        return figs.timeline_figure([], f"run {run_id} does not exist")
    title = f"Per-rank timeline · run {run['id']} · {run.get('world_size') or run['num_gpus']} GPU(s)"
    return figs.timeline_figure([(run, run["ranks"])], title)


def build_analysis_tab(db_path):
    """Add the Analysis tab to the Blocks being built and return the `gr.Tab`.

    Call it inside `with gr.Blocks()` / `gr.Tabs()`, where it opens its own
    `gr.Tab("Analysis", id="analysis")`; called inside a `with gr.Tab(...)`
    already open, it fills that tab instead of nesting a second one."""
    import gradio as gr
    from gradio.context import Context

    if isinstance(Context.block, gr.Tab):
        tab = Context.block
        _fill_tab(gr, tab, db_path)
        return tab
    with gr.Tab("Analysis", id="analysis", elem_id="analysis-tab") as tab:
        _fill_tab(gr, tab, db_path)
    return tab


def _fill_tab(gr, tab, db_path) -> None:
    """The tab's components and events; `tab.select` refreshes the sweep list."""

    def refresh(current_a, current_b):
        choices = list_sweep_choices(db_path)
        ids = {value for _, value in choices}
        return (gr.update(choices=choices, value=current_a if current_a in ids else None),
                gr.update(choices=[("none", "")] + choices, value=current_b if current_b in ids else ""))

    def show(sweep_id, compare_id):
        out = analyse(db_path, sweep_id, compare_id)
        return (out["explanation"], out["points"], out["fits"], gr.update(value=out["ab"], visible=bool(compare_id)),
                out["throughput"], out["speedup"], out["efficiency"],
                gr.update(choices=out["run_choices"], value=out["run"]), out["timeline"],
                gr.update(value=out["report"], interactive=out["report"] is not None))

    gr.Markdown("Why throughput stops growing: repeats with 95% intervals, Amdahl and USL fits, the "
                "work-quantisation ceiling and each rank's timeline. Pick a sweep; pick a second one for A/B.")
    with gr.Row():
        initial = list_sweep_choices(db_path, with_reference=False)
        sweep = gr.Dropdown(label="Sweep (A)", choices=initial, value=None, scale=3, elem_id="analysis-sweep")
        other = gr.Dropdown(label="Compare with (B, optional)", choices=[("none", "")] + initial, value="",
                            scale=3, elem_id="analysis-compare")
        refresh_button = gr.Button("Refresh list", scale=1)
    explanation = gr.Markdown(elem_id="analysis-explanation")
    points = gr.Dataframe(label="Per GPU count", interactive=False, wrap=True)
    fits = gr.Dataframe(label="Fits: X(n) = λn / (1 + σ(n−1) + κn(n−1))", interactive=False, wrap=True)
    ab = gr.Dataframe(label="A/B, count by count (Welch t-test on the repeats)", interactive=False,
                      visible=False)
    with gr.Row():
        throughput = gr.Plot(label="Throughput", show_label=False, elem_id="analysis-throughput")
        speedup = gr.Plot(label="Speedup", show_label=False, elem_id="analysis-speedup")
    efficiency = gr.Plot(label="Efficiency", show_label=False, elem_id="analysis-efficiency")
    run = gr.Dropdown(label="Run shown in the timeline", choices=[], value=None)
    timeline = gr.Plot(label="Per-rank timeline", show_label=False, elem_id="analysis-timeline")
    download = gr.DownloadButton("Download HTML report", value=None, interactive=False)

    outputs = [explanation, points, fits, ab, throughput, speedup, efficiency, run, timeline, download]
    tab.select(refresh, [sweep, other], [sweep, other], api_name="analysis_tab_opened")
    refresh_button.click(refresh, [sweep, other], [sweep, other], api_name="analysis_refresh")
    sweep.change(show, [sweep, other], outputs, api_name="analysis_show")
    other.change(show, [sweep, other], outputs, api_name="analysis_compare")
    run.input(lambda run_id: timeline_for_run(db_path, run_id), [run], [timeline], api_name="analysis_timeline")

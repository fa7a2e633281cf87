"""The web studio's Analysis tab: why a sweep scales the way it does.

`build_analysis_tab(store, export_dir)` adds a `gr.Tab("Analysis")` to the
caller's Blocks. The handlers below it are plain functions of (store, choices)
returning plain values and figures, so tests call them without a browser; the
tab only wires them to components, with private events (the public analysis
endpoint is `/analyse_sweep` in `studio.web.api`). Listing writes nothing; the
reference post's sweeps are stored when the user asks for them (the tab's button,
or `studio reference load`)."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pandas as pd

from db.serving import server_runs
from db.store import Store
from studio.analysis.analyse import compare
from studio.analysis.explain import cause_sentence
from studio.analysis.predict import describe_held_out
from studio.analysis.stats import varied_settings
from studio.analysis.what_if import what_if_markdown
from studio.charts import analysis as figs
from studio.charts import grid as grid_figs
from studio.charts.energy import has_energy, joules_per_token_figure
from studio.charts.layouts import layout_figure
from studio.charts.predict import build_what_if, prediction_figure
from studio.reports.report import (
    ReportError,
    ab_rows,
    fit_rows,
    layout_table,
    load_analysis,
    points_rows,
    report_html,
    representative_runs,
)
from studio.sweeps.grid import describe_cell, sweep_layouts, sweep_value
from studio.sweeps.reference import ensure_reference_sweeps
from studio.web import history
from studio.web.cost_panel import build_cost_panel
from studio.web.page_kit import PRIVATE
from studio.web.recommend_panel import build_recommend_panel
from studio.web.serving_panel import build_serving_panel


def sweep_label(sweep: dict) -> str:
    counts = ",".join(str(c) for c in (sweep.get("gpu_counts") or []))
    parts = [f"#{sweep['id']}", sweep.get("name") or "", f"{sweep.get('model')}", sweep_value(sweep, "mode"),
             f"batch {sweep_value(sweep, 'batch_size')}", f"GPUs {counts}{sweep_layouts(sweep)}",
             f"x{sweep.get('repeats') or 1}"]
    if sweep.get("external"):
        parts.append("(reference, read-only)")
    else:
        parts.append(sweep.get("status") or "")
    return " · ".join(p for p in parts if p)


def list_sweep_choices(store: Store) -> list[tuple[str, str]]:
    """(label, id) for every stored sweep, newest first."""
    return sweep_menu(store)[0]


def sweep_menu(store: Store) -> tuple[list[tuple[str, str]], str | None]:
    """(label, id) for every stored sweep, newest first, and the one the tab opens on."""
    stored = store.list_sweeps()
    opening = history.opening_sweep(stored)
    return [(sweep_label(s), str(s["id"])) for s in stored], (str(opening) if opening is not None else None)


def _frame(headers_rows: tuple[list[str], list[list[str]]]) -> pd.DataFrame:
    headers, rows = headers_rows
    return pd.DataFrame(rows, columns=headers)


def _run_label(run: dict) -> str:
    tps = f"{run['tokens_per_second']:.1f} tokens/s" if run.get("tokens_per_second") else run["status"]
    layout = f" as {run['layout']}" if run["tp_size"] > 1 else ""
    return f"run {run['id']} · {run['world_size']} GPU{layout} · repeat {(run.get('repeat_index') or 0) + 1} · {tps}"


def _analyses(store: Store, sweep_id, compare_id=None, setting: int | None = None) -> tuple[dict, dict | None]:
    analysis = load_analysis(store, int(sweep_id), setting=setting)
    other = load_analysis(store, int(compare_id)) if compare_id not in (None, "") else None
    return analysis, other


NO_SWEEP = ("No sweep yet. Run one from the **Run** tab (its prompt box already holds the reference post's 100 "
            "prompts), or press *Add the reference post's sweeps* above to explore the published figures.")


def setting_label(setting: dict, available: list[dict]) -> str:
    """A grid setting named by what tells it apart from the sweep's other settings."""
    differ = varied_settings(available)
    return describe_cell(setting, differ) or "all runs"


def analyse(store: Store, sweep_id, compare_id=None, setting_index=None) -> dict:
    """Everything the tab shows for one sweep (and an optional B sweep); a grid
    sweep's scaling is shown for one of its settings (`setting_index`)."""
    empty = {"headline": "", "explanation": "Pick a sweep to see why it scales the way it does.",
             "points": _frame(([], [])),
             "fits": _frame(([], [])), "ab": _frame(([], [])), "throughput": None, "speedup": None,
             "efficiency": None, "run_choices": [], "run": None, "timeline": None, "setting_choices": [],
             "setting": None, "pareto": None, "heatmap": None, "lines": None, "energy": None, "layouts": None,
             "layout_table": _frame(([], [])), "what_if": (None, None, "")}
    if sweep_id in (None, ""):
        if not store.list_sweeps(limit=1):
            return {**empty, "explanation": NO_SWEEP}
        return empty
    if server_runs(store, int(sweep_id)):  # scaling against GPU count is the offline scenario's question
        return {**empty, "explanation": "A sweep of the server scenario: its latency against offered rate is below."}
    try:
        setting = None if setting_index in (None, "") else int(setting_index)  # an index in settings_available
        analysis, other = _analyses(store, sweep_id, compare_id, setting)
    except (ReportError, ValueError) as exc:
        return {**empty, "explanation": f"**Cannot analyse:** {exc}"}
    runs = [r for r in analysis["_runs"].values() if analysis["_ranks"].get(r["id"])]
    runs.sort(key=lambda r: (r["world_size"], r.get("repeat_index") or 0))
    chosen = representative_runs(analysis)
    default_run = chosen[-1][0]["id"] if chosen else None
    comparison = compare(analysis, other) if other is not None else None
    text = "\n\n".join(analysis["explanation"].splitlines())
    if analysis["sweep"].get("external"):
        text = ("*Published figures from the reference post (read-only, not measured here).*\n\n" + text)
    if comparison and comparison["caveats"]:
        text = "\n\n".join(f"**A/B caveat:** {c}" for c in comparison["caveats"]) + "\n\n" + text
    return {
        "headline": cause_sentence(analysis),
        "what_if": _what_if_view(analysis),
        "explanation": text,
        "points": _frame(points_rows(analysis)),
        "fits": _frame(fit_rows(analysis)),
        "ab": _frame(ab_rows(comparison)) if comparison else _frame(([], [])),
        "throughput": figs.compare_figure(analysis, other, comparison) if other else figs.throughput_figure(analysis),
        "speedup": figs.speedup_figure(analysis),
        "efficiency": figs.efficiency_figure(analysis),
        "run_choices": [(_run_label(r), str(r["id"])) for r in runs],
        "run": str(default_run) if default_run else None,
        "timeline": timeline_for_run(store, default_run) if default_run else None,
        **_grid_views(analysis),
    }


def _what_if_view(analysis: dict) -> tuple:
    """The What-if panel as a sweep opens: its default counts and the rows the deck
    and the report show (`studio.analysis.what_if`), not a second computation."""
    what_if = analysis.get("what_if") or {}
    counts = ",".join(str(r["gpus"]) for r in analysis.get("what_if_rows") or [])
    if not what_if.get("predictions"):
        return counts or None, None, f"No prediction: {what_if.get('error') or 'nothing measured'}."
    trust = describe_held_out(what_if["held_out"])
    return counts, prediction_figure(what_if), what_if_markdown(analysis["what_if_rows"], trust)


def _grid_views(analysis: dict) -> dict:
    """The grid's charts: every run of the sweep, whatever setting the scaling shows."""
    available = analysis["settings_available"]
    runs = list(analysis["_runs"].values())
    varied = varied_settings(available)
    second = varied[0] if varied else "batch_size"
    layouts = analysis.get("layouts") or {}
    return {
        "layouts": layout_figure(layouts["rows"]) if layouts.get("varied") else None,
        "layout_table": _frame(layout_table(layouts)) if layouts.get("varied") else _frame(([], [])),
        "color_axis": second,  # the colour control names what the lines are coloured by
        "setting_choices": [(setting_label(s, available), str(i)) for i, s in enumerate(available)],
        "setting": str(available.index(analysis["setting"])) if analysis.get("setting") in available else None,
        "pareto": grid_figs.pareto_figure(analysis["grid"]) if (analysis["grid"] or {}).get("pareto_points") else None,
        "heatmap": grid_figs.heatmap_figure(runs, "gpus", second),
        "lines": grid_figs.lines_figure(runs, "gpus", second, facet=varied[1] if len(varied) > 1 else None),
        "energy": joules_per_token_figure(runs) if has_energy(runs) else None,
    }


def write_report(store: Store, sweep_id, compare_id, folder: Path) -> Path:
    """The sweep's HTML report as a file in a new folder under `folder`, made
    when the user asks for it (never on a mere view)."""
    analysis, other = _analyses(store, sweep_id, compare_id)
    name = f"sweep-{analysis['sweep']['id']}{'-vs-' + str(other['sweep']['id']) if other else ''}-report.html"
    path = Path(tempfile.mkdtemp(prefix="report-", dir=folder)) / name
    path.write_text(report_html(analysis, other), encoding="utf-8")
    return path


def grid_charts(store: Store, sweep_id, x_axis: str, color: str, facet: str | None):
    """The heatmap (x against colour) and the lines (x, a line per colour, a panel per facet) the user chose."""
    if sweep_id in (None, "") or x_axis == color:
        return None, None
    sweep = store.get_sweep(int(sweep_id))
    runs = (sweep or {}).get("runs") or []
    facet = None if facet in (None, "", "none", x_axis, color) else facet
    return (grid_figs.heatmap_figure(runs, x_axis, color),
            grid_figs.lines_figure(runs, x_axis, color, facet=facet))


def timeline_for_run(store: Store, run_id):
    """The Gantt chart of one run's ranks."""
    if run_id in (None, ""):
        return None
    run = store.get_run(int(run_id))
    if run is None:
        return figs.timeline_figure([], f"run {run_id} does not exist")
    title = f"Per-rank timeline · run {run['id']} · {run['world_size']} GPU(s) as {run['layout']}"
    return figs.timeline_figure([(run, run["ranks"])], title)


def build_analysis_tab(store: Store, export_dir: Path):
    """Add the Analysis tab to the Blocks being built and return the `gr.Tab`.

    Call it inside `with gr.Blocks()` / `gr.Tabs()`, where it opens its own
    `gr.Tab("Analysis", id="analysis")`; called inside a `with gr.Tab(...)`
    already open, it fills that tab instead of nesting a second one."""
    import gradio as gr
    from gradio.context import Context

    if isinstance(Context.block, gr.Tab):
        tab = Context.block
        _fill_tab(gr, tab, store, export_dir)
        return tab
    with gr.Tab("Analysis", id="analysis", elem_id="analysis-tab") as tab:
        _fill_tab(gr, tab, store, export_dir)
    return tab


def _fill_tab(gr, tab, store: Store, export_dir: Path) -> None:
    """The tab's components and events; `tab.select` refreshes the sweep list."""

    def refresh(current_a, current_b):
        choices, newest = sweep_menu(store)
        ids = {value for _, value in choices}
        return (gr.update(choices=choices, value=current_a if current_a in ids else newest),
                gr.update(choices=[("none", "")] + choices, value=current_b if current_b in ids else ""))

    def add_reference(current_a, current_b):
        ensure_reference_sweeps(store)
        return refresh(current_a, current_b)

    def show(sweep_id, compare_id, setting_index=None):
        out = analyse(store, sweep_id, compare_id, setting_index)
        grid = len(out["setting_choices"]) > 1
        shown = out["throughput"] is not None  # no sweep: one line, not empty tables and charts

        def part(value):
            return gr.update(value=value, visible=shown)

        # the answer first; without one (no sweep) the one line in its place says why
        headline = f"### {out['headline']}" if shown and out["headline"] else out["explanation"]
        timeline = out["run"] is not None  # published figures have no ranks to draw
        return (headline, gr.update(value=out["explanation"]), gr.update(visible=shown),
                part(out["points"]), part(out["fits"]),
                gr.update(value=out["ab"], visible=bool(compare_id)),
                part(out["throughput"]), part(out["speedup"]), part(out["efficiency"]),
                gr.update(choices=out["run_choices"], value=out["run"], visible=timeline),
                gr.update(value=out["timeline"], visible=timeline),
                gr.update(interactive=out["throughput"] is not None), gr.update(value=None, visible=False),
                gr.update(choices=out["setting_choices"], value=out["setting"], visible=grid),
                gr.update(value=out["pareto"], visible=out["pareto"] is not None),
                gr.update(value=out["heatmap"], visible=grid), gr.update(value=out["lines"], visible=grid),
                gr.update(visible=grid), gr.update(value=out.get("color_axis") or "batch_size"),
                gr.update(value=out["energy"], visible=out["energy"] is not None),
                gr.update(value=out["layouts"], visible=out["layouts"] is not None),
                gr.update(value=out["layout_table"], visible=out["layouts"] is not None),
                # the counts box keeps what the user typed when a sweep offers none
                gr.update(value=out["what_if"][0]) if out["what_if"][0] else gr.skip(), *out["what_if"][1:])

    def make_report(sweep_id, compare_id):
        if sweep_id in (None, ""):
            return gr.update(value=None, visible=False)
        try:
            return gr.update(value=str(write_report(store, sweep_id, compare_id, export_dir)), visible=True)
        except (ReportError, ValueError) as exc:
            raise gr.Error(f"Cannot write the report: {exc}", print_exception=False) from None

    gr.Markdown("Why throughput stops growing: repeats with 95% intervals, Amdahl and USL fits, the "
                "work-quantisation ceiling and each rank's timeline. Pick a sweep; pick a second one for A/B.")
    with gr.Row():
        initial, opening = sweep_menu(store)
        sweep = gr.Dropdown(label="Sweep (A)", choices=initial, value=opening, scale=3,
                            elem_id="analysis-sweep")
        other = gr.Dropdown(label="Compare with (B, optional)", choices=[("none", "")] + initial, value="",
                            scale=3, elem_id="analysis-compare")
        refresh_button = gr.Button("Refresh list", scale=1)
        reference_button = gr.Button("Add the reference post's sweeps", scale=1, size="sm")
    setting = gr.Dropdown(label="Setting shown against GPU count (this sweep is a grid)", choices=[], value=None,
                          visible=False, elem_id="analysis-setting")
    # the answer, then its chart, then the table; the reasoning behind it folds away below
    headline = gr.Markdown(elem_id="analysis-headline")
    with gr.Row():
        throughput = gr.Plot(label="Throughput", show_label=False, elem_id="analysis-throughput", visible=bool(initial))
        speedup = gr.Plot(label="Speedup", show_label=False, elem_id="analysis-speedup", visible=bool(initial))
    points = gr.Dataframe(label="Per GPU count", interactive=False, wrap=True, visible=bool(initial),
                          elem_id="analysis-points", elem_classes="studio-table")
    ab = gr.Dataframe(label="A/B, count by count (Welch t-test on the repeats)", interactive=False,
                      visible=False, elem_classes="studio-table")
    with gr.Accordion("Why: the reasoning, the fits and the ceilings", open=False,
                      visible=bool(initial), elem_id="analysis-why") as why:
        explanation = gr.Markdown(elem_id="analysis-explanation")
        fits = gr.Dataframe(label="Fits: X(n) = λn / (1 + σ(n−1) + κn(n−1))", interactive=False, wrap=True,
                            visible=bool(initial), elem_classes="studio-table")
        efficiency = gr.Plot(label="Efficiency", show_label=False, elem_id="analysis-efficiency",
                             visible=bool(initial))
    layouts = gr.Plot(label="Layouts", show_label=False, elem_id="analysis-layouts", visible=False)
    layout_rows = gr.Dataframe(label="Layouts at equal GPU count (tp: ranks per copy of the model, dp: copies)",
                               interactive=False, wrap=True, visible=False, elem_id="analysis-layout-table",
                               elem_classes="studio-table")
    with gr.Row():
        pareto = gr.Plot(label="Pareto", show_label=False, elem_id="analysis-pareto", visible=False)
        heatmap = gr.Plot(label="Heatmap", show_label=False, elem_id="analysis-heatmap", visible=False)
    axis_choices = [(grid_figs.AXIS_TITLES[a], a) for a in grid_figs.GRID_AXES]
    with gr.Row(visible=False) as grid_controls:
        x_axis = gr.Dropdown(axis_choices, value="gpus", label="x axis", elem_id="grid-x")
        color = gr.Dropdown(axis_choices, value="batch_size", label="colour (a line each)", elem_id="grid-color")
        facet = gr.Dropdown([("none", "none"), *axis_choices], value="none", label="facet (a panel each)",
                            elem_id="grid-facet")
    lines = gr.Plot(label="Grid lines", show_label=False, elem_id="analysis-lines", visible=False)
    energy = gr.Plot(label="Energy per token", show_label=False, elem_id="analysis-energy", visible=False)
    what_if_gpus, what_if_figure, what_if_text = build_what_if(gr, store, sweep, PRIVATE)
    cost_fill = build_cost_panel(gr, store, sweep, PRIVATE)
    serving_fill = build_serving_panel(gr, store, sweep, PRIVATE)
    build_recommend_panel(gr, store, sweep, other, PRIVATE)
    run = gr.Dropdown(label="Run shown in the timeline", choices=[], value=None, visible=False)
    timeline = gr.Plot(label="Per-rank timeline", show_label=False, elem_id="analysis-timeline", visible=False)
    with gr.Row():
        make = gr.Button("Make HTML report", interactive=False, scale=0, min_width=220)
        report = gr.File(label="HTML report (opens offline)", visible=False, elem_id="analysis-report")

    outputs = [headline, explanation, why, points, fits, ab, throughput, speedup, efficiency, run, timeline, make,
               report, setting, pareto, heatmap, lines, grid_controls, color, energy, layouts, layout_rows,
               what_if_gpus, what_if_figure, what_if_text]
    # opening the tab shows the newest sweep at once; a value set at build time fires no change event
    tab.select(refresh, [sweep, other], [sweep, other], **PRIVATE).then(show, [sweep, other], outputs, **PRIVATE).then(
        *serving_fill, **PRIVATE).then(*cost_fill, **PRIVATE)
    refresh_button.click(refresh, [sweep, other], [sweep, other], **PRIVATE)
    reference_button.click(add_reference, [sweep, other], [sweep, other], **PRIVATE)
    sweep.change(show, [sweep, other], outputs, **PRIVATE)
    other.change(show, [sweep, other], outputs, **PRIVATE)
    setting.input(show, [sweep, other, setting], outputs, **PRIVATE)
    for chooser in (x_axis, color, facet):
        chooser.input(lambda sweep_id, x, c, f: grid_charts(store, sweep_id, x, c, f), [sweep, x_axis, color, facet],
                      [heatmap, lines], **PRIVATE)
    run.input(lambda run_id: timeline_for_run(store, run_id), [run], [timeline], **PRIVATE)
    make.click(make_report, [sweep, other], [report], **PRIVATE)

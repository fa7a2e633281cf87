"""The Compare tab: chosen sweeps and runs against GPU count, side by side, and the
charts as one HTML file. Layout and wiring; the figures are pure functions."""

from __future__ import annotations

import tempfile
from pathlib import Path
from types import SimpleNamespace

import gradio as gr

from db.store import Store
from runner.config import ConfigError
from studio.charts import figures
from studio.charts.energy import has_energy, joules_per_token_figure
from studio.web import history, views
from studio.web.page_kit import error_text, private


def build_compare_tab(store: Store, export_dir: Path) -> SimpleNamespace:
    ui = SimpleNamespace()
    gr.Markdown("Choose sweeps (and single runs, if you like) to plot against GPU count. Markers are medians "
                "of the repeats; bars span the fastest to the slowest repeat. Hover a point for its settings.",
                elem_classes="studio-note")
    with gr.Row():
        ui.sweeps = gr.Dropdown([], value=[], multiselect=True, label="Sweeps", scale=4, elem_id="compare-sweeps")
        ui.runs = gr.Dropdown([], value=[], multiselect=True, label="Extra runs", scale=3)
    ui.message = gr.Markdown("")
    ui.throughput = gr.Plot(figures.empty_figure("Choose sweeps above", "Throughput"), show_label=False,
                            elem_id="compare-throughput")
    with gr.Row():
        ui.wall = gr.Plot(figures.empty_figure("Choose sweeps above", "Wall time"), show_label=False)
        ui.speedup = gr.Plot(figures.empty_figure("Choose sweeps above", "Speedup"), show_label=False)
    ui.energy = gr.Plot(visible=False, show_label=False, elem_id="compare-energy")  # only where energy was measured
    ui.table = gr.Dataframe(views.compare_table([]), label="The numbers behind the charts", interactive=False)
    with gr.Row():
        ui.download = gr.Button("Download the charts as one HTML file", size="sm", scale=0, min_width=300)
        ui.file = gr.File(label="Charts (self-contained HTML)", visible=False, interactive=False)

    def choices(chosen_sweeps, chosen_runs):
        stored = store.list_sweeps()
        sweeps = [(history.sweep_label(s), s["id"]) for s in stored]
        runs = store.list_runs(limit=2000)
        sweep_ids = {v for _, v in sweeps}
        keep = [s for s in chosen_sweeps or [] if s in sweep_ids]
        if not keep and not chosen_runs and sweeps:
            keep = [history.opening_sweep(stored)]  # a first visit shows a sweep rather than nothing
        return (gr.Dropdown(choices=sweeps, value=keep),
                gr.Dropdown(choices=history.run_choices(runs), value=list(chosen_runs or [])))

    def figures_for(sweep_ids, run_ids):
        runs = history.selected_runs(store, sweep_ids, run_ids)
        figs = [figures.throughput_figure(runs), figures.wall_time_figure(runs), figures.speedup_figure(runs)]
        if has_energy(runs):
            figs.append(joules_per_token_figure(runs))
        return runs, figs

    def draw(sweep_ids, run_ids):
        try:
            runs, figs = figures_for(sweep_ids, run_ids)
        except ConfigError as exc:
            return (*[figures.empty_figure("Nothing to draw")] * 3, gr.Plot(visible=False), views.compare_table([]),
                    error_text(exc))
        ok = sum(1 for r in runs if r["status"] == "succeeded")
        message = "" if ok else "No succeeded runs in the selection yet: choose sweeps above."
        energy = gr.Plot(value=figs[3], visible=True) if len(figs) > 3 else gr.Plot(visible=False)
        return (*figs[:3], energy, views.compare_table(runs, store), message)

    def download(sweep_ids, run_ids):
        try:
            runs, figs = figures_for(sweep_ids, run_ids)
        except ConfigError as exc:
            return gr.File(visible=False), error_text(exc)
        if not runs:
            return gr.File(visible=False), "⚠ Nothing to download: choose sweeps first."
        folder = Path(tempfile.mkdtemp(prefix="charts-", dir=export_dir))
        path = folder / "scaling-studio-charts.html"
        path.write_text(figures.figures_html(figs), encoding="utf-8")
        return gr.File(value=str(path), visible=True), ""

    draw_out = [ui.throughput, ui.wall, ui.speedup, ui.energy, ui.table, ui.message]
    ui.choices_event = (choices, [ui.sweeps, ui.runs], [ui.sweeps, ui.runs])
    ui.draw_event = (draw, [ui.sweeps, ui.runs], draw_out)
    # a change of selection redraws, so a Draw button would only repeat it (issue 24 item 8)
    for selector in (ui.sweeps, ui.runs):
        selector.input(draw, [ui.sweeps, ui.runs], draw_out, **private(show_progress="hidden"))
    ui.download.click(download, [ui.sweeps, ui.runs], [ui.file, ui.message], **private())
    return ui

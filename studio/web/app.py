"""The studio's page: layout and wiring only.

`build_app(supervisor, db_path)` assembles one tab per builder function. Every
event calls a plain function from `studio.web.forms`, `studio.web.views` or
`studio.web.history` (form values in, tables, HTML out) and figures come from `studio.charts.figures`. Runs belong to the
`Supervisor`, not to a browser tab: the page polls it with a `gr.Timer` while a
sweep runs, and on load it shows whatever is running, so closing the tab stops
nothing. The page's own events are private; `studio.web.api` is the public API.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from types import SimpleNamespace

import gradio as gr

from db.store import Store
from runner.config import DTYPES, ConfigError
from runner.host.launch_groups import DEFAULT_LAUNCH, LAUNCH_MODES
from runner.planner import describe_plan
from studio.charts import figures
from studio.web import forms, history, views
from studio.web.analysis_tab import build_analysis_tab
from studio.web.api import refuse_missing_values, register_api
from studio.web.compare_tab import build_compare_tab
from studio.web.glossary import glossary_markdown
from studio.web.import_panel import build_import_panel
from studio.web.page_kit import error_text, private
from studio.web.params import id_list
from studio.web.present_tab import build_present_tab

POLL_SECONDS = 1.0
CHART_TITLE = "Throughput against GPU count"  # the legend names the dotted ideal line; a long title is cut on a phone
EMPTY_CHART = "The chart grows as each GPU count finishes"

CSS = """
.studio-header h1 { margin-bottom: 0; }
.studio-progress { border: 1px solid var(--border-color-primary); border-radius: 8px; padding: 10px 14px;
                   background: var(--block-background-fill); }
.studio-empty { color: var(--body-text-color-subdued); }
.studio-head { margin-bottom: 8px; font-size: 15px; }
.studio-state { font-weight: 600; }
.studio-run { display: grid; grid-template-columns: minmax(210px, 1.3fr) 2fr 110px minmax(150px, 1.3fr);
              gap: 10px; align-items: center; padding: 3px 0; font-size: 14px; }
.studio-bar { height: 12px; background: var(--neutral-200); border-radius: 6px; overflow: hidden; }
.studio-bar > div { height: 100%; border-radius: 6px; transition: width 0.4s; }
.studio-count { font-variant-numeric: tabular-nums; text-align: right; }
.studio-error { margin: 4px 0 8px 0; padding: 6px 10px; border-left: 3px solid #dc2626; background: #fef2f2;
                color: #7f1d1d; font-size: 13px; }
.studio-error pre { white-space: pre-wrap; max-height: 240px; overflow: auto; font-size: 12px; }
.studio-note { color: var(--body-text-color-subdued); font-size: 13px; }
.studio-log-title { font-size: 13px; color: var(--body-text-color-subdued); margin: 4px 0; }
/* column-reverse keeps the newest line in view without any script */
.studio-log { display: flex; flex-direction: column-reverse; height: 190px; overflow: auto;
              border: 1px solid var(--border-color-primary); border-radius: 8px;
              background: var(--block-background-fill); }
.studio-log pre { margin: 0; padding: 8px 12px; font-size: 12px; line-height: 1.45; white-space: pre-wrap; }
/* a phone: a run's name and counts on one line, its bar under them, nothing wider than the screen */
@media (max-width: 640px) {
  .studio-run { grid-template-columns: 1fr auto; gap: 4px 8px; }
  .studio-run .studio-bar { grid-column: 1 / -1; grid-row: 2; }
  .studio-run .studio-detail { grid-column: 1 / -1; }
}
/* table headers break between words, never inside one ("GPU s", "speedu p") */
.studio-table th, .studio-table th * { word-break: normal !important; overflow-wrap: normal !important;
                                       hyphens: none !important; }
#analysis-headline h3 { font-size: 20px; line-height: 1.35; margin: 6px 0 2px; }
/* a long sweep label stops before the dropdown's arrow */
#analysis-sweep input, #analysis-compare input { text-overflow: ellipsis; padding-right: 28px; }
"""


def theme() -> gr.themes.Base:
    # System fonts only: the studio must not reach for Google Fonts on an offline machine.
    return gr.themes.Soft(primary_hue="blue", neutral_hue="slate",
                          font=["system-ui", "Segoe UI", "Helvetica", "Arial", "sans-serif"],
                          font_mono=["ui-monospace", "SFMono-Regular", "Menlo", "monospace"])


# --- Run tab ------------------------------------------------------------------

def build_run_tab(supervisor, store: Store) -> SimpleNamespace:
    devices = forms.device_choices()
    counts = devices["counts"]
    default_counts = [c for c in (1, 2) if c in counts]
    ui = SimpleNamespace()

    with gr.Row(equal_height=False):
        with gr.Column(scale=5):
            gr.Markdown("### 1 · Prompts")
            # the reference post's prompts are in the box from the start: the first press of Run runs the demo
            ui.prompts = gr.Textbox(forms.preset_text(), label="Prompts, one a line", lines=8, max_lines=14,
                                    elem_id="prompts",
                                    placeholder="The King is dead. Long live the Queen.\nCall me Ishmael.")
            ui.preset = gr.Button("Use the reference post's prompts (10 first lines of novels × 10)", size="sm",
                                  elem_id="preset")
            # a short label: a long one wraps on a phone and runs over "Drop File Here"
            ui.prompt_file = gr.File(label="…or upload a file",
                                     file_types=[".txt", ".jsonl", ".csv"], type="filepath", height=110,
                                     elem_id="prompt-file")
            gr.Markdown("Files: .txt (one prompt a line), .jsonl or .csv (a 'prompt' field).", elem_classes="studio-note")
            ui.prompt_info = gr.Markdown(forms.prompt_summary(forms.preset_text(), None), elem_classes="studio-note")
        with gr.Column(scale=4):
            gr.Markdown("### 2 · Settings")
            ui.model = gr.Dropdown(forms.model_choices(), value="tiny", allow_custom_value=True, label="Model",
                                   info="tiny: built in, tiny and fast · arch:NAME: a real architecture with random "
                                        "weights · or a local model folder / cached hub id", elem_id="model")
            ui.mode = gr.Radio(["simple", "batched", "auto"], value="batched", label="Mode", elem_id="mode",
                               info="simple: one prompt at a time · batched: batch size prompts at once · "
                                    "auto: the planner picks the batches")
            # No `minimum=` on the numbers: gradio's own range error is a toast without a field;
            # the validator below says what is wrong next to the field instead.
            with gr.Row():
                # text, not numbers: a comma list ("1,8,32") makes the setting an axis of a grid sweep
                ui.batch_size = gr.Textbox("16", label="Batch size(s)", max_lines=1, elem_id="batch-size",
                                           info="one, or a list: 1,8,32")
                ui.max_new_tokens = gr.Textbox("100", label="Max new tokens", max_lines=1, elem_id="max-new-tokens",
                                               info="one, or a list")
                ui.dtype = gr.Dropdown(list(DTYPES), value="auto", label="dtype", elem_id="dtype")
            ui.fixed_length = gr.Checkbox(False, label="Fixed length: always generate exactly max new tokens",
                                          elem_id="fixed-length")
            ui.gpu_counts = gr.CheckboxGroup(counts, value=default_counts, label="GPU counts to sweep",
                                             info=f"This machine: up to {devices['max']} {devices['what']}. "
                                                  "Each count runs in turn.", elem_id="gpu-counts")
            ui.tp = gr.Textbox("1", label="Tensor-parallel sizes (tp)", max_lines=1, elem_id="tp",
                               info="ranks that share one copy of the model: 1 (a replica per GPU), or a list such "
                                    "as 1,2 to compare layouts; each GPU count runs with the sizes that divide it")
            with gr.Accordion("Synthetic prompts and latency limits (advanced: launches too)", open=False,
                              elem_id="grid-extras"):
                with gr.Row():
                    ui.prompt_tokens = gr.Textbox("", label="Prompt tokens (one, or a list)", max_lines=1,
                                                  elem_id="prompt-tokens",
                                                  info="set: seeded prompts of exactly this many tokens replace "
                                                       "the prompts above")
                    ui.num_prompts = gr.Number(100, precision=0, label="How many synthetic prompts",
                                               elem_id="num-prompts")
                ui.slo = gr.Textbox("", label="Latency limits for goodput (optional)", max_lines=1, elem_id="slo",
                                    info="ttft=MS,tpot=MS, or mlperf-llama2-70b (TTFT 2000 ms, TPOT 200 ms)")
                ui.launch = gr.Radio(list(LAUNCH_MODES), value=DEFAULT_LAUNCH, label="Launches", elem_id="launch",
                                     info="shared: runs of one model load it once, in one launch (smaller GPU "
                                          "counts on a sub-group of its ranks); per-run: a launch of its own "
                                          "for every run, for process-level independence")
            with gr.Row():
                ui.repeats = gr.Number(1, precision=0, label="Repeats per cell", elem_id="repeats")
                ui.name = gr.Textbox(label="Sweep name (optional)", max_lines=1, elem_id="sweep-name")
            # what the form's own defaults make, before any control is touched
            ui.grid_info = gr.Markdown(forms.grid_summary(forms.SweepRequest(
                prompts_text="", model="tiny", mode="batched", batch_size="16", max_new_tokens="100",
                gpu_counts=[str(c) for c in default_counts], repeats=1, tp="1")),
                elem_id="grid-info", elem_classes="studio-note")
            with gr.Row():
                ui.run = gr.Button("Run sweep", variant="primary", elem_id="run-button")
                ui.stop = gr.Button("Stop", variant="stop", elem_id="stop-button")

    gr.Markdown("### 3 · Progress and results")
    ui.progress = gr.HTML(views.progress_html(None), elem_id="progress")
    with gr.Row(equal_height=False):
        with gr.Column(scale=1):
            ui.chart = gr.Plot(figures.empty_figure(EMPTY_CHART, CHART_TITLE),
                               label="Throughput", show_label=False, elem_id="live-chart")
        with gr.Column(scale=1):
            ui.table = gr.Dataframe(views.results_table([]), label="Finished runs (speedup: over the smallest "
                                    "count)", interactive=False,
                                    elem_id="results-table", max_height=380)
    ui.log = gr.HTML(views.log_html(None), elem_id="log")
    ui.timer = gr.Timer(POLL_SECONDS, active=False)
    ui.watched = gr.State(None)  # the sweep this page shows
    ui.drawn = gr.State("")  # which finished runs the chart and table already show

    form = [ui.prompts, ui.prompt_file, ui.model, ui.mode, ui.batch_size, ui.max_new_tokens, ui.fixed_length,
            ui.dtype, ui.gpu_counts, ui.repeats, ui.name, ui.prompt_tokens, ui.num_prompts, ui.slo, ui.launch,
            ui.tp]
    view = [ui.progress, ui.table, ui.chart, ui.log, ui.timer, ui.drawn]

    def request_of(prompts, prompt_file, model, mode, batch_size, max_new_tokens, fixed_length, dtype,
                   gpu_counts, repeats, name, prompt_tokens, num_prompts, slo, launch, tp) -> forms.SweepRequest:
        return forms.SweepRequest(
            prompts_text=prompts, prompts_file=prompt_file, model=model, mode=mode, batch_size=batch_size,
            max_new_tokens=max_new_tokens, fixed_length=fixed_length, dtype=dtype, gpu_counts=gpu_counts,
            repeats=repeats, name=name, prompt_tokens=prompt_tokens, num_prompts=num_prompts, slo=slo,
            launch=launch, tp=tp,
        )

    def validate(*values):
        """Runs before `start`: a bad setting gets its message next to its field."""
        problems = forms.check_request(request_of(*values))
        if "prompts" in problems and values[1]:
            problems["prompt_file"] = problems.pop("prompts")
        names = ["prompts", "prompt_file", *forms.FORM_FIELDS[1:]]
        return [gr.validate(name not in problems, problems.get(name, "")) for name in names]

    def render(sweep_id, drawn):
        snapshot, rows = views.load_sweep(supervisor, store, sweep_id)
        signature = views.finished_signature(rows)
        running = snapshot is not None and not snapshot["finished"]
        if signature == drawn:
            table, chart = gr.skip(), gr.skip()
        else:
            table = views.results_table(rows)
            if any(r["status"] == "succeeded" for r in rows):
                chart = figures.throughput_figure(rows, title=CHART_TITLE)
            elif snapshot is not None and snapshot["finished"]:
                chart = figures.empty_figure("No run of this sweep succeeded: nothing to plot", CHART_TITLE)
            else:
                chart = figures.empty_figure(EMPTY_CHART, CHART_TITLE)
        queue = supervisor.queue()
        # the timer keeps going while anything waits, so a queued sweep is shown once it starts
        return (views.progress_html(snapshot, queue), table, chart, views.log_html(snapshot),
                gr.Timer(active=running or bool(queue)), signature)

    def start(*values):
        try:
            plan = forms.plan_request(request_of(*values))
            current = supervisor.status(None)
            sweep_id = supervisor.submit(plan)
        except ConfigError as exc:  # the validator caught it unless the machine changed in between
            raise gr.Error(forms.field_message(exc), print_exception=False) from None
        except RuntimeError as exc:
            raise gr.Error(str(exc), print_exception=False) from None
        if current is not None and current["state"] == "running":
            # the running sweep stays in view (the new one is listed in its queue line);
            # watching None follows whichever sweep runs next
            gr.Info(f"Sweep {sweep_id} is queued behind sweep {current['sweep_id']}.")
            return (*render(None, None), None)
        return (*render(sweep_id, None), sweep_id)

    def poll(sweep_id, drawn):
        return render(sweep_id, drawn)

    def stop(sweep_id):
        if supervisor.cancel(sweep_id):  # None: the running sweep
            gr.Info("Stopping: the run's processes are being ended; queued runs will not start.")
        else:
            gr.Info("Nothing is running.")
        return render(sweep_id, None)

    def on_load():
        """Show the running (or latest) sweep. The form is never written here: a user
        may have typed into it while the page loaded, and what they typed wins."""
        status = supervisor.status(None)
        sweep_id = status["sweep_id"] if status else None
        return (*render(sweep_id, None), sweep_id)

    ui.preset.click(lambda: (forms.preset_text(), None), None, [ui.prompts, ui.prompt_file], **private())
    for source in (ui.prompts, ui.prompt_file, ui.prompt_tokens, ui.num_prompts):
        source.change(forms.prompt_summary, [ui.prompts, ui.prompt_file, ui.prompt_tokens, ui.num_prompts],
                      ui.prompt_info,
                      trigger_mode="always_last", **private(show_progress="hidden"))
    for field in (ui.batch_size, ui.max_new_tokens, ui.gpu_counts, ui.repeats, ui.prompt_tokens, ui.tp):
        field.change(lambda *values: forms.grid_summary(request_of(*values)), form, ui.grid_info,
                     trigger_mode="always_last", **private(show_progress="hidden"))
    ui.run.click(start, form, [*view, ui.watched], validator=validate, **private(show_progress="minimal"))
    ui.timer.tick(poll, [ui.watched, ui.drawn], view, **private(show_progress="hidden"))
    ui.stop.click(stop, ui.watched, view, **private(show_progress="hidden"))
    ui.on_load = (on_load, None, [*view, ui.watched])
    return ui


# --- History tab ----------------------------------------------------------------

def build_history_tab(supervisor, store: Store, export_dir: Path) -> SimpleNamespace:
    ui = SimpleNamespace()
    gr.Markdown("Every stored run, newest first. Click a row to open it; choose runs or sweeps below to "
                "compare, export or delete them.", elem_classes="studio-note")
    with gr.Row():
        ui.model = gr.Dropdown([history.ANY], value=history.ANY, label="Model", allow_custom_value=True)
        ui.mode = gr.Dropdown([history.ANY], value=history.ANY, label="Mode")
        ui.batch_size = gr.Dropdown([history.ANY], value=history.ANY, label="Batch size")
        ui.status = gr.Dropdown([history.ANY], value=history.ANY, label="Status")
        ui.since = gr.Textbox(label="From date (UTC)", placeholder="YYYY-MM-DD", max_lines=1)
        ui.until = gr.Textbox(label="To date (inclusive)", placeholder="YYYY-MM-DD", max_lines=1)
        ui.refresh = gr.Button("Refresh", scale=0, min_width=100, elem_id="history-refresh")
    ui.message = gr.Markdown("")
    ui.table = gr.Dataframe(history.history_table([]), label="Runs", interactive=False, max_height=420,
                            elem_id="history-table")
    with gr.Row():
        ui.sweeps = gr.Dropdown([], value=[], multiselect=True, label="Selected sweeps", scale=3)
        ui.runs = gr.Dropdown([], value=[], multiselect=True, label="Selected runs", scale=3)
    with gr.Row():
        ui.select_shown = gr.Button("Select the runs shown", size="sm")
        ui.clear = gr.Button("Clear selection", size="sm")
        ui.compare = gr.Button("Compare selected", variant="primary", size="sm", elem_id="compare-selected")
        ui.csv = gr.Button("Export CSV", size="sm")
        ui.json = gr.Button("Export JSON", size="sm")
        ui.delete = gr.Button("Delete selected…", variant="stop", size="sm")
    with gr.Row(visible=False) as ui.confirm_row:
        ui.confirm_text = gr.Markdown()
        ui.confirm_yes = gr.Button("Yes, delete them", variant="stop", scale=0)
        ui.confirm_no = gr.Button("Cancel", scale=0)
    ui.export_file = gr.File(label="Download", visible=False, interactive=False)

    gr.Markdown("### Run details")
    with gr.Row():
        ui.open_id = gr.Number(None, label="Run id", precision=0, scale=0, min_width=140)
        ui.open = gr.Button("Open", scale=0, min_width=100)
    ui.detail_error = gr.Markdown("", elem_classes="studio-error-md")
    ui.detail_stderr = gr.Code(label="stderr tail", visible=False, interactive=False, max_lines=20)
    ui.detail_title = gr.Markdown("Open a run to see its settings, environment, per-rank figures and outputs.")
    with gr.Row(equal_height=False):
        ui.detail_settings = gr.Markdown("")
        ui.detail_results = gr.Markdown("")
        ui.detail_times = gr.Markdown("")
    with gr.Row():
        ui.rank_plot = gr.Plot(visible=False, show_label=False)
        ui.phase_plot = gr.Plot(visible=False, show_label=False)
    with gr.Accordion("Batch plan (mode auto)", open=False, visible=False) as ui.plan_box:
        ui.plan_text = gr.Markdown("")
        ui.plan = gr.JSON()
    with gr.Accordion("Environment", open=False, visible=False) as ui.env_box:
        ui.environment = gr.JSON()
    ui.outputs = gr.Dataframe(views.outputs_table({}), label="Outputs", interactive=False, wrap=True,
                              visible=False, max_height=400)

    filters = [ui.model, ui.mode, ui.batch_size, ui.status, ui.since, ui.until]
    ui.shown = gr.State([])  # ids of the runs in the table

    def refresh(model, mode, batch_size, status, since, until, chosen_sweeps, chosen_runs):
        try:
            runs = history.list_history(store, model=model, mode=mode, batch_size=batch_size, status=status,
                                         since=since, until=until)
            message = "" if runs else "No runs match. Start one in the Run tab, or clear the filters."
        except ConfigError as exc:
            runs, message = [], error_text(exc)
        options = history.filter_choices(store)
        all_runs = store.list_runs(limit=2000)
        run_ids = {r["id"] for r in all_runs}
        sweeps = history.sweep_choices(store)
        sweep_ids = {v for _, v in sweeps}
        return (
            history.history_table(runs), message, [r["id"] for r in runs],
            gr.Dropdown(choices=options["model"]), gr.Dropdown(choices=options["mode"]),
            gr.Dropdown(choices=options["batch_size"]), gr.Dropdown(choices=options["status"]),
            gr.Dropdown(choices=sweeps, value=[s for s in chosen_sweeps or [] if s in sweep_ids]),
            gr.Dropdown(choices=history.run_choices(all_runs), value=[r for r in chosen_runs or [] if r in run_ids]),
        )

    refresh_out = [ui.table, ui.message, ui.shown, *filters[:4], ui.sweeps, ui.runs]
    ui.refresh_event = (refresh, [*filters, ui.sweeps, ui.runs], refresh_out)
    ui.refresh.click(refresh, [*filters, ui.sweeps, ui.runs], refresh_out, **private())
    for f in filters[:4]:
        f.input(refresh, [*filters, ui.sweeps, ui.runs], refresh_out, **private(show_progress="hidden"))
    for f in filters[4:]:
        f.submit(refresh, [*filters, ui.sweeps, ui.runs], refresh_out, **private(show_progress="hidden"))

    def open_run(run_id):
        try:
            run = history.get_run(store, run_id)
        except ConfigError as exc:
            hidden = gr.update(visible=False)
            return (run_id, error_text(exc), gr.Code(visible=False), "", "", "", "", hidden, hidden, hidden,
                    "", None, hidden, None, hidden)
        tail = run.get("stderr_tail") or ""
        plan = run.get("plan")
        return (
            run["id"], views.error_markdown(run), gr.Code(value=tail, visible=bool(tail)),
            *views.run_summary_parts(run),
            gr.Plot(figures.rank_figure(run), visible=bool(run.get("ranks"))),
            gr.Plot(figures.phases_figure(run), visible=bool(run.get("phases"))),
            gr.Accordion(visible=bool(plan)), describe_plan(plan) if plan else "", plan,
            gr.Accordion(visible=bool(run.get("environment"))), run.get("environment"),
            gr.Dataframe(views.outputs_table(run), label=views.outputs_label(run), visible=bool(run.get("outputs"))),
        )

    detail_out = [ui.open_id, ui.detail_error, ui.detail_stderr, ui.detail_title, ui.detail_settings,
                  ui.detail_results, ui.detail_times, ui.rank_plot, ui.phase_plot,
                  ui.plan_box, ui.plan_text, ui.plan, ui.env_box, ui.environment, ui.outputs]

    def open_selected(evt: gr.SelectData):
        return open_run(evt.row_value[0])

    ui.table.select(open_selected, None, detail_out, **private())
    ui.open.click(open_run, ui.open_id, detail_out, **private())
    ui.open_id.submit(open_run, ui.open_id, detail_out, **private())

    ui.select_shown.click(lambda shown, runs: sorted(set(runs or []) | set(shown)), [ui.shown, ui.runs], ui.runs,
                          **private())
    ui.clear.click(lambda: ([], []), None, [ui.sweeps, ui.runs], **private())

    def export(fmt):
        def run_export(sweep_ids, run_ids):
            try:
                runs = history.selected_runs(store, sweep_ids, run_ids)
                if not runs:
                    raise ConfigError("selection", "nothing selected; choose runs or sweeps first")
                text = history.export_text(store, runs, fmt)
            except ConfigError as exc:
                return gr.File(visible=False), error_text(exc)
            folder = Path(tempfile.mkdtemp(prefix="export-", dir=export_dir))
            path = folder / f"studio-runs-{'-'.join(str(r['id']) for r in runs[:6])}.{fmt}"
            path.write_text(text, encoding="utf-8")
            return gr.File(value=str(path), visible=True), f"Exported {len(runs)} run(s) as {fmt.upper()}."
        return run_export

    ui.csv.click(export("csv"), [ui.sweeps, ui.runs], [ui.export_file, ui.message], **private())
    ui.json.click(export("json"), [ui.sweeps, ui.runs], [ui.export_file, ui.message], **private())

    def ask_delete(sweep_ids, run_ids):
        try:
            runs = history.selected_runs(store, sweep_ids, run_ids)
        except ConfigError as exc:
            return gr.Row(visible=False), "", error_text(exc)
        if not runs and not sweep_ids:
            return gr.Row(visible=False), "", "⚠ Nothing selected: choose runs or sweeps first."
        what = f"**Delete {len(runs)} run(s)" + (f" in {len(sweep_ids)} sweep(s)" if sweep_ids else "")
        return gr.Row(visible=True), what + " with their outputs?** This cannot be undone.", ""

    ui.delete.click(ask_delete, [ui.sweeps, ui.runs], [ui.confirm_row, ui.confirm_text, ui.message], **private())
    ui.confirm_no.click(lambda: gr.Row(visible=False), None, ui.confirm_row, **private())

    def do_delete(sweep_ids, run_ids, *filter_values):
        try:
            supervisor.adopt_orphans()  # a dead owner's runs end here, so they can go
            message = history.delete_selected(supervisor.store, sweep_ids, run_ids)
            supervisor.forget(id_list("sweep_ids", sweep_ids))
        except ConfigError as exc:
            message = error_text(exc)
        table, _, shown, *rest = refresh(*filter_values, [], [])
        return (gr.Row(visible=False), table, message, shown, *rest)

    ui.confirm_yes.click(do_delete, [ui.sweeps, ui.runs, *filters],
                         [ui.confirm_row, ui.table, ui.message, ui.shown, *filters[:4], ui.sweeps, ui.runs],
                         **private())
    return ui


# --- the whole app ------------------------------------------------------------------

def build_app(supervisor, db_path: str | Path | None = None) -> gr.Blocks:
    """The studio page; `supervisor` owns every run, `db_path` is read for history."""
    store = Store(db_path or supervisor.db_path)
    export_dir = Path(tempfile.mkdtemp(prefix="scaling-studio-"))
    with gr.Blocks(title="Scaling Studio", analytics_enabled=False) as app:
        gr.Markdown("# Scaling Studio\nRun a generation benchmark over 1, 2, … GPUs and see where scaling "
                    "plateaus. A sweep keeps running on the server if you close this tab.",
                    elem_classes="studio-header")
        # on a phone the tabs wrap onto a second line instead of hiding behind an unlabelled "…"
        with gr.Tabs(selected="run", overflow_behavior="wrap") as tabs:
            with gr.Tab("Run", id="run"):
                run = build_run_tab(supervisor, store)
            with gr.Tab("History", id="history", elem_id="history-tab") as history_tab:
                history = build_history_tab(supervisor, store, export_dir)
                build_import_panel(store)  # other tools' results (studio.web.import_panel)
            with gr.Tab("Compare", id="compare", elem_id="compare-tab") as compare_tab:
                compare = build_compare_tab(store, export_dir)
            with gr.Tab("Analysis", id="analysis"):
                build_analysis_tab(store, export_dir)
            with gr.Tab("Present", id="present", elem_id="present-tab"):
                build_present_tab(store)

        # below the tabs: one click from every term any tab uses
        with gr.Accordion("Glossary: rounds, knee, σ/κ, roofline, tp/dp, TTFT/TPOT, goodput, held-out, agreement",
                          open=False, elem_id="glossary"):
            gr.Markdown(glossary_markdown())
        app.load(*run.on_load, **private(show_progress="hidden"))
        history_tab.select(*history.refresh_event, **private(show_progress="hidden"))
        compare_tab.select(*compare.choices_event, **private(show_progress="hidden")).then(
            *compare.draw_event, **private(show_progress="hidden"))

        def to_compare(sweep_ids, run_ids):
            sweeps, runs = compare.choices_event[0](sweep_ids, run_ids)
            return gr.Tabs(selected="compare"), sweeps, runs

        # Switching tabs from code does not fire the Compare tab's select event: draw here.
        history.compare.click(to_compare, [history.sweeps, history.runs], [tabs, compare.sweeps, compare.runs],
                              **private()).then(*compare.draw_event, **private(show_progress="hidden"))
        register_api(supervisor, store)
    refuse_missing_values(app)
    app.studio_export_dir = export_dir
    return app

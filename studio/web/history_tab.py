"""The History tab: every stored run, filtered; choosing runs or sweeps to compare,
export or delete them; one run's details. Its handlers are `studio.web.history`'s."""

from __future__ import annotations

import tempfile
from pathlib import Path
from types import SimpleNamespace

import gradio as gr

from db.store import Store
from runner.config import ConfigError
from runner.planner import describe_plan
from studio.charts import figures
from studio.web import history, views
from studio.web.page_kit import error_text, private
from studio.web.params import id_list

# Follows the export's link once the page shows it; gradio's File offers a link, not a download.
FOLLOW_EXPORT = """() => {
  let tries = 0;
  const follow = () => {
    const link = document.querySelector('#history-export a[href]');
    if (link) { link.click(); } else if (++tries < 40) { setTimeout(follow, 50); }
  };
  follow();
}"""


def build_history_tab(supervisor, store: Store, export_dir: Path) -> SimpleNamespace:
    ui = SimpleNamespace()
    gr.Markdown("Every stored run, newest first. Click a row to open it; choose runs or sweeps below to "
                "compare, export or delete them.", elem_classes="studio-note")
    with gr.Row():
        ui.model = gr.Dropdown([history.ANY], value=history.ANY, label=history.LABELS["model"], allow_custom_value=True)
        ui.mode = gr.Dropdown([history.ANY], value=history.ANY, label=history.LABELS["mode"])
        ui.batch_size = gr.Dropdown([history.ANY], value=history.ANY, label=history.LABELS["batch_size"])
        ui.status = gr.Dropdown([history.ANY], value=history.ANY, label=history.LABELS["status"])
        ui.since = gr.Textbox(label=history.LABELS["since"], placeholder="YYYY-MM-DD", max_lines=1,
                              elem_id="history-since")
        ui.until = gr.Textbox(label=history.LABELS["until"], placeholder="YYYY-MM-DD", max_lines=1)
        ui.refresh = gr.Button("Refresh", scale=0, min_width=100, elem_id="history-refresh")
    ui.message = gr.Markdown("")
    ui.table = gr.Dataframe(history.history_table([]), label="Runs", interactive=False, max_height=420,
                            elem_id="history-table", wrap=True, column_widths=history.COLUMN_WIDTHS)
    with gr.Row():
        ui.sweeps = gr.Dropdown([], value=[], multiselect=True, label=history.LABELS["sweep_ids"], scale=3)
        ui.runs = gr.Dropdown([], value=[], multiselect=True, label=history.LABELS["run_ids"], scale=3)
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
    # what a delete or an export did, beside the buttons: the message above the table is out of view
    # once the selection has grown (issue 24 item 8)
    ui.action_message = gr.Markdown("", elem_id="history-action")
    ui.export_file = gr.File(label="Download", visible=False, interactive=False, elem_id="history-export")

    gr.Markdown("### Run details")
    with gr.Row():
        ui.open_id = gr.Number(None, label=history.LABELS["run_id"], precision=0, scale=0, min_width=140)
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
            history.history_table(runs, store), message, [r["id"] for r in runs],
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

    for button, fmt in ((ui.csv, "csv"), (ui.json, "json")):
        # one click: the new file's link is followed as soon as it is there (issue 24 item 8)
        button.click(export(fmt), [ui.sweeps, ui.runs], [ui.export_file, ui.action_message], **private()).then(
            None, None, None, js=FOLLOW_EXPORT, **private())

    # a link made for other filters or another selection would download what is no longer shown
    def forget_export():
        return gr.File(value=None, visible=False)

    for f in filters[:4]:
        f.input(forget_export, None, ui.export_file, **private(show_progress="hidden"))
    for f in filters[4:]:
        f.submit(forget_export, None, ui.export_file, **private(show_progress="hidden"))
    for control in (ui.sweeps, ui.runs):
        control.input(forget_export, None, ui.export_file, **private(show_progress="hidden"))
    for button in (ui.select_shown, ui.clear, ui.refresh):
        button.click(forget_export, None, ui.export_file, **private(show_progress="hidden"))

    def ask_delete(sweep_ids, run_ids):
        try:
            runs = history.selected_runs(store, sweep_ids, run_ids)
        except ConfigError as exc:
            return gr.Row(visible=False), "", error_text(exc)
        if not runs and not sweep_ids:
            return gr.Row(visible=False), "", "⚠ Nothing selected: choose runs or sweeps first."
        what = f"**Delete {len(runs)} run(s)" + (f" in {len(sweep_ids)} sweep(s)" if sweep_ids else "")
        return gr.Row(visible=True), what + " with their outputs?** This cannot be undone.", ""

    ui.delete.click(ask_delete, [ui.sweeps, ui.runs], [ui.confirm_row, ui.confirm_text, ui.action_message],
                    **private())
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
                         [ui.confirm_row, ui.table, ui.action_message, ui.shown, *filters[:4], ui.sweeps, ui.runs],
                         **private())
    return ui

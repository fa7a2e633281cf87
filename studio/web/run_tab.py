"""The Run tab: the sweep form, Run and Stop, and the sweep's progress, chart and table.

The form's fields are the settings studio.sweeps.settings offers the page, each made
here with its declared label, help and default; where each one sits is this
module's. Runs belong to the `Supervisor`, not to a browser tab: the page polls it
with a `gr.Timer` while a sweep runs, and on load it shows whatever is running.
"""

from __future__ import annotations

from types import SimpleNamespace

import gradio as gr

from db.store import Store
from runner.config import ConfigError
from studio.charts import figures
from studio.sweeps.settings import BY_NAME, CHOICE, CHOICES, FILE, FLAG, NUMBER, WHOLE
from studio.web import forms, views
from studio.web.page_kit import private
from studio.web.serving_panel import server_results_table, server_view

POLL_SECONDS = 1.0
CHART_TITLE = "Throughput against GPU count"
SERVER_CHART_TITLE = "Latency against offered rate"  # the legend names the dotted ideal line; a long title is cut on a phone
EMPTY_CHART = "The chart grows as each GPU count finishes"


def _widget(kind: str):
    """The component a setting gets where the layout names no other."""
    return {WHOLE: lambda **o: gr.Number(precision=0, **o), NUMBER: gr.Number, FLAG: gr.Checkbox, CHOICE: gr.Radio,
            CHOICES: lambda **o: gr.Dropdown(allow_custom_value=True, **o),
            FILE: lambda **o: gr.File(type="filepath", **o)}.get(kind, lambda **o: gr.Textbox(max_lines=1, **o))


def build_run_tab(supervisor, store: Store) -> SimpleNamespace:
    devices = forms.device_choices()
    counts = devices["counts"]
    default_counts = [c for c in (1, 2) if c in counts]
    fields: dict[str, gr.components.Component] = {}
    helps: dict[str, str | None] = {}  # each field's own help line, which a refusal replaces until the next Run

    def field(name: str, make=None, **options):
        """The setting's input with its declared label, help, default and id; `options` are the layout's."""
        setting = BY_NAME[name]
        declared = {"value": setting.default, "label": setting.form_label, "elem_id": setting.form_id}
        if setting.kind != FILE:
            declared["info"] = setting.help_text
        if setting.choices:
            declared["choices"] = list(setting.choices)
        made = {**declared, **options}
        if setting.kind != FILE:
            helps[name] = made.get("info")
        fields[name] = (make or _widget(setting.kind))(**made)
        return fields[name]

    with gr.Row(equal_height=False):
        with gr.Column(scale=5):
            gr.Markdown("### 1 · Prompts")
            # the reference post's prompts are in the box from the start: the first press of Run runs the demo
            field("prompts", gr.Textbox, value=forms.preset_text(), lines=8, max_lines=14, info=None,
                  placeholder="The King is dead. Long live the Queen.\nCall me Ishmael.")
            preset = gr.Button("Use the reference post's prompts (10 first lines of novels × 10)", size="sm",
                               elem_id="preset")
            field("prompts_file", file_types=[".txt", ".jsonl", ".csv"], height=110)
            gr.Markdown("Files: .txt (one prompt a line), .jsonl or .csv (a 'prompt' field).", elem_classes="studio-note")
            prompt_info = gr.Markdown(forms.prompt_summary(forms.preset_text(), None), elem_classes="studio-note")
        with gr.Column(scale=4):
            gr.Markdown("### 2 · Settings")
            field("scenario", gr.Radio, elem_id="scenario")
            field("model", gr.Dropdown, choices=forms.model_choices(), allow_custom_value=True)
            # the server scenario's own fields (docs/serving.md), shown when it is chosen
            with gr.Column(visible=False, elem_id="server-fields", variant="panel") as server_fields:
                field("engine", placeholder="transformers serve {model} --port {port} --continuous-batching")
                field("url", placeholder="http://127.0.0.1:8000")
                field("profile", gr.Radio)
                with gr.Row():
                    field("rates", visible=False)
                    field("concurrency", visible=False)
                    field("requests_per_load")
                field("endpoint", gr.Radio)
            field("mode", gr.Radio)
            # No `minimum=` on the numbers: gradio's own range error is a toast without a field;
            # the click's handler (start, below) says what is wrong next to the field instead.
            with gr.Row():
                # text, not numbers: a comma list ("1,8,32") makes the setting an axis of a grid sweep
                field("batch_size", gr.Textbox, value=str(BY_NAME["batch_size"].default), max_lines=1)
                field("max_new_tokens", gr.Textbox, value=str(BY_NAME["max_new_tokens"].default), max_lines=1)
                field("dtype", gr.Dropdown)
            field("fixed_length")
            field("gpu_counts", gr.CheckboxGroup, choices=counts, value=default_counts,
                  info=f"This machine: up to {devices['max']} {devices['what']}. Each count runs in turn.")
            field("tp_size", gr.Textbox, max_lines=1)
            with gr.Accordion("Synthetic prompts and latency limits (advanced: launches too)", open=False,
                              elem_id="grid-extras"):
                with gr.Row():
                    field("prompt_tokens")
                    field("num_prompts", value=forms.SYNTHETIC_PROMPTS)
                field("slo")
                field("launch")
                # a setting declared later than this layout still reaches the page, here
                for setting in forms.FORM_SETTINGS:
                    if setting.name not in fields and setting.name not in ("repeats", "name"):
                        field(setting.name)
            with gr.Row():
                field("repeats")
                field("name", info=None)
            # the grid line and Run stay at the foot of the screen while the settings scroll under them:
            # the form is taller than a 1440 × 900 screen (issue 24 item 8)
            with gr.Column(elem_id="run-bar"):
                # what the form's own defaults make, before any control is touched
                grid_info = gr.Markdown(forms.grid_summary(forms.form_request(
                    {name: fields[name].value for name in forms.FORM_FIELDS if name != "prompts_file"})),
                    elem_id="grid-info", elem_classes="studio-note")
                with gr.Row():
                    run = gr.Button("Run sweep", variant="primary", elem_id="run-button")
                    stop_button = gr.Button("Stop", variant="stop", elem_id="stop-button")

    gr.Markdown("### 3 · Progress and results")
    progress = gr.HTML(views.progress_html(None), elem_id="progress")
    with gr.Row(equal_height=False):
        with gr.Column(scale=1):
            chart = gr.Plot(figures.empty_figure(EMPTY_CHART, CHART_TITLE),
                            label="Throughput", show_label=False, elem_id="live-chart")
        with gr.Column(scale=1):
            table = gr.Dataframe(views.results_table([]), label="Finished runs (speedup: over the smallest "
                                 "count)", interactive=False, elem_id="results-table", max_height=380)
    log = gr.HTML(views.log_html(None), elem_id="log")
    timer = gr.Timer(POLL_SECONDS, active=False)
    watched = gr.State(None)  # the sweep this page shows
    drawn = gr.State("")  # which finished runs the chart and table already show

    form = [fields[name] for name in forms.FORM_FIELDS]
    view = [progress, table, chart, log, timer, drawn]
    file_at = forms.FORM_FIELDS.index("prompts_file")

    def request_of(*values) -> forms.SweepRequest:
        return forms.form_request(dict(zip(forms.FORM_FIELDS, values)))

    def marked(problems: dict[str, str]) -> list:
        """Each field with its refusal in place of its help line, or its help line again.
        The handler says it, not gradio's validator: that one answers with an HTTP 422,
        which the browser logs as an error for every refused setting (issue 24 item 8)."""
        def mark(name):
            changes = {} if name not in helps else {"info": problems.get(name, helps[name])}
            return gr.update(elem_classes=["studio-invalid"] if name in problems else [], **changes)
        return [mark(name) for name in forms.FORM_FIELDS]

    def render(sweep_id, shown):
        snapshot, rows = views.load_sweep(supervisor, store, sweep_id)
        signature = views.finished_signature(rows)
        running = snapshot is not None and not snapshot["finished"]
        if signature == shown:
            rows_table, figure = gr.skip(), gr.skip()
        else:
            server = snapshot is not None and snapshot["settings"].get("scenario") == "server"
            rows_table = server_results_table(rows) if server else views.results_table(rows)
            figure = chart_of(snapshot, rows)
        queue = supervisor.queue()
        # the timer keeps going while anything waits, so a queued sweep is shown once it starts
        return (views.progress_html(snapshot, queue), rows_table, figure, views.log_html(snapshot),
                gr.Timer(active=running or bool(queue)), signature)

    def chart_of(snapshot, rows):
        if snapshot is not None and snapshot["settings"].get("scenario") == "server":
            # a server sweep's chart is latency against offered rate, per GPU count and layout
            return server_view(store, snapshot["sweep_id"])[1] or figures.empty_figure(
                "The chart grows as each cell's loads finish", SERVER_CHART_TITLE)
        if any(r["status"] == "succeeded" for r in rows):
            return figures.throughput_figure(rows, title=CHART_TITLE)
        if snapshot is not None and snapshot["finished"]:
            return figures.empty_figure("No run of this sweep succeeded: nothing to plot", CHART_TITLE)
        return figures.empty_figure(EMPTY_CHART, CHART_TITLE)

    def start(*values):
        """Plan the form's sweep and queue it; a refused setting gets its message next to its
        field and on the line above Run (the field may sit in a closed section), and nothing starts."""
        request = request_of(*values)
        try:
            plan = forms.plan_request(request)
            current = supervisor.status(None)
            sweep_id = supervisor.submit(plan)
        except ConfigError as exc:
            problems = forms.problems_of(exc)
            if "prompts" in problems and values[file_at]:
                problems["prompts_file"] = problems.pop("prompts")
            return (*[gr.skip()] * (len(view) + 1), *marked(problems), f"⚠ {forms.page_message(exc)}")
        except RuntimeError as exc:
            raise gr.Error(str(exc), print_exception=False) from None
        fine = (*marked({}), forms.grid_summary(request))
        if current is not None and current["state"] == "running":
            # the running sweep stays in view (the new one is listed in its queue line);
            # watching None follows whichever sweep runs next
            gr.Info(f"Sweep {sweep_id} is queued behind sweep {current['sweep_id']}.")
            return (*render(None, None), None, *fine)
        return (*render(sweep_id, None), sweep_id, *fine)

    scoped = [fields[name] for name in forms.SCOPE_FIELDS]

    def show_scenario(*values):
        """Show the fields of the chosen scenario, profile and URL (what is hidden is not sent)."""
        hidden = forms.hidden_fields(dict(zip(forms.SCOPE_FIELDS, values)))
        return [gr.update(visible=name not in hidden) for name in forms.TOGGLED_FIELDS] + [
            gr.update(visible=values[0] == "server")]

    def poll(sweep_id, shown):
        return render(sweep_id, shown)

    # named as the event's api_name: a private event called stop_sweep would push the API's own to stop_sweep_1
    def stop(sweep_id):
        if supervisor.cancel(sweep_id):  # None: the running sweep
            gr.Info("Stopping: the run's processes (a server and its load) are being ended; queued runs will not "
                    "start.")
        else:
            gr.Info("Nothing is running.")
        return render(sweep_id, None)

    def on_load():
        """Show the running (or latest) sweep. The form is never written here: a user
        may have typed into it while the page loaded, and what they typed wins."""
        status = supervisor.status(None)
        sweep_id = status["sweep_id"] if status else None
        return (*render(sweep_id, None), sweep_id)

    prompt_inputs = [fields["prompts"], fields["prompts_file"], fields["prompt_tokens"], fields["num_prompts"]]
    preset.click(lambda: (forms.preset_text(), None), None, prompt_inputs[:2], **private())
    for source in prompt_inputs:
        source.change(forms.prompt_summary, prompt_inputs, prompt_info,
                      trigger_mode="always_last", **private(show_progress="hidden"))
    for setting in forms.FORM_SETTINGS:
        # what the grid line counts: a grid's axes and repeats, or the server scenario's cells and loads
        if setting.listed or setting.name in ("repeats", "scenario", *forms.SERVER_FIELDS):
            fields[setting.name].change(lambda *values: forms.grid_summary(request_of(*values)), form, grid_info,
                                        trigger_mode="always_last", **private(show_progress="hidden"))
    for source in scoped:
        source.change(show_scenario, scoped, [*(fields[name] for name in forms.TOGGLED_FIELDS), server_fields],
                      **private(show_progress="hidden"))
    run.click(start, form, [*view, watched, *form, grid_info], **private(show_progress="minimal"))
    timer.tick(poll, [watched, drawn], view, **private(show_progress="hidden"))
    stop_button.click(stop, watched, view, **private(show_progress="hidden"))
    return SimpleNamespace(**fields, preset=preset, prompt_info=prompt_info, grid_info=grid_info, run=run, stop=stop_button,
                           progress=progress, chart=chart, table=table, log=log, timer=timer, watched=watched,
                           drawn=drawn, on_load=(on_load, None, [*view, watched]))

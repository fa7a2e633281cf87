"""The Run tab: the sweep form, Run and Stop, and the sweep's progress, chart and table.

Runs belong to the `Supervisor`, not to a browser tab: the page polls it with a
`gr.Timer` while a sweep runs, and on load it shows whatever is running.
"""

from __future__ import annotations

from types import SimpleNamespace

import gradio as gr

from db.store import Store
from runner.config import DTYPES, ConfigError
from runner.host.launch_groups import DEFAULT_LAUNCH, LAUNCH_MODES
from studio.charts import figures
from studio.web import forms, views
from studio.web.page_kit import private

POLL_SECONDS = 1.0
CHART_TITLE = "Throughput against GPU count"  # the legend names the dotted ideal line; a long title is cut on a phone
EMPTY_CHART = "The chart grows as each GPU count finishes"


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

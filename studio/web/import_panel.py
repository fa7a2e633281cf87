"""The History tab's Import control: other tools' result files in, the imported runs
out, filtered by tool and scenario. Layout and wiring; the handlers are
in studio.web.import_handlers, shared with the API."""

from __future__ import annotations

from types import SimpleNamespace

import gradio as gr
import pandas as pd

from db.imports import distinct_imported
from db.store import Store
from runner.config import ConfigError
from studio.web.import_handlers import ANY, COLUMNS, import_uploaded, imported_table
from studio.web.page_kit import private


def build_import_panel(store: Store) -> SimpleNamespace:
    """The Import accordion, at the foot of the History tab."""
    ui = SimpleNamespace()
    with gr.Accordion("Import other tools' results (GuideLLM, AIPerf, vLLM bench, inference-benchmarker)",
                      open=False, elem_id="import-panel"):
        gr.Markdown("Choose result files (an AIPerf `profile_export.jsonl` together with its "
                    "`profile_export_aiperf.json`); each benchmark becomes a read-only run, recounted with the "
                    "studio's definitions where the file has per-request times. Folders (sweeps) and files over "
                    "20 MiB: `studio import PATH`.", elem_classes="studio-note")
        with gr.Row():
            ui.files = gr.File(label="Result files", file_count="multiple", type="filepath",
                               file_types=[".json", ".jsonl", ".yaml", ".yml"], elem_id="import-files")
            with gr.Column():
                ui.labels = gr.Textbox(label="Labels (key=value, comma-separated)", max_lines=1,
                                       placeholder="gpus=8,gpu=H100,engine=vllm")
                ui.slo = gr.Textbox(label="SLO for goodput (optional)", max_lines=1, placeholder="ttft=2000,tpot=200")
                ui.button = gr.Button("Import", variant="primary", elem_id="import-button")
        ui.message = gr.Markdown("", elem_id="import-message")
        with gr.Row():
            ui.tool = gr.Dropdown([ANY], value=ANY, label="Tool")
            ui.scenario = gr.Dropdown([ANY], value=ANY, label="Scenario")
            ui.show = gr.Button("Show imported runs", scale=0, min_width=180)
        ui.table = gr.Dataframe(pd.DataFrame(columns=COLUMNS), label="Imported runs", interactive=False,
                                max_height=320, elem_id="imported-table")

    def refresh(tool, scenario):
        return (imported_table(store, tool, scenario),
                gr.Dropdown(choices=[ANY] + distinct_imported(store, "tool")),
                gr.Dropdown(choices=[ANY] + distinct_imported(store, "mode")))

    def run_import(paths, labels, slo, tool, scenario):
        try:
            message = import_uploaded(store, paths, labels, slo)
        except ConfigError as exc:
            message = f"⚠ {exc}"
        return (message, *refresh(tool, scenario))

    outputs = [ui.table, ui.tool, ui.scenario]
    ui.button.click(run_import, [ui.files, ui.labels, ui.slo, ui.tool, ui.scenario], [ui.message, *outputs],
                    **private())
    ui.show.click(refresh, [ui.tool, ui.scenario], outputs, **private())
    for dropdown in (ui.tool, ui.scenario):
        dropdown.input(refresh, [ui.tool, ui.scenario], outputs, **private(show_progress="hidden"))
    return ui

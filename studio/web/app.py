"""The studio's page: its tabs assembled, and what they share (the CSS, the theme).

`build_app(supervisor, db_path)` puts one tab per module side by side (run_tab,
history_tab, compare_tab, analysis_tab, present_tab) and wires what crosses tabs.
Every event calls a plain function from `studio.web.forms`, `studio.web.views` or
`studio.web.history` (form values in, tables, HTML out). Runs belong to the
`Supervisor`, not to a browser tab, so closing the tab stops nothing. The page's
own events are private; `studio.web.api` is the public API.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import gradio as gr

from db.store import Store
from studio.web.analysis_tab import build_analysis_tab
from studio.web.api import refuse_missing_values, register_api
from studio.web.compare_tab import build_compare_tab
from studio.web.glossary import glossary_markdown
from studio.web.history_tab import build_history_tab
from studio.web.import_panel import build_import_panel
from studio.web.page_kit import private
from studio.web.present_tab import build_present_tab
from studio.web.run_tab import build_run_tab

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
/* clip, not hidden: it cuts the same overflow but is no scroll container, so #run-bar can stick */
.gradio-container { overflow: clip !important; }
#run-bar { position: sticky; bottom: 0; z-index: 1000; padding: 6px 0 8px;
           background: var(--body-background-fill); box-shadow: 0 -6px 8px -6px rgba(0, 0, 0, 0.15); }
/* a phone: stacked Run and Stop would cover a fifth of the screen, so they stay in place */
@media (max-width: 640px) { #run-bar { position: static; box-shadow: none; } }
/* a refused setting (studio.web.run_tab): its message in place of its help line, the field outlined */
.studio-invalid { border: 2px solid #dc2626 !important; border-radius: 8px; }
.studio-invalid [data-testid="block-info"] { color: #b91c1c !important; font-weight: 600; }
#analysis-headline h3 { font-size: 20px; line-height: 1.35; margin: 6px 0 2px; }
/* a long sweep label stops before the dropdown's arrow */
#analysis-sweep input, #analysis-compare input { text-overflow: ellipsis; padding-right: 28px; }
"""


def theme() -> gr.themes.Base:
    # System fonts only: the studio must not reach for Google Fonts on an offline machine.
    return gr.themes.Soft(primary_hue="blue", neutral_hue="slate",
                          font=["system-ui", "Segoe UI", "Helvetica", "Arial", "sans-serif"],
                          font_mono=["ui-monospace", "SFMono-Regular", "Menlo", "monospace"]).set(
        # Soft draws variant="stop" as pale as any button; a delete or a stop must look like one
        button_cancel_background_fill="#dc2626", button_cancel_background_fill_hover="#b91c1c",
        button_cancel_border_color="#dc2626", button_cancel_text_color="#ffffff",
        button_cancel_text_color_hover="#ffffff")


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
        with gr.Accordion("Glossary: rounds, knee, σ/κ, roofline, tp/dp, TTFT/TPOT, goodput, $ per M tokens, held-out, "
                          "agreement",
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

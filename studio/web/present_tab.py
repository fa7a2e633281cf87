"""The web studio's Present tab: a stored sweep replayed as the same deck
`studio present` writes, and the interactive plateau explainer.

The deck runs in an iframe (srcdoc) without plotly.js, which the page fetches
once and hands to each deck (studio.web.plotly_script): it is a whole page with its own keys and
scripts, and an iframe keeps those away from the studio's own page. Handlers
are plain functions of (store, choices), so tests call them without a browser;
the tab wires them with private events only."""

from __future__ import annotations

import html

from db.store import Store
from studio.charts.deck import MAX_EXPLAINER_GPUS, explainer_figures
from studio.reports.deck import deck_html
from studio.reports.report import ReportError, load_analysis
from studio.sweeps.reference import ensure_reference_sweeps
from studio.web.analysis_tab import list_sweep_choices
from studio.web.page_kit import PRIVATE
from studio.web.plotly_script import PAGE_JS

# what the explainer shows before a sweep is picked: the reference post's batched sweep
DEFAULT_EXPLAINER = {"prompts": 100, "batch_size": 16, "gpus": 5}
MAX_PROMPTS, MAX_BATCH = 2000, 256
PLACEHOLDER = ("<div id='present-empty' style='padding:24px;color:#555'>Pick a sweep above to replay it as a "
               "presentation (the same deck as <code>studio present SWEEP --output deck.html</code>).</div>")


def deck_frame(store: Store, sweep_id) -> tuple[str, str, dict]:
    """The deck in an iframe, a one-line status, and what the explainer needs
    from the sweep (its settings and measured points)."""
    if sweep_id in (None, ""):
        return PLACEHOLDER, "", {}
    try:
        analysis = load_analysis(store, int(sweep_id))
        page = deck_html(analysis, inline_plotly=False)  # the page hands it plotly.js (plotly_script)
    except (ReportError, ValueError) as exc:
        return PLACEHOLDER, f"⚠ Cannot present sweep {sweep_id}: {exc}", {}
    frame = (f"<iframe id='present-deck' title='presentation of sweep {analysis['sweep']['id']}' "
             # sandboxed without allow-same-origin: the deck's scripts run, but in an origin of their
             # own, so they can reach neither the studio's page nor its API with the user's cookies
             f"srcdoc=\"{html.escape(page, quote=True)}\" sandbox='allow-scripts' allowfullscreen "
             "style='width:100%;height:82vh;border:1px solid #ddd;border-radius:6px'></iframe>")
    status = ("Click into the deck, then → / space / click to advance, ← to go back, F for full screen. "
              "The explainer below starts from this sweep's settings.")
    measured = {"points": analysis["points"], "settings": analysis["settings"],
                "batch_size": analysis.get("batch_size_effective") or analysis["settings"].get("batch_size"),
                "counts": analysis["counts"]}
    return frame, status, measured


def explainer_start(measured: dict) -> tuple[int, int, int]:
    """Slider positions for a sweep: its prompts, batch size and one count past
    its largest (so the next step shows), kept inside the sliders' ranges."""
    if not measured:
        return DEFAULT_EXPLAINER["prompts"], DEFAULT_EXPLAINER["batch_size"], DEFAULT_EXPLAINER["gpus"]
    prompts = measured["settings"].get("num_prompts") or DEFAULT_EXPLAINER["prompts"]
    batch = measured.get("batch_size") or DEFAULT_EXPLAINER["batch_size"]
    gpus = (measured.get("counts") or [DEFAULT_EXPLAINER["gpus"]])[-1] + 1
    return min(int(prompts), MAX_PROMPTS), min(int(batch), MAX_BATCH), min(int(gpus), MAX_EXPLAINER_GPUS)


def explainer_plot(measured: dict, prompts, batch_size, gpus):
    """The explainer's two figures; the sweep's measured points are drawn only while
    the sliders hold the sweep's own prompts and batch size, since they were
    measured at those and no other."""
    same = bool(measured) and int(prompts) == measured["settings"].get("num_prompts") \
        and int(batch_size) == measured.get("batch_size")
    return explainer_figures(prompts, batch_size, gpus, {"points": measured["points"]} if same else None)


def build_present_tab(store: Store):
    """Add the Present tab to the Blocks being built and return the `gr.Tab`;
    inside a `gr.Tab` already open, fill that one instead of nesting a second."""
    import gradio as gr
    from gradio.context import Context

    if isinstance(Context.block, gr.Tab):
        _fill_tab(gr, Context.block, store)
        return Context.block
    with gr.Tab("Present", id="present", elem_id="present-tab") as tab:
        _fill_tab(gr, tab, store)
    return tab


def _fill_tab(gr, tab, store: Store) -> None:
    def refresh(current):
        choices = list_sweep_choices(store)
        return gr.update(choices=choices, value=current if current in {v for _, v in choices} else None)

    def add_reference(current):
        ensure_reference_sweeps(store)
        return refresh(current)

    def show(sweep_id):
        frame, status, measured = deck_frame(store, sweep_id)
        prompts, batch, gpus = explainer_start(measured)
        return frame, status, measured, prompts, batch, gpus, *explainer_plot(measured, prompts, batch, gpus)

    def redraw(measured, prompts, batch, gpus):
        try:
            return explainer_plot(measured, prompts, batch, gpus)
        except ValueError as exc:
            raise gr.Error(f"Explainer: {exc}", print_exception=False) from None

    gr.Markdown("Replay a sweep for a team: the settings, the throughput growing one GPU count at a time, the "
                "rounds per rank, the cause, and what the models say about the next counts.")
    with gr.Row():
        sweep = gr.Dropdown(label="Sweep", choices=list_sweep_choices(store), value=None, scale=4,
                            elem_id="present-sweep")
        refresh_button = gr.Button("Refresh list", scale=1)
        reference_button = gr.Button("Add the reference post's sweeps", scale=1, size="sm")
    status = gr.Markdown(elem_id="present-status")
    deck = gr.HTML(PLACEHOLDER, elem_id="present-frame", js_on_load=PAGE_JS)
    gr.Markdown("### Plateau explainer\nEach block is one generate call on one rank; the busiest rank sets the "
                "run's time, so where its column does not shrink, more GPUs do not help. The ceiling is the "
                "speedup the rounds alone allow; the sweep's measured medians are drawn on it while the sliders "
                "hold the sweep's own prompts and batch size.")
    measured = gr.State({})
    start = explainer_start({})
    with gr.Row():
        prompts = gr.Slider(1, MAX_PROMPTS, value=start[0], step=1, label="prompts", elem_id="explain-prompts")
        batch = gr.Slider(1, MAX_BATCH, value=start[1], step=1, label="batch size", elem_id="explain-batch")
        gpus = gr.Slider(1, MAX_EXPLAINER_GPUS, value=start[2], step=1, label="GPU count",
                         elem_id="explain-gpus")
    first = explainer_plot({}, *start)
    # side by side on a screen, one above the other on a phone
    with gr.Row(elem_id="present-explainer"):
        blocks_plot = gr.Plot(first[0], show_label=False, min_width=340, elem_id="explain-blocks")
        ceiling_plot = gr.Plot(first[1], show_label=False, min_width=340, elem_id="explain-ceiling")
    plot = [blocks_plot, ceiling_plot]

    tab.select(refresh, [sweep], [sweep], **PRIVATE)
    refresh_button.click(refresh, [sweep], [sweep], **PRIVATE)
    reference_button.click(add_reference, [sweep], [sweep], **PRIVATE)
    sweep.change(show, [sweep], [deck, status, measured, prompts, batch, gpus, *plot], **PRIVATE)
    for slider in (prompts, batch, gpus):
        slider.input(redraw, [measured, prompts, batch, gpus], plot, **PRIVATE)

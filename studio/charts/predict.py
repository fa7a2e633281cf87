"""The What-if panel of the Analysis tab: predictions drawn beside the measured
points, and the handler the panel's button calls. Pure figures, no torch.

Measurements are filled circles joined by a line (as on every chart of the
studio); predictions are hollow diamonds with their interval as an error bar and
no line, so a prediction is never read as something that was run."""

from __future__ import annotations

import plotly.graph_objects as go

from runner.config import ConfigError
from studio.analysis.predict import describe_held_out

MEASURED_COLOR = "#1f77b4"
PREDICTED_COLOR = "#d62728"


def prediction_figure(result: dict) -> go.Figure:
    """Tokens/s against GPU count: the sweep's measured medians at the requested
    setting, and every prediction with its low-high interval."""
    measured = [r for r in result["predictions"] if r["measured"]]
    rows = [r for r in result["predictions"] if r["tokens_per_second"] is not None]  # declined: no marker
    fig = go.Figure()
    if measured:
        fig.add_trace(go.Scatter(
            x=[r["gpus"] for r in measured], y=[r["measured"]["tokens_per_second"] for r in measured],
            mode="markers+lines", name="measured (median of repeats)",
            marker={"symbol": "circle", "size": 10, "color": MEASURED_COLOR}, line={"color": MEASURED_COLOR}))
    fig.add_trace(go.Scatter(
        x=[r["gpus"] for r in rows], y=[r["tokens_per_second"] for r in rows], mode="markers",
        name="predicted (interval)",
        marker={"symbol": "diamond-open", "size": 12, "color": PREDICTED_COLOR, "line": {"width": 2}},
        error_y={"type": "data", "symmetric": False, "color": PREDICTED_COLOR,
                 "array": [r["high"] - r["tokens_per_second"] for r in rows],
                 "arrayminus": [r["tokens_per_second"] - r["low"] for r in rows]},
        customdata=[[r["rounds"], r["seconds"]] for r in rows],
        hovertemplate="%{x} GPUs: %{y:.1f} tokens/s predicted<br>%{customdata[0]} rounds, "
                      "%{customdata[1]:.2f} s<extra></extra>"))
    req = result["request"]
    held = result["held_out"]
    err = ("" if held["median_abs_pct_error"] is None
           else f" · held-out median error {held['median_abs_pct_error']:.0f}%")
    fig.update_layout(
        title=f"What if: batch {req['batch_size']}, {req['num_prompts']} prompts, "
              f"{req['max_new_tokens']} new tokens{err}",
        xaxis_title="GPUs (processes)", yaxis_title="tokens/s", xaxis={"dtick": 1}, template="plotly_white",
        legend={"orientation": "h", "y": -0.2}, margin={"t": 60})
    return fig


def what_if_text(result: dict) -> str:
    sentence = describe_held_out(result["held_out"])
    lines = [sentence[0].upper() + sentence[1:] + "."]
    lines += [f"- {n}" for n in result["notes"]]
    return "\n".join(lines)


def what_if(store, sweep_id, gpus, batch_size, num_prompts, max_new_tokens) -> tuple[go.Figure, str]:
    """The panel's button: a ConfigError is the message the page shows, the setting named."""
    from studio.analysis.what_if import parse_request, predict_stored

    if sweep_id in (None, ""):
        raise ConfigError("sweep", "choose a sweep (A) above first")
    request = parse_request(gpus, batch_size, num_prompts, max_new_tokens)  # an empty box: the sweep's value
    result = predict_stored(store, int(sweep_id), request)
    return prediction_figure(result), what_if_text(result)


def build_what_if(gr, store, sweep_dropdown, private: dict) -> tuple:
    """The panel's components and its one private event, inside the caller's layout;
    returns (GPU counts box, figure, text) for the tab to fill when a sweep opens."""
    with gr.Accordion("What if: predict GPU counts and settings not run", open=False, elem_id="what-if"):
        with gr.Row():
            gpus = gr.Textbox(label="GPU counts", value="1,2,3,4,8", elem_id="what-if-gpus")
            # text boxes: a number box shows 0 when empty, and 0 is a value to refuse, not "the sweep's"
            batch = gr.Textbox(label="Batch size", value="", placeholder="the sweep's", max_lines=1)
            prompts = gr.Textbox(label="Prompts", value="", placeholder="the sweep's", max_lines=1)
            tokens = gr.Textbox(label="New tokens", value="", placeholder="the sweep's", max_lines=1)
            button = gr.Button("Predict", scale=0, min_width=120, elem_id="what-if-button")
        figure = gr.Plot(label="What if", show_label=False, elem_id="what-if-plot")
        text = gr.Markdown(elem_id="what-if-text")

    def handle(sweep_id, g, b, p, t):
        try:
            return what_if(store, sweep_id, g, b, p, t)
        except ConfigError as exc:
            raise gr.Error(str(exc), print_exception=False) from None

    button.click(handle, [sweep_dropdown, gpus, batch, prompts, tokens], [figure, text], **private)
    return gpus, figure, text

"""Figures of the presentation and of the plateau explainer: pure functions of
the analysis dict (or of prompts, batch size and GPU count) to `go.Figure`s.

The rounds come from `studio.analysis.scaling_models` (the worker's own split), so a
block drawn here is a generate call the worker really makes."""

from __future__ import annotations

import plotly.graph_objects as go

from studio.analysis.scaling_models import quantisation
from studio.charts.analysis import COLORS, LAYOUT

MAX_EXPLAINER_GPUS = 16  # beyond this the rank columns get too thin to read as blocks
BUSIEST = "#d95f02"
OTHER = "#7fa6d9"


def check_explainer_inputs(num_prompts, batch_size, gpus) -> tuple[int, int, int]:
    """The explainer's three settings as ints, or a ValueError naming the setting and the fix."""
    out = []
    for name, value, low, high in (("prompts", num_prompts, 1, None), ("batch size", batch_size, 1, None),
                                   ("GPU count", gpus, 1, MAX_EXPLAINER_GPUS)):
        try:
            as_float = float(value)
        except (TypeError, ValueError):
            raise ValueError(f"{name} must be a whole number, got {value!r}") from None
        if not as_float.is_integer():
            raise ValueError(f"{name} must be a whole number, got {value!r}")
        number = int(as_float)
        if number < low or (high is not None and number > high):
            bound = f"between {low} and {high}" if high is not None else f"at least {low}"
            raise ValueError(f"{name} must be {bound}, got {number}")
        out.append(number)
    return out[0], out[1], out[2]


def block_positions(rows: list[dict]) -> list[dict]:
    """One block per generate call: where it stands (x around its GPU count, one
    column per rank) and whether its rank is the busiest. The busiest rank sets
    the run's time, so its column is the one to look at."""
    blocks = []
    for row in rows:
        n, per_rank = row["gpus"], row["rounds_per_rank"]
        width = 0.8 / len(per_rank)
        for rank, rounds in enumerate(per_rank):
            x = n - 0.4 + width * (rank + 0.5)
            for k in range(rounds):
                blocks.append({"gpus": n, "rank": rank, "round": k + 1, "x": x, "width": width,
                               "busiest": rounds == row["rounds"]})
    return blocks


def _add_blocks(fig: go.Figure, rows: list[dict], **where) -> None:
    blocks = block_positions(rows)
    for busiest, name, color in ((True, "rounds on the busiest rank (sets the time)", BUSIEST),
                                 (False, "rounds on the other ranks", OTHER)):
        mine = [b for b in blocks if b["busiest"] == busiest]
        if not mine:
            continue
        fig.add_trace(go.Bar(
            x=[b["x"] for b in mine], y=[1] * len(mine), base=[b["round"] - 1 for b in mine],
            width=[b["width"] * 0.92 for b in mine], name=name, marker=dict(color=color, line=dict(color="white",
                                                                                                   width=1.5)),
            customdata=[[b["gpus"], b["rank"], b["round"]] for b in mine],
            hovertemplate="%{customdata[0]} GPU(s), rank %{customdata[1]}: round %{customdata[2]}<extra></extra>"),
            **where)
    fig.add_trace(go.Scatter(
        x=[r["gpus"] for r in rows], y=[r["rounds"] + 0.35 for r in rows], mode="text", showlegend=False,
        text=[f"{r['rounds']}" for r in rows], textfont=dict(size=15, color=BUSIEST), hoverinfo="skip"), **where)


def rounds_blocks_figure(rows: list[dict], title: str = "Rounds (generate calls) per rank") -> go.Figure:
    """Each rank's generate calls stacked as blocks, a group of columns per GPU
    count: equal tower heights on the busiest rank mean equal run times."""
    fig = go.Figure()
    _add_blocks(fig, rows)
    counts = [r["gpus"] for r in rows]
    fig.update_layout(title=title, barmode="overlay", bargap=0, **LAYOUT)
    fig.update_xaxes(title_text="GPUs (processes): one column per rank", tickvals=counts,
                     range=[min(counts) - 0.6, max(counts) + 0.6] if counts else None)
    fig.update_yaxes(title_text="rounds = time, with a round taking about the same time", dtick=1, rangemode="tozero")
    return fig


def measured_rows(analysis: dict) -> list[dict]:
    """The rounds per rank at each measured count, as the analysis computed them."""
    return [q for q in analysis.get("quantisation") or [] if q.get("rounds_per_rank")]


def throughput_until(analysis: dict, last: int) -> go.Figure:
    """The measured medians up to `last` GPUs with the ideal line over every count,
    axes fixed to the whole sweep so the points grow into a frame that does not move."""
    points = analysis["points"]
    counts = [p["gpus"] for p in points]
    shown = [p for p in points if p["gpus"] <= last]
    base = points[0]["throughput"]["median"]
    top = max(max(p["throughput"]["ci_high"] or p["throughput"]["median"] for p in points),
              base * counts[-1] / counts[0])
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=[counts[0], counts[-1]], y=[base, base * counts[-1] / counts[0]], mode="lines",
                             name=f"ideal: {counts[0]}-GPU throughput × n/{counts[0]}",
                             line=dict(color=COLORS["ideal"], dash="dash")))
    fig.add_trace(go.Scatter(
        x=[p["gpus"] for p in shown], y=[p["throughput"]["median"] for p in shown], mode="lines+markers+text",
        name="measured median tokens/s", line=dict(color=COLORS["measured"], width=3), marker=dict(size=12),
        text=[f"{p['throughput']['median']:.0f}" for p in shown], textposition="top left",
        hovertemplate="n=%{x}<br>median %{y:.1f} tokens/s<extra></extra>"))
    now = shown[-1]
    fig.update_layout(title=f"{now['gpus']} GPU(s): {now['throughput']['median']:.1f} tokens/s, "
                            f"speedup {now['speedup']:.2f}x (ideal {now['gpus'] / counts[0]:.0f}x)", **LAYOUT)
    fig.update_xaxes(title_text="GPUs (processes)", tickvals=counts, range=[counts[0] - 0.4, counts[-1] + 0.4])
    fig.update_yaxes(title_text="tokens / second", range=[0, top * 1.1])
    return fig


def whatif_figure(analysis: dict) -> go.Figure:
    """Measured medians, then the counts not run: the rounds ceiling (dotted, an
    upper bound) and the prediction as hollow diamonds with its interval, the same
    rows (`studio.analysis.what_if.what_if_rows`) the Analysis tab and the report show."""
    points, counts = analysis["points"], analysis["counts"]
    rows = analysis.get("what_if_rows") or []
    fig = go.Figure()
    with_ceiling = [r for r in rows if r["ceiling"] is not None]
    if with_ceiling:
        fig.add_trace(go.Scatter(
            x=[r["gpus"] for r in with_ceiling], y=[r["ceiling"] for r in with_ceiling], mode="lines+markers",
            line_shape="hv", name="ceiling: what the rounds allow",
            line=dict(color=COLORS["quantisation"], dash="dot"), marker=dict(size=6)))
    guessed = [r for r in rows if r["measured"] is None and r["predicted"] is not None]
    if guessed:
        fig.add_trace(go.Scatter(
            x=[r["gpus"] for r in guessed], y=[r["predicted"] for r in guessed], mode="markers",
            name="predicted (interval)", marker=dict(symbol="diamond-open", size=13, color=COLORS["usl"],
                                                     line=dict(width=2)),
            error_y=dict(type="data", symmetric=False, color=COLORS["usl"],
                         array=[r["high"] - r["predicted"] for r in guessed],
                         arrayminus=[r["predicted"] - r["low"] for r in guessed])))
    fig.add_trace(go.Scatter(x=counts, y=[p["throughput"]["median"] for p in points], mode="lines+markers",
                             name="measured median", line=dict(color=COLORS["measured"], width=3),
                             marker=dict(size=11)))
    top = max([counts[-1], *(r["gpus"] for r in rows)])
    if top > counts[-1]:
        fig.add_vrect(x0=counts[-1], x1=top, fillcolor="#999", opacity=0.08, line_width=0,
                      annotation_text="not measured", annotation_position="top left")
    fig.update_layout(title="What if: counts not run (not measured)", **LAYOUT)
    fig.update_xaxes(title_text="GPUs (processes)", tickmode="array", tickvals=sorted({*counts, *(r["gpus"] for r in rows)}))
    fig.update_yaxes(title_text="tokens / second", rangemode="tozero")
    return fig


def explainer_figures(num_prompts, batch_size, gpus, analysis: dict | None = None) -> tuple[go.Figure, go.Figure]:
    """The plateau explainer: per-rank blocks for 1..`gpus` GPUs, and the quantisation
    ceiling they imply with the sweep's measured medians on top when the analysis is
    given. The ceiling is in tokens/s scaled from the sweep's smallest count when there
    is one, else a speedup over 1 GPU. Two figures, not two subplots of one: the page
    sets them side by side or, on a phone, one above the other, where subplots' titles
    and axis titles ran into each other (issue 24 item 6)."""
    num_prompts, batch_size, gpus = check_explainer_inputs(num_prompts, batch_size, gpus)
    rows = quantisation(num_prompts, batch_size, range(1, gpus + 1), base=1)
    points = (analysis or {}).get("points") or []
    layout = {**LAYOUT, "height": 440, "margin": dict(l=60, r=16, t=70, b=110)}
    blocks = go.Figure()
    _add_blocks(blocks, rows)
    blocks.update_layout(title=dict(text=f"Rounds per rank<br><sub>{num_prompts} prompts, batch {batch_size}</sub>"),
                         barmode="overlay", bargap=0, **layout)
    blocks.update_xaxes(title_text="GPUs: one column per rank", tickvals=list(range(1, gpus + 1)),
                        range=[0.4, gpus + 0.6])
    blocks.update_yaxes(title_text="rounds (generate calls)", rangemode="tozero")
    if points:
        base_n, base_value = points[0]["gpus"], points[0]["throughput"]["median"]
        ceiling = quantisation(num_prompts, batch_size, range(1, max(gpus, points[-1]["gpus"]) + 1), base=base_n)
        y_ceiling = [base_value * q["ceiling_speedup"] for q in ceiling]
        y_title = "tokens / second"
    else:
        ceiling = rows
        y_ceiling = [q["ceiling_speedup"] for q in ceiling]
        y_title = "speedup over 1 GPU"
    limit = go.Figure()
    limit.add_trace(go.Scatter(
        x=[q["gpus"] for q in ceiling], y=y_ceiling, mode="lines+markers", line_shape="hv",
        name="quantisation ceiling", line=dict(color=COLORS["quantisation"], width=2.5),
        customdata=[[q["rounds"]] for q in ceiling],
        hovertemplate="n=%{x}<br>%{y:.3g}<br>%{customdata[0]} rounds on the busiest rank<extra></extra>"))
    if points:
        limit.add_trace(go.Scatter(x=[p["gpus"] for p in points], y=[p["throughput"]["median"] for p in points],
                                   mode="markers", name="measured median (this sweep)",
                                   marker=dict(color=COLORS["measured"], size=12, symbol="circle")))
    limit.update_layout(title=dict(text="Quantisation ceiling" + ("<br><sub>with the sweep's measured medians</sub>"
                                                                  if points else "")), showlegend=True, **layout)
    limit.update_xaxes(title_text="GPUs (processes)", dtick=1)
    limit.update_yaxes(title_text=y_title, rangemode="tozero")
    return blocks, limit

"""Plotly figures of a grid sweep: the Pareto front, a heatmap over two settings,
and lines against any setting. Pure functions of stored rows and of
`studio.analysis.grid` results; every median comes from `studio.analysis.stats`."""

from __future__ import annotations

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from runner.layout import layout_name, tp_fits
from studio.analysis.stats import SETTING_AXES, scaling_series
from studio.charts.figures import COLORS, FONT, empty_figure
from studio.charts.layouts import tp_colors
from studio.sweeps.grid import LABELS

GRID_AXES = ("gpus", *SETTING_AXES)  # "gpus" is the world size
AXIS_TITLES = {"gpus": "GPUs (processes)", **{a: LABELS[a] for a in SETTING_AXES}}
SYMBOLS = ("circle", "square", "diamond", "triangle-up", "x", "star")


def _setting_text(point: dict) -> str:
    text = ", ".join(f"{AXIS_TITLES[a]} {point[a]}" for a in GRID_AXES if point.get(a) is not None)
    tp = point["tp_size"]
    if tp_fits(tp, point["gpus"]):
        text += f"<br>layout {layout_name(point['gpus'], tp)}"
    return text


def pareto_figure(grid: dict, title: str = "Throughput per GPU against speed per user") -> go.Figure:
    points, front = grid.get("pareto_points") or [], grid.get("pareto") or []
    if not points:
        return empty_figure("No run with per-request latency yet", title)
    fig = go.Figure()
    # a layout sweep: a colour per tensor-parallel size, a marker per GPU count
    by_layout = len({p["tp_size"] for p in points}) > 1
    counts = sorted({p["gpus"] for p in points})
    colors = tp_colors(p["tp_size"] for p in points) if by_layout else \
        {g: COLORS[i % len(COLORS)] for i, g in enumerate(counts)}
    groups = sorted({(p["tp_size"] if by_layout else 0, p["gpus"]) for p in points})
    for tp, gpus in groups:
        mine = [p for p in points if p["gpus"] == gpus and (not by_layout or p["tp_size"] == tp)]
        name = f"{layout_name(gpus, tp)} ({gpus} GPUs)" if by_layout else f"{gpus} GPU(s)"
        fig.add_trace(go.Scatter(
            x=[p["tokens_per_second_per_user"] for p in mine], y=[p["tokens_per_second_per_gpu"] for p in mine],
            mode="markers", name=name, legendgroup=str(tp) if by_layout else None,
            marker=dict(size=11, color=colors[tp if by_layout else gpus],
                        symbol=SYMBOLS[counts.index(gpus) % len(SYMBOLS)] if by_layout else "circle"),
            hovertext=[f"run {p['run_id']}<br>{_setting_text(p)}<br>{p['tokens_per_second_per_user']:.1f} tokens/s "
                       f"per user, {p['tokens_per_second_per_gpu']:.1f} per GPU" for p in mine], hoverinfo="text"))
    fig.add_trace(go.Scatter(
        x=[p["tokens_per_second_per_user"] for p in front], y=[p["tokens_per_second_per_gpu"] for p in front],
        mode="lines", name="Pareto front", line=dict(color="#111827", width=2, dash="dot", shape="hv"),
        hoverinfo="skip"))
    fig.update_layout(title=dict(text=title, x=0.01), template="plotly_white", font=FONT, height=440,
                      legend=dict(orientation="h", yanchor="top", y=-0.18, x=0), margin=dict(l=60, r=20, t=60, b=50))
    fig.update_xaxes(title_text="tokens/s per user (1000 / TPOT p50)", rangemode="tozero")
    fig.update_yaxes(title_text="tokens/s per GPU", rangemode="tozero")
    return fig


def cell_medians(runs: list[dict], x_axis: str, y_axis: str) -> dict[tuple, float]:
    """Median tokens/s per (x value, y value); where other settings vary too, the best of them."""
    out: dict[tuple, float] = {}
    for series in scaling_series(runs):
        for point in series.points:
            values = {"gpus": point.x, **series.setting}
            key = (values[x_axis], values[y_axis])
            out[key] = max(out.get(key, 0.0), point.median("tokens_per_second"))
    return out


def heatmap_figure(runs: list[dict], x_axis: str = "gpus", y_axis: str = "batch_size",
                   title: str | None = None) -> go.Figure:
    title = title or f"Tokens/s over {AXIS_TITLES[x_axis]} and {AXIS_TITLES[y_axis]}"
    cells = cell_medians(runs, x_axis, y_axis)
    xs = sorted({x for x, _ in cells}, key=str)
    ys = sorted({y for _, y in cells}, key=str)
    if len(xs) * len(ys) < 2:
        return empty_figure("Needs two or more values of a setting", title)
    z = [[cells.get((x, y)) for x in xs] for y in ys]
    fig = go.Figure(go.Heatmap(
        x=[str(x) for x in xs], y=[str(y) for y in ys], z=z, colorscale="Blues", colorbar=dict(title="tokens/s"),
        text=[[f"{v:.1f}" if v is not None else "" for v in row] for row in z], texttemplate="%{text}",
        hovertemplate=f"{AXIS_TITLES[x_axis]} %{{x}}, {AXIS_TITLES[y_axis]} %{{y}}: %{{z:.1f}} tokens/s<extra></extra>"))
    fig.update_layout(title=dict(text=title, x=0.01), template="plotly_white", font=FONT, height=420,
                      margin=dict(l=70, r=20, t=60, b=50))
    fig.update_xaxes(title_text=AXIS_TITLES[x_axis], type="category")
    fig.update_yaxes(title_text=AXIS_TITLES[y_axis], type="category")
    return fig


def lines_figure(runs: list[dict], x_axis: str = "gpus", color: str = "batch_size", facet: str | None = None,
                 title: str | None = None) -> go.Figure:
    """Median tokens/s against one setting, a line per value of another, a panel per value of a third."""
    title = title or f"Tokens/s against {AXIS_TITLES[x_axis]}"
    rows = []
    for series in scaling_series(runs):
        for point in series.points:
            rows.append({"gpus": point.x, **series.setting, "value": point.median("tokens_per_second")})
    if not rows:
        return empty_figure("No finished runs to plot yet", title)
    panels = sorted({r[facet] for r in rows}, key=str) if facet else [None]
    fig = make_subplots(rows=1, cols=len(panels), shared_yaxes=True,
                        subplot_titles=[f"{AXIS_TITLES[facet]} {v}" for v in panels] if facet else None)
    lines = sorted({r[color] for r in rows}, key=str)
    for col, panel in enumerate(panels, start=1):
        for i, value in enumerate(lines):
            mine = sorted((r for r in rows if r[color] == value and (facet is None or r[facet] == panel)),
                          key=lambda r: r[x_axis])
            if not mine:
                continue
            fig.add_trace(go.Scatter(x=[r[x_axis] for r in mine], y=[r["value"] for r in mine], mode="lines+markers",
                                     name=f"{AXIS_TITLES[color]} {value}", legendgroup=str(value), showlegend=col == 1,
                                     line=dict(color=COLORS[i % len(COLORS)], width=2.5)), row=1, col=col)
    fig.update_layout(title=dict(text=title, x=0.01), template="plotly_white", font=FONT, height=420,
                      legend=dict(orientation="h", yanchor="top", y=-0.18, x=0), margin=dict(l=60, r=20, t=70, b=50))
    # every setting on the x axis is a whole number: ticks at the values run, never at 1.2, 1.4
    fig.update_xaxes(title_text=AXIS_TITLES[x_axis], tickmode="array",
                     tickvals=sorted({r[x_axis] for r in rows if r[x_axis] is not None}))
    fig.update_yaxes(title_text="tokens / second", rangemode="tozero", col=1)
    return fig

"""Plotly figures of a layout sweep: tokens/s, TTFT p50 and TPOT p50 per layout at
equal GPU count, as grouped bars (a group per GPU count, a colour per tensor-parallel
size). Pure functions of `studio.analysis.layouts.layout_rows`; every median comes from
`studio.analysis.stats`."""

from __future__ import annotations

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from runner.layout import tp_label
from studio.charts.figures import COLORS, FONT, empty_figure

PANELS = (("tokens_per_second", "tokens/s", "{:.1f}"), ("ttft_ms_p50", "TTFT p50 (ms)", "{:.0f}"),
          ("tpot_ms_p50", "TPOT p50 (ms)", "{:.1f}"))


def tp_colors(tps) -> dict[int, str]:
    """One colour per tensor-parallel size, the same in every layout chart."""
    return {tp: COLORS[i % len(COLORS)] for i, tp in enumerate(sorted(set(tps)))}


def layout_figure(rows: list[dict], title: str = "Layouts at equal GPU count") -> go.Figure:
    """Median tokens/s, TTFT p50 and TPOT p50 of each layout, grouped by GPU count.
    A panel whose figure no run measured is left out."""
    if len({r["tp"] for r in rows}) < 2:
        return empty_figure("Needs runs of two or more tensor-parallel sizes (tp)", title)
    panels = [p for p in PANELS if any(r[p[0]] is not None for r in rows)]
    fig = make_subplots(rows=1, cols=len(panels), subplot_titles=[p[1] for p in panels], horizontal_spacing=0.08)
    colors = tp_colors(r["tp"] for r in rows)
    counts = sorted({r["gpus"] for r in rows})
    for col, (key, name, fmt) in enumerate(panels, start=1):
        for tp, color in colors.items():
            mine = {r["gpus"]: r for r in rows if r["tp"] == tp and r[key] is not None}
            if not mine:
                continue
            xs = [g for g in counts if g in mine]
            fig.add_trace(go.Bar(
                x=[f"{g} GPU{'s' if g > 1 else ''}" for g in xs], y=[mine[g][key] for g in xs], name=tp_label(tp),
                legendgroup=str(tp), showlegend=col == 1, marker_color=color,
                text=[mine[g]["layout"] for g in xs], textposition="inside", insidetextanchor="start",
                hovertext=[f"{mine[g]['layout']} on {g} GPU(s): {fmt.format(mine[g][key])} {name} "
                           f"(median of {mine[g]['runs']} run(s))" for g in xs], hoverinfo="text"),
                row=1, col=col)
        fig.update_yaxes(title_text=name, rangemode="tozero", row=1, col=col)
        fig.update_xaxes(type="category", categoryorder="array",
                         categoryarray=[f"{g} GPU{'s' if g > 1 else ''}" for g in counts], row=1, col=col)
    fig.update_layout(title=dict(text=title, x=0.01), template="plotly_white", font=FONT, height=430, barmode="group",
                      legend=dict(orientation="h", yanchor="top", y=-0.14, x=0), margin=dict(l=60, r=20, t=80, b=50))
    return fig


def comm_figure(comm: list[dict], title: str = "Share of a decode step in all-reduce") -> go.Figure:
    """Per tensor-parallel size and GPU count, the median share of a sample decode spent in
    the tensor-parallel collectives (runs.comm_fraction)."""
    points = [(c["tp"], p) for c in comm for p in c["per_count"] if p["comm_fraction"] is not None]
    if not points:
        return empty_figure("No run measured its all-reduce share (tp 1 has none)", title)
    colors = tp_colors(tp for tp, _ in points)
    fig = go.Figure()
    for tp, color in colors.items():
        mine = [p for t, p in points if t == tp]
        fig.add_trace(go.Bar(x=[p["layout"] for p in mine], y=[100 * p["comm_fraction"] for p in mine],
                             name=tp_label(tp), marker_color=color,
                             hovertemplate="%{x}: %{y:.1f}% of a decode step<extra></extra>"))
    fig.update_layout(title=dict(text=title, x=0.01), template="plotly_white", font=FONT, height=360,
                      legend=dict(orientation="h", yanchor="top", y=-0.2, x=0), margin=dict(l=60, r=20, t=60, b=50))
    fig.update_yaxes(title_text="% of a decode step", rangemode="tozero")
    return fig

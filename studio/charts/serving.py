"""Plotly figure of a server sweep (issue 26): p50 latency and p99 TTFT against
offered rate, one line per GPU count and layout, the knee marked on each and the
SLO's TTFT limit drawn. A pure function of `studio.analysis.serving.curves`."""

from __future__ import annotations

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from studio.analysis.serving import Curve
from studio.charts.figures import COLORS, FONT, empty_figure

TITLE = "Latency against offered rate"


def latency_rate_figure(found: list[Curve], slo: dict | None = None, title: str = TITLE) -> go.Figure:
    if not any(len(c.points) for c in found):
        return empty_figure("No server load with an offered rate succeeded", title)
    fig = make_subplots(rows=1, cols=2, subplot_titles=("latency p50 (ms)", "TTFT p99 (ms)"),
                        horizontal_spacing=0.1)
    for i, curve in enumerate(found):
        color = COLORS[i % len(COLORS)]
        xs = [p.rate for p in curve.points]
        for col, key in ((1, "latency_ms_p50"), (2, "ttft_ms_p99")):
            fig.add_trace(go.Scatter(
                x=xs, y=[getattr(p, key) for p in curve.points], mode="lines+markers", name=curve.name,
                legendgroup=curve.name, showlegend=col == 1, line=dict(color=color),
                hovertemplate=f"{curve.name}<br>%{{x:.3g}} req/s offered<br>%{{y:.0f}} ms<extra></extra>"),
                row=1, col=col)
        at = [p for p in curve.points if curve.knee is not None and p.rate == curve.knee]
        if at:
            fig.add_trace(go.Scatter(
                x=[at[0].rate], y=[at[0].latency_ms_p50], mode="markers+text", text=["knee"],
                textposition="top center", name=f"{curve.name}: knee", legendgroup=curve.name, showlegend=False,
                marker=dict(color=color, size=14, symbol="diamond-open", line=dict(width=2)),
                hovertemplate=f"{curve.name}: knee at %{{x:.3g}} req/s<extra></extra>"), row=1, col=1)
    if slo:
        fig.add_hline(y=slo["ttft_ms"], line=dict(color="#6b7280", dash="dash"), row=1, col=2,
                      annotation_text=f"SLO {slo['ttft_ms']:g} ms", annotation_position="top left")
    fig.update_xaxes(title_text="offered rate (req/s)")
    fig.update_layout(template="plotly_white", font=FONT, height=380, title=dict(text=title, x=0.01),
                      margin=dict(l=50, r=20, t=70, b=50), legend=dict(orientation="h", y=-0.25))
    return fig

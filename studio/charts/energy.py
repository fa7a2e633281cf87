"""Joules per token against GPU count: a pure function from stored run rows to a
plotly figure, drawn on the Compare and Analysis tabs when a sweep has energy.

Only succeeded runs with a measured `joules_per_token` are drawn (the medians
come from `studio.analysis.stats`, like every other chart's): a run without an energy
counter has no point, and the empty chart says why instead of a zero."""

from __future__ import annotations

import plotly.graph_objects as go

from studio.analysis.stats import scaling_series
from studio.charts.figures import series_labels

LAYOUT = dict(template="plotly_white", height=470, margin=dict(l=60, r=20, t=50, b=120),
              legend=dict(orientation="h", yanchor="top", y=-0.17, x=0))


def has_energy(runs: list[dict]) -> bool:
    return any(r.get("joules_per_token") is not None for r in runs)


def energy_reasons(runs: list[dict]) -> list[str]:
    """Why the succeeded runs without a figure have none, each reason once."""
    return sorted({r["energy_note"] for r in runs if r.get("status") == "succeeded"
                   and r.get("joules_per_token") is None and r.get("energy_note")})


def joules_per_token_figure(runs: list[dict], title: str = "Energy per token against GPU count") -> go.Figure:
    all_series = scaling_series(runs)
    labels = series_labels(all_series)
    fig = go.Figure()
    fig.update_layout(title=title, **LAYOUT)
    drawn = []
    for series in all_series:
        points = [p for p in series.points if p.median("joules_per_token") is not None]
        if not points:
            continue
        drawn += [p.x for p in points]
        fig.add_trace(go.Scatter(
            x=[p.x for p in points], y=[p.median("joules_per_token") for p in points], mode="lines+markers",
            name=labels[series.key], customdata=[len(p.values("joules_per_token")) for p in points],
            hovertemplate="%{x} GPU(s): %{y:.4g} J/token (median of %{customdata} run(s))<extra></extra>"))
    if not drawn:
        reasons = energy_reasons(runs)
        why = "; ".join(reasons) if reasons else "no succeeded runs"
        fig.add_annotation(text=f"No energy measured for these runs ({why}).", showarrow=False,
                           x=0.5, y=0.5, xref="paper", yref="paper")
        fig.update_xaxes(visible=False)
        fig.update_yaxes(visible=False)
        return fig
    fig.update_xaxes(title="GPUs", tickmode="array", tickvals=sorted(set(drawn)))
    fig.update_yaxes(title="joules per token (measured, NVML)", rangemode="tozero")
    return fig

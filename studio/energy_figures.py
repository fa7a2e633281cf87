"""Joules per token against GPU count: a pure function from stored run rows to a
plotly figure. Not yet on a page; the Compare and Analysis tabs can call it.

Only succeeded runs with a measured `joules_per_token` are drawn: a run without
an energy counter has no point, and the empty chart says why instead of a zero."""

from __future__ import annotations

import statistics

import plotly.graph_objects as go

LAYOUT = dict(template="plotly_white", height=470, margin=dict(l=60, r=20, t=50, b=120),
              legend=dict(orientation="h", yanchor="top", y=-0.17, x=0))


def energy_points(runs: list[dict]) -> tuple[dict[str, list[tuple[int, float, int]]], list[str]]:
    """Per series (model, mode, batch), (total GPUs, median joules per token, runs)
    sorted by GPU count; and the distinct reasons the runs left out have no figure."""
    grouped: dict[str, dict[int, list[float]]] = {}
    reasons: set[str] = set()
    for run in runs:
        if run.get("status") != "succeeded":
            continue
        value = run.get("joules_per_token")
        if value is None:
            if run.get("energy_note"):
                reasons.add(run["energy_note"])
            continue
        label = f"{run.get('model')} · {run.get('mode')} · batch {run.get('batch_size')}"
        gpus = int(run.get("num_gpus") or 1) * int(run.get("num_nodes") or 1)
        grouped.setdefault(label, {}).setdefault(gpus, []).append(float(value))
    series = {label: [(g, statistics.median(v), len(v)) for g, v in sorted(by_gpus.items())]
              for label, by_gpus in grouped.items()}
    return series, sorted(reasons)


def joules_per_token_figure(runs: list[dict], title: str = "Energy per token against GPU count") -> go.Figure:
    series, reasons = energy_points(runs)
    fig = go.Figure()
    fig.update_layout(title=title, **LAYOUT)
    if not series:
        why = "; ".join(reasons) if reasons else "no succeeded runs"
        fig.add_annotation(text=f"No energy measured for these runs ({why}).", showarrow=False,
                           x=0.5, y=0.5, xref="paper", yref="paper")
        fig.update_xaxes(visible=False)
        fig.update_yaxes(visible=False)
        return fig
    xs = sorted({g for points in series.values() for g, _, _ in points})
    for label, points in series.items():
        fig.add_trace(go.Scatter(
            x=[g for g, _, _ in points], y=[j for _, j, _ in points], mode="lines+markers", name=label,
            customdata=[n for _, _, n in points],
            hovertemplate="%{x} GPU(s): %{y:.4g} J/token (median of %{customdata} run(s))<extra></extra>"))
    fig.update_xaxes(title="GPUs", tickmode="array", tickvals=xs)
    fig.update_yaxes(title="joules per token (measured, NVML)", rangemode="tozero")
    return fig

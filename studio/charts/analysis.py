"""Plotly figures for the scaling analysis: pure functions from the dicts
`studio.analysis.analyse` returns (and stored rank rows) to `go.Figure`s.

Every figure draws from the same numbers the explanation text quotes, so what
the words say can be checked against what the charts show."""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go

from runner.phases import ORDER as PHASE_ORDER
from studio.analysis.scaling_models import usl

COLORS = {
    "measured": "#1f4e9c", "repeats": "rgba(31,78,156,0.35)", "ideal": "#888888", "quantisation": "#d95f02",
    "amdahl": "#7570b3", "usl": "#1b9e77", "knee": "#e7298a", "b": "#a6761d",
}
PHASE_COLORS = {
    "launch": "#c7c7c7", "imports": "#9edae5", "load": "#aec7e8", "warmup": "#ffbb78", "barrier": "#dbdb8d",
    "generate": "#2ca02c", "gather": "#d62728",
}
# legends under the plot: long sweep names in titles never collide with them
LAYOUT = dict(template="plotly_white", height=470, margin=dict(l=60, r=20, t=50, b=120),
              legend=dict(orientation="h", yanchor="top", y=-0.17, x=0))


def _empty(title: str, message: str) -> go.Figure:
    fig = go.Figure()
    fig.update_layout(title=title, **LAYOUT)
    fig.add_annotation(text=message, showarrow=False, x=0.5, y=0.5, xref="paper", yref="paper")
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False)
    return fig


def _error_bars(points: list[dict], key: str = "throughput") -> dict | None:
    """Asymmetric bars from the median to the ends of the 95% interval of the mean."""
    plus, minus, any_ci = [], [], False
    for p in points:
        s = p[key]
        if s["ci_low"] is None:
            plus.append(0.0)
            minus.append(0.0)
        else:
            any_ci = True
            plus.append(max(0.0, s["ci_high"] - s["median"]))
            minus.append(max(0.0, s["median"] - s["ci_low"]))
    return dict(type="data", symmetric=False, array=plus, arrayminus=minus, thickness=1.5, width=6) if any_ci else None


def _sweep_label(analysis: dict) -> str:
    # the id only: a chart title holding the sweep's name is cut at the chart's edge (the picker names it)
    return f"#{analysis['sweep']['id']}"


def _fit_traces(fig: go.Figure, analysis: dict, scale: float = 1.0, speedup: bool = False) -> None:
    """Fitted curves: solid over the measured counts, dotted where extrapolated."""
    counts = analysis["counts"]
    top = analysis.get("extrapolate_to") or counts[-1]
    for name in ("amdahl", "usl"):
        fit = analysis["fits"].get(name) or {}
        if fit.get("lam") is None:
            continue
        label = "Amdahl fit" if name == "amdahl" else "USL fit"
        norm = float(usl(counts[0], fit["lam"], fit["sigma"], fit["kappa"])) if speedup else 1.0
        for lo, hi, dash, show in ((counts[0], counts[-1], "solid", True), (counts[-1], top, "dot", False)):
            if hi <= lo:
                continue
            n = np.linspace(lo, hi, 120)
            y = usl(n, fit["lam"], fit["sigma"], fit["kappa"]) / norm * scale
            fig.add_trace(go.Scatter(
                x=n, y=y, mode="lines", name=label + ("" if show else " (extrapolated)"), legendgroup=name,
                showlegend=show, line=dict(color=COLORS[name], dash=dash, width=2),
                hovertemplate=f"{label}<br>n=%{{x:.1f}}<br>%{{y:.3g}}<extra></extra>"))


def throughput_figure(analysis: dict, compare_with: dict | None = None) -> go.Figure:
    """Median tokens/s per count with 95% CI bars, every repeat, the ideal line,
    the quantisation prediction and both fits (extrapolated past the last count)."""
    title = f"Throughput · sweep {_sweep_label(analysis)}"
    points = analysis["points"]
    if not points:
        return _empty(title, "no succeeded run in this sweep yet")
    fig = go.Figure()
    counts = [p["gpus"] for p in points]
    base = points[0]["throughput"]["median"]
    top = analysis.get("extrapolate_to") or counts[-1]
    rx = [p["gpus"] for p in points for _ in p["throughput"]["values"]]
    ry = [v for p in points for v in p["throughput"]["values"]]
    fig.add_trace(go.Scatter(x=rx, y=ry, mode="markers", name="each repeat",
                             marker=dict(color=COLORS["repeats"], size=7),
                             hovertemplate="n=%{x}<br>%{y:.1f} tokens/s<extra>repeat</extra>"))
    fig.add_trace(go.Scatter(
        x=counts, y=[p["throughput"]["median"] for p in points], mode="lines+markers", name="median (95% CI)",
        error_y=_error_bars(points), line=dict(color=COLORS["measured"], width=3), marker=dict(size=10),
        customdata=[[p["throughput"]["n"]] for p in points],
        hovertemplate="n=%{x}<br>median %{y:.1f} tokens/s<br>%{customdata[0]} repeat(s)<extra></extra>"))
    fig.add_trace(go.Scatter(x=[counts[0], top], y=[base, base * top / counts[0]], mode="lines", name="ideal",
                             line=dict(color=COLORS["ideal"], dash="dash")))
    curve = analysis.get("quantisation_curve") or []
    if curve:
        fig.add_trace(go.Scatter(
            x=[q["gpus"] for q in curve], y=[base * q["ceiling_speedup"] for q in curve], mode="lines+markers",
            line_shape="hv", name="quantisation prediction", line=dict(color=COLORS["quantisation"], dash="dot"),
            marker=dict(size=5), customdata=[[q["rounds"]] for q in curve],
            hovertemplate="n=%{x}<br>%{y:.1f} tokens/s<br>%{customdata[0]} rounds on the busiest rank<extra></extra>"))
    _fit_traces(fig, analysis)
    usl_fit = analysis["fits"].get("usl") or {}
    if usl_fit.get("peak_n") and usl_fit["peak_n"] <= top:
        fig.add_trace(go.Scatter(x=[usl_fit["peak_n"]], y=[usl_fit["peak_throughput"]], mode="markers",
                                 name=f"USL peak n*={usl_fit['peak_n']:.1f}",
                                 marker=dict(symbol="star", size=14, color=COLORS["usl"])))
    if compare_with and compare_with["points"]:
        other = compare_with["points"]
        fig.add_trace(go.Scatter(
            x=[p["gpus"] for p in other], y=[p["throughput"]["median"] for p in other], mode="lines+markers",
            name=f"B: {_sweep_label(compare_with)}", error_y=_error_bars(other),
            line=dict(color=COLORS["b"], width=3), marker=dict(size=9, symbol="diamond")))
    _mark_knee(fig, analysis)
    fig.update_layout(title=title, xaxis_title="GPUs (processes)", yaxis_title="tokens/s", **LAYOUT)
    fig.update_xaxes(dtick=1 if top <= 16 else None, rangemode="tozero")
    fig.update_yaxes(rangemode="tozero")
    return fig


def _mark_knee(fig: go.Figure, analysis: dict) -> None:
    at = (analysis.get("knee") or {}).get("count")
    if at:
        fig.add_vline(x=at, line=dict(color=COLORS["knee"], dash="dash", width=1))
        fig.add_annotation(x=at, y=1.0, yref="paper", text=f"knee: {at}", showarrow=False,
                           font=dict(color=COLORS["knee"]), xanchor="left", yanchor="top")


def speedup_figure(analysis: dict) -> go.Figure:
    """Measured speedup (with CI) beside the ideal line and the quantisation ceiling."""
    title = f"Speedup · sweep {_sweep_label(analysis)}"
    points = analysis["points"]
    if not points:
        return _empty(title, "no succeeded run in this sweep yet")
    counts = [p["gpus"] for p in points]
    top = analysis.get("extrapolate_to") or counts[-1]
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=[counts[0], top], y=[1.0, top / counts[0]], mode="lines", name="ideal",
                             line=dict(color=COLORS["ideal"], dash="dash")))
    curve = analysis.get("quantisation_curve") or []
    if curve:
        fig.add_trace(go.Scatter(
            x=[q["gpus"] for q in curve], y=[q["ceiling_speedup"] for q in curve], mode="lines+markers",
            line_shape="hv", name="quantisation ceiling", line=dict(color=COLORS["quantisation"], width=2),
            marker=dict(size=6), customdata=[[q["rounds"]] for q in curve],
            hovertemplate="n=%{x}<br>ceiling %{y:.2f}x<br>%{customdata[0]} rounds<extra></extra>"))
    plus, minus, any_ci = [], [], False
    for p in points:
        ci = p.get("speedup_ci")
        any_ci = any_ci or ci is not None
        plus.append(max(0.0, ci[1] - p["speedup"]) if ci else 0.0)
        minus.append(max(0.0, p["speedup"] - ci[0]) if ci else 0.0)
    fig.add_trace(go.Scatter(
        x=counts, y=[p["speedup"] for p in points], mode="lines+markers", name="measured",
        error_y=dict(type="data", symmetric=False, array=plus, arrayminus=minus) if any_ci else None,
        line=dict(color=COLORS["measured"], width=3), marker=dict(size=10),
        hovertemplate="n=%{x}<br>speedup %{y:.2f}x<extra></extra>"))
    _fit_traces(fig, analysis, speedup=True)
    _mark_knee(fig, analysis)
    fig.update_layout(title=title, xaxis_title="GPUs (processes)", yaxis_title=f"speedup over {counts[0]} GPU(s)",
                      **LAYOUT)
    fig.update_xaxes(dtick=1 if top <= 16 else None, rangemode="tozero")
    fig.update_yaxes(rangemode="tozero")
    return fig


def efficiency_figure(analysis: dict) -> go.Figure:
    """Efficiency split into its two factors: what quantisation allows and how
    much of that the slower rounds keep (their product is the measured one)."""
    title = f"Efficiency · sweep {_sweep_label(analysis)}"
    points = analysis["points"]
    if not points:
        return _empty(title, "no succeeded run in this sweep yet")
    counts = [p["gpus"] for p in points]
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=counts, y=[1.0] * len(counts), mode="lines", name="ideal",
                             line=dict(color=COLORS["ideal"], dash="dash")))
    fig.add_trace(go.Scatter(x=counts, y=[p["efficiency"] for p in points], mode="lines+markers",
                             name="measured efficiency", line=dict(color=COLORS["measured"], width=3),
                             marker=dict(size=10), hovertemplate="n=%{x}<br>%{y:.0%}<extra></extra>"))
    d = analysis.get("diagnosis")
    if d:
        fig.add_trace(go.Scatter(x=[r["gpus"] for r in d["rows"]], y=[r["quantisation_efficiency"] for r in d["rows"]],
                                 mode="lines+markers", name="allowed by rounds (quantisation)",
                                 line=dict(color=COLORS["quantisation"], dash="dot"),
                                 hovertemplate="n=%{x}<br>%{y:.0%}<extra></extra>"))
        fig.add_trace(go.Scatter(x=[r["gpus"] for r in d["rows"]], y=[r["round_efficiency"] for r in d["rows"]],
                                 mode="lines+markers", name="kept by round time (contention)",
                                 line=dict(color=COLORS["usl"], dash="dashdot"),
                                 hovertemplate="n=%{x}<br>%{y:.0%}<extra></extra>"))
    fig.update_layout(title=title, xaxis_title="GPUs (processes)", yaxis_title="efficiency", **LAYOUT)
    fig.update_xaxes(dtick=1)
    fig.update_yaxes(tickformat=".0%", rangemode="tozero")
    return fig


def timeline_spans(run: dict, ranks: list[dict]) -> list[dict]:
    """Each rank's phases in seconds from the launch, launch itself included
    (from `accelerate launch` starting to the rank's Python starting)."""
    starts = [s["start"] for r in ranks for s in (r.get("timeline") or [])]
    if not starts:
        return []
    first = min(starts)
    origin = first - float((run.get("phases") or {}).get("launch") or 0.0)
    spans = []
    for r in sorted(ranks, key=lambda r: r["rank"]):
        timeline = sorted(r.get("timeline") or [], key=lambda s: s["start"])
        if not timeline:
            continue
        if timeline[0]["start"] > origin:
            spans.append({"rank": r["rank"], "phase": "launch", "start": 0.0, "end": timeline[0]["start"] - origin})
        for s in timeline:
            extra = {k: v for k, v in s.items() if k not in ("phase", "start", "end")}
            spans.append({"rank": r["rank"], "phase": s["phase"], "start": s["start"] - origin,
                          "end": s["end"] - origin, **extra})
    return spans


def timeline_figure(runs: list[tuple[dict, list[dict]]], title: str | None = None) -> go.Figure:
    """Gantt chart of one or more runs' ranks: one row per rank, one bar per
    phase and per generate call, and the imbalance (max/mean rank generation time)."""
    title = title or "Per-rank timeline"
    rows, spans_all, notes = [], [], []
    for run, ranks in runs:
        spans = timeline_spans(run, ranks)
        if not spans:
            continue
        many = len(runs) > 1
        for s in spans:
            s["row"] = f"{run['world_size']} GPU · rank {s['rank']}" if many else f"rank {s['rank']}"
        for label in dict.fromkeys(s["row"] for s in spans):
            rows.append(label)
        spans_all += spans
        times = [r["seconds"] for r in ranks if r.get("seconds")]
        imbalance = max(times) / (sum(times) / len(times)) if times else None
        calls = [sum(1 for s in spans if s["rank"] == r["rank"] and s["phase"] == "generate") for r in ranks]
        notes.append(f"run {run['id']} ({run['world_size']} GPU): imbalance {imbalance:.3f}, generate calls per rank "
                     f"{', '.join(map(str, calls))}" if imbalance else f"run {run['id']}: no rank times")
    if not spans_all:
        return _empty(title, "this run stored no per-rank timeline")
    fig = go.Figure()
    for phase in [*PHASE_ORDER, *sorted({s["phase"] for s in spans_all} - set(PHASE_ORDER))]:
        chosen = [s for s in spans_all if s["phase"] == phase]
        if not chosen:
            continue
        hover = []
        for s in chosen:
            detail = f"batch {s['batch']} · {s.get('size', '?')} prompts<br>" if "batch" in s else ""
            hover.append(f"{s['row']}<br>{phase}<br>{detail}{s['start']:.2f} → {s['end']:.2f} s "
                         f"({s['end'] - s['start']:.3f} s)")
        fig.add_trace(go.Bar(
            y=[s["row"] for s in chosen], x=[max(s["end"] - s["start"], 1e-4) for s in chosen],
            base=[s["start"] for s in chosen], orientation="h", name=phase,
            marker=dict(color=PHASE_COLORS.get(phase, "#999999"), line=dict(color="white", width=1)),
            hovertext=hover, hoverinfo="text"))
    # one line per run under the title: the imbalance and the generate calls each rank made
    subtitle = "".join(f"<br><sup>{note}</sup>" for note in notes)
    top = 60 + 22 * len(notes)
    plot_height = max(140, 30 * len(rows))
    fig.update_layout(**{**LAYOUT, "height": top + plot_height + 100,
                         "margin": dict(l=110, r=20, t=top, b=100),
                         # below the x-axis title, however few rows there are
                         "legend": dict(orientation="h", yanchor="top", y=-62 / plot_height, x=0)},
                      title=dict(text=title + subtitle, y=1.0, yref="container", yanchor="top", pad=dict(t=12)),
                      barmode="overlay", xaxis_title="seconds since launch")
    fig.update_yaxes(categoryorder="array", categoryarray=rows, autorange="reversed")
    return fig


def compare_figure(a: dict, b: dict, comparison: dict) -> go.Figure:
    """Two sweeps' medians with their CIs, and B/A with the test's verdict per count."""
    fig = throughput_figure(a, compare_with=b)
    for row in comparison["rows"]:
        fig.add_annotation(x=row["gpus"], y=max(row["a_median"], row["b_median"]), yshift=18, showarrow=False,
                           text=f"B/A {row['ratio']:.2f}<br>{row['verdict'].split(' (')[0]}", font=dict(size=10))
    fig.update_layout(title=f"A/B · A = sweep {_sweep_label(a)} · B = sweep {_sweep_label(b)}")
    return fig

"""Plotly figures for the studio, as pure functions of stored run rows.

Every function takes plain dicts (rows from `db.store.Store`) and returns a
`plotly.graph_objects.Figure`; nothing here reads the database or the page, so
the same figures serve the page, the HTML download and the tests.

Runs are grouped into series by sweep. The x axis is always the total number of
processes (num_gpus * num_nodes). Where a count was repeated, the marker is the
median and the error bar spans the fastest to the slowest repeat: with two or
three repeats a standard deviation would pretend to know more than it does.
"""

from __future__ import annotations

import html

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from runner.phases import LABELS as PHASE_LABELS
from runner.phases import ORDER as PHASE_ORDER
from runner.phases import breakdown
from studio.analysis.stats import Point, Series, scaling_series, varied_settings
from studio.sweeps.grid import describe_cell

COLORS = ("#2563eb", "#dc2626", "#16a34a", "#9333ea", "#ea580c", "#0891b2", "#be185d", "#4d7c0f", "#a16207", "#475569")
IDEAL_COLOR = "#9ca3af"
FONT = dict(family="system-ui, -apple-system, Segoe UI, sans-serif", size=13)


def series_labels(all_series: list[Series]) -> dict[tuple, str]:
    """A legend name per series: its sweep (or run), and where one sweep has several
    series (a grid), the settings that tell them apart."""
    out = {}
    for series in all_series:
        run = series.sample
        what = f"{run.get('model')} · {run.get('mode')} · batch {run.get('batch_size')}"
        kind, ident = series.source
        label = f"{kind} {ident}: {run.get('label') or what}"
        siblings = [s for s in all_series if s.source == series.source]
        differ = varied_settings(s.setting for s in siblings)
        if differ:
            label += " · " + describe_cell(series.setting, differ)
        out[series.key] = label
    return out


def settings_text(run: dict) -> str:
    """The settings a chart's hover shows, as Plotly's <br>-separated text."""
    config = run.get("config") or {}
    parts = [
        f"model {run.get('model')}",
        f"mode {run.get('mode')}, batch size {run.get('batch_size')}",
        f"{run.get('num_prompts')} prompts, {run.get('max_new_tokens')} new tokens"
        + (" (fixed length)" if config.get("fixed_length") else ""),
        f"{run.get('device') or config.get('device', '?')}, {run.get('dtype') or config.get('dtype', '?')}",
    ]
    return "<br>".join(parts)


def _hover(series: Series, point: Point, key: str, unit: str, fmt: str, label: str) -> str:
    values = ", ".join(format(v, fmt) for v in point.values(key))
    ids = ", ".join(str(r["id"]) for r in point.runs)
    repeats = f"{len(point.runs)} runs ({values} {unit})" if len(point.runs) > 1 else f"run {ids}"
    lines = [f"<b>{label}</b>", f"{point.x} processes/GPUs: {format(point.median(key), fmt)} {unit}", repeats]
    if len(point.runs) > 1:
        lines.append(f"run ids {ids}")
    return "<br>".join(lines) + "<br>" + settings_text(point.runs[0])


def count_axis_title(runs: list[dict]) -> str:
    """What the count axis counts, from the runs' own devices: a published RTX 3090
    sweep counts GPUs even when this machine has none."""
    devices = {str(r.get("device") or (r.get("config") or {}).get("device") or "").split(":")[0] for r in runs}
    devices.discard("")
    if devices == {"cpu"}:
        return "CPU processes (no GPU)"
    if devices and "cpu" not in devices:
        return "GPUs"
    return "GPUs (CPU processes for the CPU runs)"


def _layout(fig: go.Figure, title: str, y_title: str, xs: list[int], runs: list[dict]) -> go.Figure:
    fig.update_layout(
        title=dict(text=title, x=0.01, xanchor="left"),
        template="plotly_white",
        font=FONT,
        hovermode="closest",
        margin=dict(l=60, r=20, t=60, b=50),
        legend=dict(orientation="h", yanchor="top", y=-0.18, x=0),
        height=420,
    )
    fig.update_xaxes(title_text=count_axis_title(runs), tickmode="array",
                     tickvals=sorted(set(xs)) or [1], rangemode="tozero")
    fig.update_yaxes(title_text=y_title, rangemode="tozero")
    return fig


def empty_figure(message: str, title: str = "") -> go.Figure:
    fig = go.Figure()
    fig.add_annotation(text=message, x=0.5, y=0.5, xref="paper", yref="paper", showarrow=False,
                       font=dict(size=15, color="#6b7280"))
    fig.update_layout(template="plotly_white", font=FONT, height=320, title=dict(text=title, x=0.01),
                      xaxis=dict(visible=False), yaxis=dict(visible=False), margin=dict(l=20, r=20, t=50, b=20))
    return fig


def _metric_figure(runs: list[dict], key: str, title: str, y_title: str, unit: str, fmt: str,
                   ideal: bool) -> go.Figure:
    all_series = scaling_series(runs)
    labels = series_labels(all_series)
    if not all_series:
        return empty_figure("No finished runs to plot yet", title)
    fig = go.Figure()
    xs: list[int] = []
    for i, series in enumerate(all_series):
        color = COLORS[i % len(COLORS)]
        x = [p.x for p in series.points]
        xs += x
        spreads = [p.spread(key) for p in series.points]
        has_bars = any(above or below for above, below in spreads)
        fig.add_trace(go.Scatter(
            x=x, y=[p.median(key) for p in series.points], name=labels[series.key], mode="lines+markers",
            line=dict(color=color, width=2.5), marker=dict(size=9),
            error_y=dict(type="data", symmetric=False, array=[a for a, _ in spreads],
                         arrayminus=[b for _, b in spreads], visible=has_bars, thickness=1.5, width=6),
            hovertext=[_hover(series, p, key, unit, fmt, labels[series.key]) for p in series.points],
            hoverinfo="text",
        ))
        if ideal and len(x) > 1:
            fig.add_trace(go.Scatter(
                x=x, y=[series.baseline.median(key) * p.ideal_speedup for p in series.points],
                name=f"ideal linear scaling ({labels[series.key]})",
                mode="lines", line=dict(color=color, width=1.5, dash="dot"), opacity=0.6,
                hovertemplate="ideal: %{y:.1f} " + unit + "<extra></extra>",
            ))
    return _layout(fig, title, y_title, xs, runs)


def throughput_figure(runs: list[dict], ideal: bool = True, title: str = "Throughput against GPU count") -> go.Figure:
    """Tokens per second (real tokens, padding excluded) against process count,
    with each series' ideal linear line from its smallest count."""
    return _metric_figure(runs, "tokens_per_second", title, "tokens / second", "tokens/s", ".1f", ideal)


def wall_time_figure(runs: list[dict], title: str = "Generation wall time against GPU count") -> go.Figure:
    """The slowest rank's generation time: what a user waits for once the model is loaded."""
    return _metric_figure(runs, "seconds", title, "seconds (slowest rank)", "s", ".3f", ideal=False)


def speedup_figure(runs: list[dict], title: str = "Speedup against GPU count") -> go.Figure:
    """Throughput over the series' smallest count, against the ideal linear line."""
    all_series = scaling_series(runs)
    labels = series_labels(all_series)
    if not all_series:
        return empty_figure("No finished runs to plot yet", title)
    fig = go.Figure()
    xs: list[int] = []
    ideals: set[int] = set()
    for i, series in enumerate(all_series):
        x0 = series.baseline.x
        ideals.add(x0)
        x = [p.x for p in series.points]
        xs += x
        speedups = [p.speedup for p in series.points]
        hover = [
            f"<b>{labels[series.key]}</b><br>{p.x} processes/GPUs: {p.speedup:.2f}× the {x0}-count throughput "
            f"(ideal {p.ideal_speedup:.2f}×)<br>" + settings_text(p.runs[0])
            for p in series.points
        ]
        fig.add_trace(go.Scatter(x=x, y=speedups, name=labels[series.key], mode="lines+markers",
                                 line=dict(color=COLORS[i % len(COLORS)], width=2.5), marker=dict(size=9),
                                 hovertext=hover, hoverinfo="text"))
    top = max(xs) if xs else 1
    for x0 in sorted(ideals):
        line_x = sorted({x0, *[x for x in xs if x >= x0], top})
        fig.add_trace(go.Scatter(x=line_x, y=[x / x0 for x in line_x], name="ideal (linear)" if x0 == 1
                                 else f"ideal (linear from {x0})", mode="lines",
                                 line=dict(color=IDEAL_COLOR, dash="dash", width=2),
                                 hovertemplate="ideal: %{y:.2f}×<extra></extra>"))
    fig = _layout(fig, title, "speedup (×)", xs, runs)
    return fig


def rank_figure(run: dict) -> go.Figure:
    """Per-rank tokens, generation seconds and peak memory: stragglers show up here."""
    ranks = run.get("ranks") or []
    if not ranks:
        return empty_figure("This run stored no per-rank figures", "Per-rank figures")
    labels = [f"rank {r['rank']}" + (f" (node {r['node']})" if r.get("node") else "") for r in ranks]
    fig = make_subplots(rows=1, cols=3, subplot_titles=("tokens", "generation seconds", "peak memory (MiB)"))
    columns = (
        [r["tokens"] for r in ranks],
        [r["seconds"] for r in ranks],
        [(r.get("peak_memory_bytes") or 0) / 2**20 for r in ranks],
    )
    for col, values in enumerate(columns, start=1):
        fig.add_trace(go.Bar(x=labels, y=values, marker_color=COLORS[col - 1], showlegend=False,
                             hovertemplate="%{x}: %{y:.4g}<extra></extra>"), row=1, col=col)
    fig.update_layout(template="plotly_white", font=FONT, height=320, margin=dict(l=50, r=20, t=70, b=40),
                      title=dict(text=f"Per-rank figures of run {run.get('id')}", x=0.01))
    return fig


def phase_items(phases: dict) -> list[tuple[str, float]]:
    """(phase, seconds) in the order they happen, without the launch-to-result total."""
    named = {k: float(v) for k, v in (phases or {}).items() if k != "total" and v is not None}
    order = [p for p in PHASE_ORDER if p in named] + sorted(p for p in named if p not in PHASE_ORDER)
    return [(p, named[p]) for p in order]


def overhead_seconds(phases: dict) -> tuple[float, float]:
    """(generation, overhead): overhead is everything but generate, click to stored."""
    split = breakdown(phases)
    return split["generation"], split["overhead"]


def phases_figure(run: dict) -> go.Figure:
    """Where the run's wall-clock went: generation against everything around it."""
    items = phase_items(run.get("phases") or {})
    if not items:
        return empty_figure("This run stored no phase timings", "Phases")
    generate, overhead = overhead_seconds(run.get("phases") or {})
    share = overhead / (generate + overhead) * 100 if generate + overhead else 0.0
    fig = go.Figure(go.Bar(
        y=[p for p, _ in items], x=[s for _, s in items], orientation="h",
        marker_color=["#2563eb" if p == "generate" else "#9ca3af" for p, _ in items],
        # a phase's name alone ("roofline" longer than "generate") reads as a problem: the hover says what it is
        customdata=[PHASE_LABELS.get(p, p) for p, _ in items],
        hovertemplate="%{y}: %{x:.3f} s<br>%{customdata}<extra></extra>",
    ))
    notes = []
    if any(p != "generate" and s > generate for p, s in items):
        notes.append("only generate is timed for tokens/s; the rest is set-up and measurement around it")
    if any(p == "roofline" for p, _ in items):
        # its bar sits right after generate and can outgrow it: read as part of the run, it looks like a slow step
        notes.append("roofline: a memory-bandwidth probe run after the timed window, not in tokens/s")
    # the two-line title sits in the middle of the top margin, so each note line widens the margin by twice
    # its own height; at 80 px the title's second line ran over the first note
    top = 80 + (10 + 28 * (len(notes) - 1) if notes else 0)
    fig.update_layout(
        template="plotly_white", font=FONT, height=30 + 30 * len(items) + top, margin=dict(l=90, r=20, t=top, b=40),
        title=dict(text=f"Phases of run {run.get('id')}: generate {generate:.2f} s,<br>"
                        f"overhead {overhead:.2f} s ({share:.0f}% of the run)", x=0.01),
        yaxis=dict(autorange="reversed"), xaxis=dict(title_text="seconds (slowest rank per phase)"),
    )
    if notes:
        fig.add_annotation(text="<br>".join(notes), align="left", xref="paper", yref="paper", x=0, y=1.0,
                           xanchor="left", yanchor="bottom", showarrow=False, font=dict(size=11, color="#6b7280"))
    return fig


def figures_html(figures: list[go.Figure], title: str = "Scaling Studio charts") -> str:
    """One self-contained HTML page (plotly.js inlined once) holding every figure."""
    parts = []
    for i, fig in enumerate(figures):
        parts.append(fig.to_html(full_html=False, include_plotlyjs=(i == 0), config={"displaylogo": False}))
    body = "\n".join(f"<section>{p}</section>" for p in parts)
    title = html.escape(title)
    return (f"<!DOCTYPE html>\n<html><head><meta charset='utf-8'><title>{title}</title></head>"
            f"<body style='font-family: system-ui, sans-serif; max-width: 1100px; margin: auto'>"
            f"<h1>{title}</h1>\n{body}\n</body></html>\n")

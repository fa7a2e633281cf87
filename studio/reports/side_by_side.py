"""One page that sets sweeps side by side whoever measured them: the studio's own,
and runs imported from GuideLLM, AIPerf, vLLM bench or inference-benchmarker.

`studio report A --compare B,C` writes it (one --compare sweep keeps the A/B report).
Every imported figure was recounted with the studio's definitions where its file held
per-request times, so the columns mean the same thing on every row; a row holding a
tool's own aggregates says so, and the tool's definitions that differ are listed below.
Self-contained HTML (plotly.js inlined once).
"""

from __future__ import annotations

import html
from datetime import datetime, timezone

import plotly.graph_objects as go

from db.store import Store
from studio.analysis.cost import cost_text, money, stored_costs
from studio.analysis.grid import grid_summary
from studio.charts.figures import COLORS, FONT, empty_figure, throughput_figure
from studio.charts.grid import pareto_figure
from studio.exchange.peers.detail import origin, tool_label

COLUMNS = ["sweep", "run", "measured by", "scenario", "GPUs", "tokens/s", "tokens/s per GPU", "TTFT p50 (ms)",
           "TPOT p50 (ms)", "latency p50 (ms)", "requests/s", "$ per M output tokens", "figures"]


class SideBySideError(ValueError):
    """A sweep that cannot be set beside the others; the message says which."""


def _requests_per_second(run: dict) -> float | None:
    imported = origin(run)
    if imported:
        recounted = (imported.get("recounted") or {}).get("requests_per_second")
        return recounted if recounted is not None else (imported.get("tool_metrics") or {}).get("requests_per_second")
    return run["num_prompts"] / run["seconds"] if run.get("seconds") else None


def _measured_by(run: dict) -> str:
    imported = origin(run)
    return tool_label(imported) if imported else "Scaling Studio"


def _scenario(run: dict) -> str:
    if run.get("scenario"):
        return run["scenario"]
    return f"offline, {run.get('mode')}, batch {run.get('batch_size')}"


def _how(run: dict) -> str:
    imported = origin(run)
    if not imported:
        return "measured here"
    return "tool's aggregates" if imported.get("aggregates_only") else "recounted"


def _dollars(cost: dict | None) -> str:
    if cost and cost["usd_per_million_tokens"] is not None:
        return money(cost["usd_per_million_tokens"], 3)
    return cost_text(cost)  # why there is none, never $0


def rows(sweeps: list[dict], costs: dict | None = None) -> list[list]:
    """One row per succeeded run; `costs` (cost.stored_costs) by run id gives its $ column."""
    costs = costs or {}
    out = []
    for sweep in sweeps:
        for run in sweep["runs"]:
            if run.get("status") != "succeeded":
                continue
            tps = run.get("tokens_per_second")
            out.append([sweep["id"], run["id"], _measured_by(run), _scenario(run), run["world_size"], tps,
                        tps / run["world_size"] if tps else None, run.get("ttft_ms_p50"), run.get("tpot_ms_p50"),
                        run.get("latency_ms_p50"), _requests_per_second(run), _dollars(costs.get(run["id"])),
                        _how(run)])
    return out


def latency_figure(sweeps: list[dict]) -> go.Figure:
    """Latency p50 against the request rate each run achieved: one line per sweep."""
    title = "Latency against request rate"
    fig = go.Figure()
    for i, sweep in enumerate(sweeps):
        points = sorted(((_requests_per_second(r), r.get("latency_ms_p50"), r.get("ttft_ms_p50"), r)
                         for r in sweep["runs"] if r.get("status") == "succeeded" and _requests_per_second(r)
                         and r.get("latency_ms_p50")), key=lambda p: p[0])
        if not points:
            continue
        color = COLORS[i % len(COLORS)]
        name = f"sweep {sweep['id']}: {sweep.get('name') or sweep.get('model')}"
        fig.add_trace(go.Scatter(x=[p[0] for p in points], y=[p[1] for p in points], mode="lines+markers",
                                 name=f"{name} · latency", line=dict(color=color),
                                 hovertext=[f"run {p[3]['id']} · {_scenario(p[3])}" for p in points], hoverinfo="text+y"))
        ttft = [p for p in points if p[2] is not None]
        fig.add_trace(go.Scatter(x=[p[0] for p in ttft], y=[p[2] for p in ttft], mode="lines+markers",
                                 name=f"{name} · TTFT", line=dict(color=color, dash="dot")))
    if not fig.data:
        return empty_figure("No run with a latency and a request rate", title)
    fig.update_layout(title=dict(text=title, x=0.01), template="plotly_white", font=FONT, height=440,
                      legend=dict(orientation="h", yanchor="top", y=-0.18, x=0), margin=dict(l=60, r=20, t=60, b=50))
    fig.update_xaxes(title_text="requests/s completed", rangemode="tozero")
    fig.update_yaxes(title_text="p50 (ms)", rangemode="tozero")
    return fig


def _cell(value) -> str:
    if value is None:
        return "–"
    return f"{value:.4g}" if isinstance(value, float) else html.escape(str(value))


def _definitions(sweeps: list[dict]) -> list[str]:
    notes = {}
    for sweep in sweeps:
        for run in sweep["runs"]:
            imported = origin(run)
            if imported:
                for family, text in (imported.get("definitions") or {}).items():
                    notes[f"{tool_label(imported)} {family}"] = text
    return [f"{name}: {text}" for name, text in sorted(notes.items())]


def side_by_side_html(store: Store, sweep_ids: list[int], price: float | None = None) -> str:
    """The page; costs at `price` per GPU-hour, else each sweep's kept prices, else the example table."""
    sweeps = []
    for sweep_id in dict.fromkeys(int(i) for i in sweep_ids):  # each sweep once, in the order given
        sweep = store.get_sweep(int(sweep_id))
        if sweep is None:
            raise SideBySideError(f"there is no sweep {sweep_id}; `studio runs` lists them")
        sweeps.append(sweep)
    runs = [r for s in sweeps for r in s["runs"]]
    title = "Side by side: " + ", ".join(f"sweep {s['id']}" for s in sweeps)
    costs = stored_costs([r for r in runs if r.get("status") == "succeeded"], store.sweep_prices, price)
    table = "".join("<tr>" + "".join(f"<td>{_cell(v)}</td>" for v in row) + "</tr>" for row in rows(sweeps, costs))
    names = "".join(f"<li>sweep {s['id']}: {html.escape(str(s.get('name') or s.get('model')))}</li>" for s in sweeps)
    figures = [throughput_figure(runs), pareto_figure(grid_summary(runs, {}, None)), latency_figure(sweeps)]
    charts = "".join(fig.to_html(full_html=False, include_plotlyjs=i == 0, config={"displaylogo": False})
                     for i, fig in enumerate(figures))
    notes = "".join(f"<li>{html.escape(n)}</li>" for n in _definitions(sweeps))
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title></head>"
            "<body style='font-family: system-ui, sans-serif; max-width: 1200px; margin: auto'>"
            f"<h1>{html.escape(title)}</h1><ul>{names}</ul>"
            "<p>TTFT, TPOT (first token excluded) and latency are the studio's definitions on every row marked "
            "<i>recounted</i> or <i>measured here</i>; a row of a tool's aggregates holds the tool's own figures.</p>"
            f"<table border='1' cellspacing='0' cellpadding='4'><tr>{''.join(f'<th>{c}</th>' for c in COLUMNS)}</tr>"
            f"{table}</table><p><small>$ per million output tokens: every GPU of a run paid for its whole time at "
            "the price given with --price, else the prices kept with its sweep, else the example prices (placeholders, "
            f"not market data).</small></p>{charts}"
            + (f"<h2>Where the tools' own definitions differ</h2><ul>{notes}</ul>" if notes else "")
            + f"<p><small>Generated {datetime.now(timezone.utc).isoformat(timespec='seconds')} by Scaling Studio."
            "</small></p></body></html>\n")

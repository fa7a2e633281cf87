"""A sweep's scaling report: the analysis as JSON or as one self-contained HTML
file (plotly.js inlined once, no network needed to open it).

Shared by `studio report` and the web studio's Analysis tab."""

from __future__ import annotations

import html
import json
from datetime import datetime, timezone
from pathlib import Path

from db.store import Store
from studio.analysis.analyse import analyse_sweep, compare
from studio.analysis.cost import COST_HEADERS, cost_table_rows, sweep_cost
from studio.analysis.explain import explain_layouts
from studio.analysis.grid import grid_summary
from studio.analysis.layouts import layout_summary
from studio.analysis.what_if import sweep_what_if, what_if_rows
from studio.charts import analysis as figs
from studio.charts import layouts as layout_figures
from studio.exchange.output_file import check_output, write_output
from studio.exchange.peers.detail import imported_badge

FORMAT_VERSION = 1


class ReportError(ValueError):
    """The sweep cannot be reported; the message says what to do instead."""


def load_analysis(store: Store, sweep_id: int, slo: dict | None = None, setting: dict | int | None = None,
                  price: float | None = None, table: list[dict] | None = None) -> dict:
    """Analyse one stored sweep, timelines included, with its grid: the Pareto front,
    batch scaling and, under an SLO (given, or stored with the sweep), goodput; and
    its cost at `price` per GPU-hour, or the prices kept with the sweep, or the examples."""
    sweep = store.get_sweep(int(sweep_id))
    if sweep is None:
        known = ", ".join(str(s["id"]) for s in store.list_sweeps(limit=20)) or "none yet"
        raise ReportError(f"there is no sweep {sweep_id}; stored sweeps: {known}")
    if any(r.get("mode") == "server" for r in sweep["runs"]):  # the offline analysis has no rates to read
        raise ReportError(f"sweep {sweep_id} is of the server scenario (docs/serving.md): the report covers offline "
                          "sweeps; its latency against offered rate, knee and SLO rate are on the Analysis tab")
    ranks = store.ranks_for_runs(r["id"] for r in sweep["runs"])
    result = analyse_sweep(sweep, ranks, setting=setting)
    slo = slo or (sweep.get("settings") or {}).get("slo")
    outputs = store.outputs_for_runs(r["id"] for r in sweep["runs"]) if slo else {}
    result["grid"] = grid_summary(sweep["runs"], outputs, slo)
    result["layouts"] = layout_summary(sweep["runs"])
    extra = (result["grid"]["batch_scaling_text"] + result["grid"]["goodput_text"]
             + explain_layouts(result["layouts"], sweep.get("model")))
    if extra:
        result["explanation"] += "\n" + "\n".join(extra)
    result["what_if"] = sweep_what_if(sweep, ranks, result["counts"])
    result["what_if_rows"] = what_if_rows(result)
    stored = store.sweep_prices(int(sweep_id)) or {}
    result["cost"] = sweep_cost(sweep["runs"], result["points"], price if price is not None else stored.get("price"),
                                table if table is not None else stored.get("table"), outputs, slo)
    result["_runs"] = {r["id"]: r for r in sweep["runs"]}
    result["_ranks"] = ranks
    return result


def representative_runs(analysis: dict) -> list[tuple[dict, list[dict]]]:
    """Per GPU count, the repeat whose throughput is the median (lower middle):
    the run the timeline shows."""
    chosen = []
    runs, ranks = analysis.get("_runs", {}), analysis.get("_ranks", {})
    for p in analysis["points"]:
        pairs = sorted(zip(p["throughput"]["values"], p["run_ids"]))
        run_id = pairs[(len(pairs) - 1) // 2][1]
        if ranks.get(run_id):
            chosen.append((runs[run_id], ranks[run_id]))
    return chosen


def public(analysis: dict) -> dict:
    """The analysis without the raw rows it was built from."""
    return {k: v for k, v in analysis.items() if not k.startswith("_")}


def report_json(analysis: dict, other: dict | None = None) -> dict:
    out = {"format_version": FORMAT_VERSION, "generated_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
           **public(analysis), "pareto": analysis["grid"]["pareto"]}
    if other is not None:
        out["ab"] = compare(analysis, other)
    return out


def _fmt(value, spec: str = "{:.3g}", empty: str = "–") -> str:
    if value is None:
        return empty
    return spec.format(value)


def _table(headers: list[str], rows: list[list[str]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def points_rows(analysis: dict) -> tuple[list[str], list[list[str]]]:
    """The per-count table, shared by the report and the web tab."""
    headers = ["GPUs", "repeats", "median tokens/s", "95% CI", "median s", "speedup", "efficiency",
               "rounds (busiest)", "predicted speedup", "s per round", "imbalance", "timeline"]
    q_by = {q["gpus"]: q for q in analysis.get("quantisation") or []}
    d_by = {r["gpus"]: r for r in (analysis.get("diagnosis") or {}).get("rows", [])}
    c_by = {c["gpus"]: c for c in analysis.get("timeline_check") or []}
    rows = []
    for p in analysis["points"]:
        tp, n = p["throughput"], p["gpus"]
        ci = f"{tp['ci_low']:.1f} – {tp['ci_high']:.1f}" if tp["ci_low"] is not None else "needs 2+ repeats"
        check = c_by.get(n)
        timeline = "–" if not check or not check["runs_checked"] else (
            "agrees" if check["agrees"] else "differs: " + " / ".join(",".join(map(str, o)) for o in check["observed"]))
        rows.append([str(n), str(tp["n"]), f"{tp['median']:.1f}", ci, _fmt(p["seconds"]["median"], "{:.2f}"),
                     f"{p['speedup']:.2f}x", f"{p['efficiency']:.0%}",
                     _fmt(q_by.get(n, {}).get("rounds"), "{}"),
                     _fmt(q_by.get(n, {}).get("ceiling_speedup"), "{:.2f}x"),
                     _fmt(d_by.get(n, {}).get("seconds_per_round"), "{:.3g}"), _fmt(p.get("imbalance"), "{:.3f}"),
                     timeline])
    return headers, rows


def fit_rows(analysis: dict) -> tuple[list[str], list[list[str]]]:
    headers = ["model", "λ (tokens/s at n=1)", "σ (contention)", "κ (coherency)", "peak n*", "R²", "note"]
    rows = []
    for name, fit in analysis["fits"].items():
        label = "Amdahl" if name == "amdahl" else "USL"
        if fit.get("lam") is None:
            rows.append([label, "–", "–", "–", "–", "–", fit.get("note", "")])
            continue
        peak = _fmt(fit.get("peak_n"), "{:.1f}", "none" if name == "usl" else "–")
        note = fit.get("note") or ""
        if name == "amdahl" and fit.get("parallel_fraction") is not None:
            note = (f"parallel fraction {fit['parallel_fraction']:.3f}" + (f", speedup limit {fit['max_speedup']:.2f}x"
                    if fit.get("max_speedup") else "") + ("; " + note if note else ""))
        rows.append([label, f"{fit['lam']:.1f}", f"{fit['sigma']:.4f}", f"{fit['kappa']:.5f}", peak,
                     _fmt(fit.get("r2"), "{:.3f}"), note])
    return headers, rows


def layout_table(summary: dict | None) -> tuple[list[str], list[list[str]]]:
    """Layouts at equal GPU count, shared by the report and the web tab."""
    headers = ["GPUs", "layout", "tp", "dp", "runs", "median tokens/s", "TTFT p50 ms", "TPOT p50 ms", "all-reduce share"]
    rows = [[str(r["gpus"]), r["layout"], str(r["tp"]), str(r["dp"]), str(r["runs"]), f"{r['tokens_per_second']:.1f}",
             _fmt(r["ttft_ms_p50"], "{:.1f}"), _fmt(r["tpot_ms_p50"], "{:.2f}"), _fmt(r["comm_fraction"], "{:.0%}")]
            for r in sorted((summary or {}).get("rows") or [], key=lambda r: (r["gpus"], r["tp"]))]
    return headers, rows


def ab_rows(comparison: dict) -> tuple[list[str], list[list[str]]]:
    headers = ["GPUs", "A median tokens/s", "B median tokens/s", "B/A", "repeats A/B", "test", "p", "verdict"]
    rows = [[str(r["gpus"]), f"{r['a_median']:.1f}", f"{r['b_median']:.1f}", f"{r['ratio']:.3f}",
             f"{r['a_repeats']}/{r['b_repeats']}", r["test"] or "–", _fmt(r["p"], "{:.3f}"), r["verdict"]]
            for r in comparison["rows"]]
    return headers, rows


def _environment_rows(analysis: dict) -> list[list[str]]:
    env = analysis.get("environment") or {}
    nodes = env.get("nodes") or ([env] if env else [])
    rows = [["device", str(analysis.get("device") or "–")]]
    for i, node in enumerate(nodes):
        prefix = f"node {i} " if len(nodes) > 1 else ""
        for key in ("hostname", "platform", "cpu_model", "cpu_cores", "gpu_names", "driver_version", "cuda_version",
                    "torch_threads", "python", "git_commit", "note"):
            if node.get(key) not in (None, [], ""):
                value = node[key]
                if isinstance(value, list):
                    value = ", ".join(map(str, value))
                rows.append([prefix + key.replace("_", " "), str(value)])
        for package, version in (node.get("versions") or {}).items():
            if version:
                rows.append([prefix + package, version])
    return rows


def figures(analysis: dict, other: dict | None = None) -> dict:
    out = {"throughput": figs.throughput_figure(analysis), "speedup": figs.speedup_figure(analysis),
           "efficiency": figs.efficiency_figure(analysis)}
    chosen = representative_runs(analysis)
    if chosen:
        out["timeline"] = figs.timeline_figure(chosen, "Per-rank timeline (the median run of each GPU count)")
    if (analysis.get("layouts") or {}).get("varied"):
        out["layouts"] = layout_figures.layout_figure(analysis["layouts"]["rows"])
    if other is not None:
        out["ab"] = figs.compare_figure(analysis, other, compare(analysis, other))
    return out


CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,sans-serif;max-width:1100px;margin:24px auto;padding:0 16px;
color:#222;line-height:1.45}
h1{font-size:1.5em;margin-bottom:4px}h2{font-size:1.15em;margin-top:28px;border-bottom:1px solid #ddd}
.meta{color:#555}.badge{background:#fde68a;border-radius:4px;padding:1px 6px;font-size:.85em}
.explain{background:#f4f7fb;border-left:4px solid #1f4e9c;padding:10px 14px}
.explain p{margin:4px 0}table{border-collapse:collapse;font-size:.9em;margin:8px 0}
th,td{border:1px solid #ddd;padding:4px 8px;text-align:right}th{background:#f3f3f3}
td:first-child,th:first-child{text-align:left}.kv td{text-align:left}.small{font-size:.85em;color:#555}
"""


def report_html(analysis: dict, other: dict | None = None) -> str:
    """One self-contained page: explanation, tables, fits, charts, environment."""
    sweep, s = analysis["sweep"], analysis["settings"]
    title = f"Scaling report · sweep {sweep['id']}" + (f" · {sweep['name']}" if sweep.get("name") else "")
    badge = ' <span class="badge">external: published figures, not measured here</span>' if sweep.get("external") \
        else ""
    badge += imported_badge({**sweep, "settings": s})  # measured by another tool (studio.exchange.peers)
    meta = (f"{s.get('model')} · {s.get('mode')} · batch {s.get('batch_size')} · {s.get('num_prompts')} prompts · "
            f"{s.get('max_new_tokens')} new tokens · device {analysis.get('device') or '–'} · "
            f"{analysis['runs_used']} run(s) used · created {sweep.get('created_at') or '–'}")
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>",
             f"<style>{CSS}</style></head><body>",
             f"<h1>{html.escape(title)}{badge}</h1><div class='meta'>{html.escape(meta)}</div>"]
    if sweep.get("source"):
        parts.append(f"<div class='small'>source: {html.escape(str(sweep['source']))}</div>")
    parts.append("<h2>What limits the scaling</h2><div class='explain'>"
                 + "".join(f"<p>{html.escape(line)}</p>" for line in analysis["explanation"].splitlines()) + "</div>")
    headers, rows = points_rows(analysis)
    parts.append("<h2>Per GPU count</h2>" + _table(headers, rows))
    parts.append("<p class='small'>Median over the repeats; the interval is the 95% confidence interval of the mean "
                 "(Student t), drawn as error bars. Speedup is over the smallest count swept. Predicted speedup is "
                 "the work-quantisation ceiling: rounds on the busiest rank at the smallest count over rounds at n. "
                 "Imbalance is the slowest rank's generation time over the mean.</p>")
    if analysis.get("cost", {}).get("rows"):
        parts.append("<h2>Cost</h2><p>" + html.escape(analysis["cost"]["text"]) + "</p>"
                     + _table(COST_HEADERS, cost_table_rows(analysis["cost"]))
                     + "<p class='small'>Every GPU of a run is paid for its whole time: $ per million tokens = GPUs × "
                       "$ per GPU-hour / (tokens/s × 3600) × 10⁶. Prices marked example are placeholders, not "
                       "market data: give yours with --price or in the Analysis tab.</p>")
    headers, rows = fit_rows(analysis)
    parts.append("<h2>Fits</h2>" + _table(headers, rows)
                 + "<p class='small'>X(n) = λn / (1 + σ(n−1) + κn(n−1)); Amdahl is κ = 0. Fitted to every repeat by "
                   "least squares, σ kept in [0, 1] and κ ≥ 0; peak n* = √((1−σ)/κ). Dotted curves are "
                   "extrapolated past the last count measured.</p>")
    knee = analysis.get("knee") or {}
    if knee.get("gains"):
        parts.append("<p>Marginal gain per added GPU: " + html.escape(", ".join(
            f"{g['from']}→{g['to']}: {g['gain_per_gpu']:.2f}" for g in knee["gains"]))
            + html.escape(f"; knee (first below {knee['threshold']:.2f}): {knee['count'] or 'none'}") + "</p>")
    if (analysis.get("layouts") or {}).get("varied"):
        headers, rows = layout_table(analysis["layouts"])
        parts.append("<h2>Layouts at equal GPU count</h2>" + _table(headers, rows)
                     + "<p class='small'>tp: ranks that share one copy of the model (tensor parallel); dp: copies of "
                       "the model (replicas). Medians over the repeats; the all-reduce share is the part of a sample "
                       "decode step spent in tensor-parallel collectives.</p>")
    comparison = compare(analysis, other) if other is not None else None
    if comparison:
        headers, rows = ab_rows(comparison)
        parts.append(f"<h2>A/B: sweep {sweep['id']} (A) vs sweep {other['sweep']['id']} (B)</h2>"
                     + _table(headers, rows)
                     + f"<p class='small'>Welch t-test on the repeats (one-sample when a side has a single value), "
                       f"α = {comparison['alpha']}; a difference inside the noise is a tie.</p>"
                     + "".join(f"<p class='note'>{html.escape(c)}</p>" for c in comparison["caveats"]))
    parts.append("<h2>Charts</h2>")
    first = True
    for name, fig in figures(analysis, other).items():
        parts.append(fig.to_html(full_html=False, include_plotlyjs=first, div_id=f"fig-{name}",
                                 config={"displaylogo": False, "responsive": True}))
        first = False
    if analysis.get("runs_left_out"):
        parts.append("<h2>Runs left out</h2>" + _table(
            ["run", "GPUs", "status", "error"],
            [[str(r["id"]), str(r["gpus"]), r["status"], r.get("error") or ""] for r in analysis["runs_left_out"]]))
    parts.append("<h2>Environment</h2><div class='kv'>" + _table(["", ""], _environment_rows(analysis)) + "</div>")
    parts.append(f"<p class='small'>Generated {datetime.now(timezone.utc).isoformat(timespec='seconds')} by "
                 "Scaling Studio.</p></body></html>")
    return "\n".join(parts)


def write_report(store: Store, sweep_id: int, fmt: str = "html", output: str | Path | None = None,
                 compare_with: int | None = None, *, force: bool = False, price: float | None = None) -> tuple[Path, dict]:
    """Analyse a sweep and write its report; returns the file written and the analysis."""
    if fmt not in ("html", "json"):
        raise ReportError(f"format {fmt!r} is not known; use html or json")
    analysis = load_analysis(store, sweep_id, price=price)
    other = load_analysis(store, compare_with, price=price) if compare_with is not None else None
    path = check_output(Path(output) if output else Path(f"sweep-{sweep_id}-report.{fmt}"), force=force)
    if fmt == "json":
        text = json.dumps(report_json(analysis, other), indent=2, default=str)
    else:
        text = report_html(analysis, other)
    path = write_output(path, text, force=force)
    return path, public(analysis)

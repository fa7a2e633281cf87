"""Layouts: the same GPUs as replicas, as tensor-parallel groups, or both, and the
correctness gate. Pure functions of stored run rows (RunRows), no I/O, no plotly.

A run's layout is its tensor-parallel size `tp_size` (ranks that share one copy
of the model) and its data-parallel size `dp_size` (copies of the model: the world
size over tp), worked out once when the row is read (db.rows), older rows
included. `runner.layout.layout_name` is the one place a layout is named for people. Every
median comes from `studio.analysis.stats` (tp_size is one of its SETTING_AXES, so a layout
sweep has one series per tp); the ratios and changes between layouts are computed
here, once. The agreement itself (greedy token ids against the sweep's reference
run) is computed when a run finishes and stored; this module only reads it.
"""

from __future__ import annotations

import json

from runner.layout import layout_name, tp_fits
from studio.analysis.stats import SETTING_AXES, describe, scaling_series
from studio.sweeps.agreement import verdict

# --------------------------------------------------------------------------
# The correctness gate, as stored


def agreement_detail(run: dict) -> dict:
    """The stored detail ({compared, identical, differences}); the store may hand it over as JSON text."""
    detail = run.get("agreement_detail")
    if isinstance(detail, str):
        try:
            detail = json.loads(detail)
        except ValueError:
            return {}
    return detail if isinstance(detail, dict) else {}


def greedy(run: dict) -> bool:
    return not (run.get("config") or {}).get("do_sample")


def run_verdict(run: dict) -> str:
    """studio.sweeps.agreement.verdict of a stored run: 'exact', 'expected' (sampling, 16-bit dtypes) or
    'check' (below 100 % where every layout should agree exactly), '' when not compared."""
    return verdict(run.get("agreement"), run.get("dtype"), not greedy(run))


def references(runs: list[dict]) -> set[int]:
    """The runs other runs were compared against."""
    return {int(r["agreement_reference"]) for r in runs if r.get("agreement_reference") is not None}


def agreement_text(run: dict, is_reference: bool = False) -> str:
    """The runs table's cell: '100 %', '97 % ⚠' (studio.sweeps.agreement.verdict "check": worth a look),
    '97 % (bfloat16)' (expected below 100 %), 'reference', or '–' (not compared)."""
    value = run.get("agreement")
    if value is None:
        return "reference" if is_reference else "–"
    text = f"{100 * float(value):.1f}".rstrip("0").rstrip(".") + " %"
    word = run_verdict(run)
    if word == "check":
        return f"{text} ⚠"
    if word == "expected":
        return f"{text} ({'sampled' if not greedy(run) else run.get('dtype')})"
    return text


def agreement_cells(runs: list[dict]) -> dict[int, str]:
    """agreement_text per run id, references named."""
    refs = references(runs)
    return {r["id"]: agreement_text(r, r["id"] in refs) for r in runs}


def first_differences(run: dict, limit: int = 5) -> list[str]:
    """The first differing token of up to `limit` prompts, in words."""
    out = []
    for d in (agreement_detail(run).get("differences") or [])[:limit]:
        out.append(f"prompt {d.get('prompt_index')}: first differs at token {d.get('position')} "
                   f"(reference {d.get('reference_token')}, this run {d.get('token')})")
    return out


# --------------------------------------------------------------------------
# Layouts compared at equal GPU count


def _others(setting: dict) -> dict:
    return {a: setting[a] for a in SETTING_AXES if a != "tp_size"}


def layout_rows(runs: list[dict]) -> list[dict]:
    """One row per (series, GPU count): the layout and its medians over the repeats."""
    rows = []
    for series in scaling_series(runs):
        tp = series.setting["tp_size"]
        for p in series.points:
            if not tp_fits(tp, p.x):
                continue  # not a layout (a row stored with a tp that does not fit)
            rows.append({
                "source": list(series.source), "setting": _others(series.setting), "gpus": p.x, "tp": tp,
                "dp": p.x // tp, "layout": layout_name(p.x, tp), "runs": len(p.runs),
                "run_ids": [r["id"] for r in p.runs], "tokens_per_second": p.median("tokens_per_second"),
                "ttft_ms_p50": p.median("ttft_ms_p50"), "tpot_ms_p50": p.median("tpot_ms_p50"),
                "comm_fraction": p.median("comm_fraction")})
    return rows


def _groups(rows: list[dict]) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    for row in rows:
        out.setdefault(json.dumps([row["source"], row["setting"]], sort_keys=True, default=str), []).append(row)
    return out


def _change(before: float | None, after: float | None) -> dict | None:
    return None if before is None or after is None else {"from": before, "to": after}


def tradeoffs(rows: list[dict]) -> list[dict]:
    """Per series group, at the largest GPU count where two or more layouts were measured:
    the layout with most tokens/s against the one with the lowest TPOT p50 (the one with
    fewest tokens/s where no TPOT was measured), the throughput ratio and the latency changes."""
    out = []
    for group in _groups(rows).values():
        counts = [g for g in sorted({r["gpus"] for r in group}) if len({r["tp"] for r in group if r["gpus"] == g}) > 1]
        if not counts:
            continue
        gpus = counts[-1]
        here = [r for r in group if r["gpus"] == gpus]
        best = max(here, key=lambda r: r["tokens_per_second"])
        timed = [r for r in here if r["tpot_ms_p50"] is not None]
        low = min(timed, key=lambda r: r["tpot_ms_p50"]) if timed else min(here, key=lambda r: r["tokens_per_second"])
        out.append({
            "gpus": gpus, "setting": group[0]["setting"], "layouts": [r["layout"] for r in here],
            "best_throughput": best["layout"], "lowest_tpot": low["layout"] if timed else None,
            "compared_with": low["layout"], "same": best is low,
            "throughput": {"best": best["tokens_per_second"], "other": low["tokens_per_second"]},
            "throughput_ratio": best["tokens_per_second"] / low["tokens_per_second"],
            "tpot_ms_p50": _change(best["tpot_ms_p50"], low["tpot_ms_p50"]),
            "ttft_ms_p50": _change(best["ttft_ms_p50"], low["ttft_ms_p50"]),
            "lowest_ttft": _lowest_ttft(here, best, low)})
    return out


def _lowest_ttft(here: list[dict], best: dict, low: dict) -> dict | None:
    """The layout with the lowest TTFT p50 where it is neither compared layout (tensor
    parallel splits a prefill too): its TTFT against the best layout's, and its tokens/s ratio."""
    timed = [r for r in here if r["ttft_ms_p50"] is not None]
    first = min(timed, key=lambda r: r["ttft_ms_p50"]) if timed else None
    if first is None or first is best or first is low or best["ttft_ms_p50"] is None:
        return None
    return {"layout": first["layout"], "ttft_ms_p50": _change(best["ttft_ms_p50"], first["ttft_ms_p50"]),
            "throughput_ratio": first["tokens_per_second"] / best["tokens_per_second"]}


def comm_shares(runs: list[dict]) -> list[dict]:
    """Per tensor-parallel size above 1: the median share of a decode step spent in its
    collectives, over its runs, and per GPU count."""
    out = []
    measured = [r for r in runs if r.get("status") == "succeeded" and r.get("comm_fraction") is not None]
    for tp in sorted({r["tp_size"] for r in measured} - {1}):
        mine = [r for r in measured if r["tp_size"] == tp]
        per_count = [{"gpus": g, "layout": layout_name(g, tp),
                      "comm_fraction": describe(r["comm_fraction"] for r in mine if r["world_size"] == g)["median"]}
                     for g in sorted({r["world_size"] for r in mine})]
        out.append({"tp": tp, "runs": len(mine), "comm_fraction": describe(r["comm_fraction"] for r in mine)["median"],
                    "per_count": per_count})
    return out


def correctness(runs: list[dict]) -> dict:
    """The gate over a sweep's runs: how many were compared, which agreed on every prompt,
    and for the others the first differing token and whether that is worth a look."""
    compared = [r for r in runs if r.get("agreement") is not None]
    below = []
    for r in sorted(compared, key=lambda r: r["id"]):
        if float(r["agreement"]) >= 1.0:
            continue
        detail = agreement_detail(r)
        first = (detail.get("differences") or [None])[0]
        below.append({"run_id": r["id"], "agreement": float(r["agreement"]), "layout": r["layout"],
                      "gpus": r["world_size"], "tp": r["tp_size"], "dtype": r.get("dtype"), "greedy": greedy(r),
                      "worth_a_look": run_verdict(r) == "check", "reference": r.get("agreement_reference"),
                      "compared": detail.get("compared"), "identical": detail.get("identical"),
                      "first_difference": first})
    refs = sorted(references(compared))
    return {"compared": len(compared), "agree": len(compared) - len(below), "below": below, "references": refs}


def layout_summary(runs: list[dict]) -> dict:
    """Everything the report and the Analysis tab show of a sweep's layouts (the report's
    `layouts` entry). `varied`: the sweep ran more than one tensor-parallel size."""
    rows = layout_rows(runs)
    return {"varied": len({r["tp"] for r in rows}) > 1, "rows": rows, "tradeoffs": tradeoffs(rows),
            "comm": comm_shares(runs), "correctness": correctness(runs)}

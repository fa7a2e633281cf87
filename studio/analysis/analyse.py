"""Why a sweep scales the way it does: one sweep's rows in, every figure the
report and the web tab show out. Pure, no I/O.

The per-count figures come from `studio.analysis.stats` (the one place they are
computed), the models from `studio.analysis.scaling_models`, the words from
`studio.analysis.explain`; this module puts them together and compares two sweeps.
"""

from __future__ import annotations

import math
from statistics import median as _median

from studio.analysis.explain import explain
from studio.analysis.scaling_models import KNEE_THRESHOLD, diagnose, fit_scaling, knee, quantisation, suggest
from studio.analysis.stats import SETTING_AXES, scaling_series, setting_of, welch_test

ALPHA = 0.05


# --------------------------------------------------------------------------
# One sweep


def _sweep_settings(sweep: dict, runs: list[dict]) -> dict:
    """The settings of the runs analysed: the sweep's, with what a grid varies taken
    from those runs (one series: every varied setting has one value there)."""
    settings = dict(sweep.get("settings") or {})
    for key in ("mode", "batch_size", "num_prompts", "max_new_tokens", "model"):
        if settings.get(key) is None:
            settings[key] = sweep.get(key)
    for key in SETTING_AXES:
        if runs and (settings.get(key) is None or key in (settings.get("axes") or {})):
            settings[key] = runs[0].get(key)
    # the prompts the runs really had: a sweep stored before synthetic prompts were
    # counted says 1, and every round and ceiling would follow it
    ran = {r.get("num_prompts") for r in runs if r.get("num_prompts")}
    if len(ran) == 1:
        settings["num_prompts"] = ran.pop()
    return settings


def settings_of_sweep(runs: list[dict]) -> list[dict]:
    """Each setting (series) of a sweep that has a succeeded run, most runs first."""
    counts: dict[tuple, int] = {}
    for run in runs:
        if run.get("status") == "succeeded" and run.get("tokens_per_second"):
            counts[setting_of(run)] = counts.get(setting_of(run), 0) + 1
    ordered = sorted(counts, key=lambda k: -counts[k])
    return [dict(zip(SETTING_AXES, key)) for key in ordered]


def _timeline_rounds(ranks: list[dict]) -> list[int]:
    return [sum(1 for s in (r.get("timeline") or []) if s.get("phase") == "generate") for r in ranks]


def _planned_rounds(run: dict) -> list[int] | None:
    plan = run.get("plan")
    if isinstance(plan, dict) and plan.get("assignment"):
        return [len(batches) for batches in plan["assignment"]]
    return None


def analyse_sweep(sweep: dict, ranks_by_run: dict | None = None, knee_threshold: float = KNEE_THRESHOLD,
                  setting: dict | int | None = None) -> dict:
    """Every figure the report and the web tab show, from one sweep's rows.

    `sweep` is `Store.get_sweep(id)`; `ranks_by_run` maps run id to its rank
    rows (with timelines), for the timeline check and the per-round times. A grid
    sweep is analysed one setting (series) at a time: `setting` picks it (or its
    index in `settings_available`), by default the one with most runs."""
    ranks_by_run = {int(k): v for k, v in (ranks_by_run or {}).items()}
    all_runs = sweep.get("runs") or []
    available = settings_of_sweep(all_runs)
    if isinstance(setting, int) and not isinstance(setting, bool):
        setting = available[setting] if 0 <= setting < len(available) else None
    chosen = setting or (available[0] if available else None)
    # a run that never ran may lack some settings (its dtype is resolved at launch): it
    # belongs to the setting it does not contradict
    runs = [r for r in all_runs if chosen is None
            or all(r.get(a) is None or r.get(a) == chosen.get(a) for a in SETTING_AXES)]
    settings = _sweep_settings(sweep, runs)
    mode = settings.get("mode") or "batched"
    batch_size = 1 if mode == "simple" else int(settings.get("batch_size") or 1)
    num_prompts = int(settings.get("num_prompts") or 0)
    good = [r for r in runs if r.get("status") == "succeeded" and r.get("tokens_per_second")]
    left_out = [r for r in runs if r not in good]
    counts = sorted({r["world_size"] for r in good})
    out = {
        "sweep": {k: sweep.get(k) for k in ("id", "name", "created_at", "finished_at", "status", "model", "mode",
                                             "batch_size", "max_new_tokens", "num_prompts", "gpu_counts",
                                             "repeats", "external", "source")},
        "settings": settings, "batch_size_effective": batch_size, "counts": counts,
        "runs_used": len(good), "runs_left_out": [{"id": r["id"], "gpus": r["world_size"], "status": r["status"],
                                                    "error": r.get("error")} for r in left_out],
        "points": [], "fits": {}, "knee": None, "quantisation": [], "diagnosis": None, "suggestion": None,
        "timeline_check": [], "explanation": "",
        "quantisation_curve": [], "extrapolate_to": None,
        "setting": chosen, "settings_available": available,
        "device": good[0].get("device") if good else None,
        "environment": next((r["environment"] for r in good if r.get("environment")), None),
    }
    if not counts:
        out["explanation"] = "This sweep has no succeeded run yet, so there is nothing to analyse."
        return out
    series = scaling_series(good, series_of=lambda run: ("sweep", sweep.get("id")))[0]
    base = series.baseline.x
    by_count = {p.x: p.runs for p in series.points}
    for p in series.points:
        out["points"].append({
            "gpus": p.x, "run_ids": [r["id"] for r in p.runs], "repeats": [r.get("repeat_index") or 0 for r in p.runs],
            "throughput": p.stats["tokens_per_second"], "seconds": p.stats["seconds"], "speedup": p.speedup,
            "speedup_ci": p.speedup_ci, "ideal_speedup": p.ideal_speedup, "efficiency": p.efficiency,
            "imbalance": p.imbalance})
    all_n = [r["world_size"] for r in good]
    all_x = [r["tokens_per_second"] for r in good]
    out["fits"] = {"amdahl": fit_scaling(all_n, all_x, "amdahl"), "usl": fit_scaling(all_n, all_x, "usl")}
    out["knee"] = knee(counts, [p["speedup"] for p in out["points"]], knee_threshold)
    usl_fit = out["fits"]["usl"]
    reach = 2 * counts[-1]
    if usl_fit.get("peak_n") and usl_fit["peak_n"] < 64:
        reach = max(reach, math.ceil(usl_fit["peak_n"]) + 1)
    out["extrapolate_to"] = int(min(64, max(reach, counts[-1] + 2)))
    overrides = {n: _planned_rounds(by_count[n][0]) for n in counts if _planned_rounds(by_count[n][0])}
    if num_prompts:
        out["quantisation"] = quantisation(num_prompts, batch_size, counts, base, overrides)
        # the ceiling at every count up to the extrapolation, where the steps show
        out["quantisation_curve"] = [
            {"gpus": q["gpus"], "rounds": q["rounds"], "ceiling_speedup": q["ceiling_speedup"]}
            for q in quantisation(num_prompts, batch_size, range(1, out["extrapolate_to"] + 1), base)
            if q["gpus"] >= base]
        out["timeline_check"] = _timeline_check(out["quantisation"], by_count, ranks_by_run)
        out["diagnosis"] = diagnose(out["points"], out["quantisation"], out["timeline_check"], base)
        out["suggestion"] = suggest(num_prompts, batch_size, counts, mode) if not overrides else None
    out["explanation"] = explain(out)
    return out


def _timeline_check(quant: list[dict], by_count: dict, ranks_by_run: dict) -> list[dict]:
    """Count the generate spans each rank stored and compare with the model."""
    rows = []
    for q in quant:
        observed, round_times, imbalance = [], [], []
        for run in by_count.get(q["gpus"], []):
            ranks = ranks_by_run.get(int(run["id"])) or []
            if not ranks or not any(r.get("timeline") for r in ranks):
                continue
            observed.append(_timeline_rounds(sorted(ranks, key=lambda r: r["rank"])))
            round_times += [s["end"] - s["start"] for r in ranks for s in (r.get("timeline") or [])
                            if s.get("phase") == "generate"]
            times = [r["seconds"] for r in ranks if r.get("seconds")]
            if times:
                imbalance.append(max(times) / (sum(times) / len(times)))
        rows.append({"gpus": q["gpus"], "predicted": q["rounds_per_rank"], "observed": observed,
                     "runs_checked": len(observed),
                     "agrees": (all(o == q["rounds_per_rank"] for o in observed) if observed else None),
                     "round_seconds_median": _median(round_times) if round_times else None,
                     "imbalance_median": _median(imbalance) if imbalance else None})
    return rows


# --------------------------------------------------------------------------
# A/B


def compare(a: dict, b: dict, alpha: float = ALPHA) -> dict:
    """Two analysed sweeps count by count: B's median throughput over A's and
    whether the difference is larger than the noise of the repeats."""
    a_by = {p["gpus"]: p for p in a["points"]}
    b_by = {p["gpus"]: p for p in b["points"]}
    rows = []
    for n in sorted(set(a_by) & set(b_by)):
        xa, xb = a_by[n]["throughput"], b_by[n]["throughput"]
        test = welch_test(xa["values"], xb["values"])
        if test["p"] is None:
            verdict = "no test (needs 2+ repeats on a side)"
        elif test["p"] >= alpha:
            verdict = "tie (inside the noise)"
        else:
            verdict = "B faster" if xb["median"] > xa["median"] else "A faster"
        rows.append({"gpus": n, "a_median": xa["median"], "b_median": xb["median"],
                     "ratio": xb["median"] / xa["median"], "a_repeats": xa["n"], "b_repeats": xb["n"],
                     "test": test["test"], "p": test["p"], "verdict": verdict})
    only = sorted(set(a_by) ^ set(b_by))
    return {"a": a["sweep"]["id"], "b": b["sweep"]["id"], "alpha": alpha, "rows": rows, "unpaired_counts": only,
            "caveats": ab_caveats(a, b)}


def _hardware(analysis: dict) -> str:
    settings = analysis.get("settings") or {}
    return str(settings.get("hardware") or analysis.get("device") or settings.get("device") or "unknown hardware")


def ab_caveats(a: dict, b: dict) -> list[str]:
    """What makes an A/B more than a change of one setting: a ratio between two
    models, or two machines, measures them, not the setting."""
    out = []
    for what, of in (("models", lambda x: x["sweep"].get("model") or (x.get("settings") or {}).get("model")),
                     ("hardware", _hardware),
                     ("dtypes", lambda x: (x.get("settings") or {}).get("dtype"))):
        va, vb = of(a), of(b)
        if va and vb and va != vb:
            out.append(f"Different {what}: A is {va}, B is {vb}; the ratio compares them, not one setting.")
    if bool(a["sweep"].get("external")) != bool(b["sweep"].get("external")):
        out.append("One side is published figures, not measured here: its timing method is the publisher's.")
    return out

"""Why a sweep scales the way it does: pure math over stored rows, no I/O.

Everything here takes plain dicts (the rows `db.store.Store` returns) and gives
back plain dicts, so the CLI report, the web tab and the tests share one path:

- per GPU count: median throughput, a 95% confidence interval of the mean
  (Student t, computed here: no scipy at runtime), speedup and efficiency;
- Amdahl and Universal Scalability Law fits, X(n) = λn / (1 + σ(n−1) + κn(n−1)),
  with the predicted peak and the knee of the measured curve;
- the work-quantisation model: rounds on the busiest rank from the same split
  the worker makes (`runner.batching`), the speedup ceiling that follows, and a
  diagnosis in words of which cause fits the data, checked against the stored
  per-rank timelines;
- A/B comparison of two sweeps, count by count, with a Welch t-test.
"""

from __future__ import annotations

import math
from statistics import median as _median
from typing import Iterable, Sequence

import numpy as np

from runner.batching import make_batches, split_contiguous

CONFIDENCE = 0.95
KNEE_THRESHOLD = 0.5  # an added GPU worth less than half a GPU of speedup
FLAT_ROUND_TOLERANCE = 0.10  # time per round within 10% counts as flat
SUGGEST_EFFICIENCY = 0.9  # quantisation may cost at most 10% at every count
ALPHA = 0.05


# --------------------------------------------------------------------------
# Student t distribution (regularised incomplete beta, Numerical Recipes style)


def _betacf(a: float, b: float, x: float) -> float:
    tiny = 1e-300
    qab, qap, qam = a + b, a + 1.0, a - 1.0
    c, d = 1.0, 1.0 - qab * x / qap
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 400):
        m2 = 2 * m
        aa = m * (b - m) * x / ((qam + m2) * (a + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + aa / c
        c = c if abs(c) > tiny else tiny
        h *= d * c
        aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + aa / c
        c = c if abs(c) > tiny else tiny
        delta = d * c
        h *= delta
        if abs(delta - 1.0) < 1e-14:
            break
    return h


def betainc(a: float, b: float, x: float) -> float:
    """Regularised incomplete beta I_x(a, b)."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    front = math.exp(math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x))
    if x < (a + 1.0) / (a + b + 2.0):
        return front * _betacf(a, b, x) / a
    return 1.0 - front * _betacf(b, a, 1.0 - x) / b


def t_cdf(t: float, df: float) -> float:
    """P(T <= t) for Student's t with `df` degrees of freedom (df may be fractional)."""
    if df <= 0:
        raise ValueError("degrees of freedom must be positive")
    tail = 0.5 * betainc(df / 2.0, 0.5, df / (df + t * t))
    return 1.0 - tail if t > 0 else tail


def t_ppf(p: float, df: float) -> float:
    """The t quantile: the value below which a fraction `p` lies (bisection on t_cdf)."""
    if not 0.0 < p < 1.0:
        raise ValueError("p must lie strictly between 0 and 1")
    if p == 0.5:
        return 0.0
    lo, hi = -1.0, 1.0
    while t_cdf(lo, df) > p:
        lo *= 2.0
    while t_cdf(hi, df) < p:
        hi *= 2.0
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if t_cdf(mid, df) < p:
            lo = mid
        else:
            hi = mid
        if hi - lo < 1e-12 * max(1.0, abs(mid)):
            break
    return 0.5 * (lo + hi)


# --------------------------------------------------------------------------
# Samples


def describe(values: Iterable[float], confidence: float = CONFIDENCE, floor: float | None = None) -> dict:
    """Median, mean and a Student-t confidence interval of the mean.

    The interval needs at least two values; with one it is None (no error bar
    rather than a made-up one). `floor` clips the interval for quantities that
    cannot go below it (throughput, seconds): with two repeats t is 12.7 and the
    raw interval easily reaches below zero."""
    xs = [float(v) for v in values if v is not None]
    out = {"n": len(xs), "values": xs, "median": None, "mean": None, "std": None, "ci_low": None, "ci_high": None}
    if not xs:
        return out
    out["median"] = _median(xs)
    out["mean"] = sum(xs) / len(xs)
    if len(xs) >= 2:
        std = float(np.std(xs, ddof=1))
        half = t_ppf(0.5 + confidence / 2.0, len(xs) - 1) * std / math.sqrt(len(xs))
        low = out["mean"] - half if floor is None else max(floor, out["mean"] - half)
        out.update(std=std, ci_low=low, ci_high=out["mean"] + half)
    return out


def welch_test(a: Sequence[float], b: Sequence[float]) -> dict:
    """Two-sided Welch t-test; with one value on a side, a one-sample test of
    the other side against it (a published figure has no spread to pool)."""
    a, b = [float(x) for x in a], [float(x) for x in b]
    if len(a) >= 2 and len(b) >= 2:
        va, vb = np.var(a, ddof=1) / len(a), np.var(b, ddof=1) / len(b)
        se = math.sqrt(va + vb)
        if se == 0:
            return {"test": "welch", "t": None, "df": None, "p": 0.0 if np.mean(a) != np.mean(b) else 1.0}
        t = (np.mean(b) - np.mean(a)) / se
        df = (va + vb) ** 2 / ((va**2 / (len(a) - 1) if va else 0.0) + (vb**2 / (len(b) - 1) if vb else 0.0))
        return {"test": "welch", "t": float(t), "df": float(df), "p": float(2.0 * (1.0 - t_cdf(abs(t), df)))}
    if len(a) == 1 and len(b) >= 2 or len(b) == 1 and len(a) >= 2:
        sample, fixed = (b, a[0]) if len(a) == 1 else (a, b[0])
        se = float(np.std(sample, ddof=1)) / math.sqrt(len(sample))
        if se == 0:
            return {"test": "one-sample", "t": None, "df": None, "p": 0.0 if np.mean(sample) != fixed else 1.0}
        t = (np.mean(sample) - fixed) / se
        df = len(sample) - 1
        return {"test": "one-sample", "t": float(t), "df": float(df), "p": float(2.0 * (1.0 - t_cdf(abs(t), df)))}
    return {"test": None, "t": None, "df": None, "p": None}


# --------------------------------------------------------------------------
# Scaling fits


def usl(n, lam: float, sigma: float, kappa: float = 0.0):
    """Universal Scalability Law throughput; kappa = 0 is Amdahl's law."""
    n = np.asarray(n, dtype=float)
    return lam * n / (1.0 + sigma * (n - 1.0) + kappa * n * (n - 1.0))


def _linear_part(lam: float, ns: np.ndarray, xs: np.ndarray, with_kappa: bool) -> tuple[float, float]:
    """For a fixed λ, σ and κ enter linearly: λn/X − 1 = σ(n−1) + κn(n−1).
    Weighted (so residuals approximate throughput residuals) and kept ≥ 0."""
    y = lam * ns / xs - 1.0
    w = xs**2 / (lam * ns)
    cols = [ns - 1.0] + ([ns * (ns - 1.0)] if with_kappa else [])
    A = np.stack(cols, axis=1) * w[:, None]
    yw = y * w
    candidates = [np.zeros(len(cols))]
    coef, *_ = np.linalg.lstsq(A, yw, rcond=None)
    candidates.append(np.clip(coef, 0.0, None))
    for j in range(len(cols)):  # one coefficient free, the other at its bound 0
        col = A[:, j]
        denom = float(col @ col)
        if denom > 0:
            c = np.zeros(len(cols))
            c[j] = max(0.0, float(col @ yw) / denom)
            candidates.append(c)
    candidates = [np.concatenate([[min(c[0], 1.0)], c[1:]]) for c in candidates]  # σ is a fraction: 0 ≤ σ ≤ 1
    best = min(candidates, key=lambda c: float(np.sum((A @ c - yw) ** 2)))
    return float(best[0]), float(best[1]) if with_kappa else 0.0


def _sse(params, ns, xs) -> float:
    return float(np.sum((xs - usl(ns, *params)) ** 2))


def fit_scaling(counts: Sequence[float], throughputs: Sequence[float], model: str = "usl") -> dict:
    """Least-squares fit of throughput against GPU count, every repeat a point.

    Returns λ (throughput of one GPU), σ (contention, kept in [0, 1]), κ
    (coherency, ≥ 0; 0 for Amdahl), R², the predicted peak n* = sqrt((1−σ)/κ), or a `note` saying why
    there is no fit (too few distinct counts)."""
    if model not in ("usl", "amdahl"):
        raise ValueError("model must be 'usl' or 'amdahl'")
    with_kappa = model == "usl"
    pairs = [(float(n), float(x)) for n, x in zip(counts, throughputs) if x is not None and x > 0 and n >= 1]
    distinct = sorted({n for n, _ in pairs})
    needed = 3 if with_kappa else 2
    out = {"model": model, "lam": None, "sigma": None, "kappa": None, "r2": None, "rmse": None,
           "peak_n": None, "peak_throughput": None, "max_speedup": None, "parallel_fraction": None,
           "points": len(pairs), "distinct_counts": len(distinct), "note": ""}
    if len(distinct) < needed:
        out["note"] = (f"needs at least {needed} different GPU counts, the sweep has {len(distinct)}")
        return out
    ns = np.array([p[0] for p in pairs])
    xs = np.array([p[1] for p in pairs])
    per_gpu = xs / ns
    best = None
    for lam in np.geomspace(per_gpu.min() * 0.5, per_gpu.max() * 3.0, 500):
        sigma, kappa = _linear_part(float(lam), ns, xs, with_kappa)
        params = (float(lam), sigma, kappa)
        sse = _sse(params, ns, xs)
        if best is None or sse < best[0]:
            best = (sse, params)
    params = np.array(best[1])
    params = _polish(params, ns, xs, with_kappa)
    lam, sigma, kappa = (float(v) for v in params)
    resid = xs - usl(ns, lam, sigma, kappa)
    total = float(np.sum((xs - xs.mean()) ** 2))
    out.update(lam=lam, sigma=sigma, kappa=kappa if with_kappa else 0.0,
               r2=(1.0 - float(resid @ resid) / total) if total > 0 else None,
               rmse=float(math.sqrt(float(resid @ resid) / len(xs))))
    if kappa > 0:
        peak = math.sqrt(max(0.0, 1.0 - sigma) / kappa)
        out["peak_n"] = peak
        out["peak_throughput"] = float(usl(peak, lam, sigma, kappa))
    elif sigma > 0:
        out["max_speedup"] = 1.0 / sigma  # Amdahl's asymptote, never reached
    if not with_kappa:
        out["parallel_fraction"] = 1.0 - sigma
    if len(distinct) == needed:
        out["note"] = "as many parameters as GPU counts: the data cannot test this model"
    return out


def _polish(params: np.ndarray, ns: np.ndarray, xs: np.ndarray, with_kappa: bool) -> np.ndarray:
    """A few Levenberg-Marquardt steps in throughput space, parameters kept ≥ 0."""
    free = 3 if with_kappa else 2
    p = params.copy()
    damping = 1e-3
    current = _sse(p, ns, xs)
    for _ in range(100):
        jac = np.zeros((len(ns), free))
        base = usl(ns, *p)
        for j in range(free):
            step = 1e-6 * max(abs(p[j]), 1e-6)
            q = p.copy()
            q[j] += step
            jac[:, j] = (usl(ns, *q) - base) / step
        resid = xs - base
        jtj = jac.T @ jac
        grad = jac.T @ resid
        improved = False
        for _ in range(20):
            try:
                delta = np.linalg.solve(jtj + damping * np.diag(np.diag(jtj) + 1e-12), grad)
            except np.linalg.LinAlgError:
                break
            q = p.copy()
            q[:free] = np.clip(p[:free] + delta, [1e-12, 0.0, 0.0][:free], [np.inf, 1.0, np.inf][:free])
            sse = _sse(q, ns, xs)
            if sse < current:
                p, current, improved = q, sse, True
                damping = max(damping / 3.0, 1e-12)
                break
            damping *= 4.0
        if not improved or current == 0.0:
            break
    return p


def knee(counts: Sequence[int], speedups: Sequence[float], threshold: float = KNEE_THRESHOLD) -> dict:
    """The first count whose marginal gain (speedup added per added GPU) drops below `threshold`."""
    gains = []
    for (n0, s0), (n1, s1) in zip(zip(counts, speedups), list(zip(counts, speedups))[1:]):
        gains.append({"from": n0, "to": n1, "gain_per_gpu": (s1 - s0) / (n1 - n0)})
    at = next((g["to"] for g in gains if g["gain_per_gpu"] < threshold), None)
    return {"threshold": threshold, "count": at, "gains": gains}


# --------------------------------------------------------------------------
# Work quantisation


def rank_rounds(num_prompts: int, world: int, batch_size: int) -> list[int]:
    """generate calls each rank makes: the worker's own split and batching."""
    return [len(make_batches(list(part), batch_size)) for part in split_contiguous(num_prompts, world)]


def quantisation(num_prompts: int, batch_size: int, counts: Sequence[int], base: int | None = None,
                 rounds_override: dict | None = None) -> list[dict]:
    """Rounds on the busiest rank per count and the speedup ceiling that follows:
    with every round taking the same time, the run can be at most
    rounds(base) / rounds(n) times faster than on `base` GPUs. For base 1 that is
    ceil(N/B) / ceil(ceil(N/n)/B). `rounds_override` maps a count to the rounds
    per rank of a planned (mode auto) assignment."""
    counts = sorted(counts)
    base = base or counts[0]
    rows = []
    for n in counts:
        per_rank = (rounds_override or {}).get(n) or rank_rounds(num_prompts, n, batch_size)
        busiest_prompts = len(split_contiguous(num_prompts, n)[0])
        rows.append({"gpus": n, "rounds_per_rank": per_rank, "rounds": max(per_rank),
                     "busiest_prompts": busiest_prompts,
                     "last_round_fill": (busiest_prompts - (max(per_rank) - 1) * batch_size) / batch_size})
    base_rounds = next(r["rounds"] for r in rows if r["gpus"] == base) if any(r["gpus"] == base for r in rows) \
        else max(rank_rounds(num_prompts, base, batch_size))
    for r in rows:
        r["ceiling_speedup"] = base_rounds / r["rounds"]
        r["ceiling_efficiency"] = r["ceiling_speedup"] / (r["gpus"] / base)
    return rows


def _min_quant_efficiency(num_prompts: int, batch_size: int, counts: Sequence[int]) -> float:
    return min(r["ceiling_efficiency"] for r in quantisation(num_prompts, batch_size, counts, base=1))


def suggest(num_prompts: int, batch_size: int, counts: Sequence[int], mode: str = "batched",
            target: float = SUGGEST_EFFICIENCY) -> dict:
    """A batch size (same prompts) and a prompt count (same batch size) whose
    quantisation costs at most 1 − target at every swept count."""
    counts = sorted(set(int(c) for c in counts))
    out = {"target": target, "current": _min_quant_efficiency(num_prompts, batch_size, counts),
           "batch_size": None, "num_prompts": None, "text": ""}
    if out["current"] >= target:
        out["text"] = (f"No change needed: with {num_prompts} prompts and batch {batch_size} quantisation costs "
                       f"at most {100 * (1 - out['current']):.0f}% at every count swept.")
        return out
    if mode != "simple":
        fits = [b for b in range(1, num_prompts + 1) if _min_quant_efficiency(num_prompts, b, counts) >= target]
        if fits:
            out["batch_size"] = min(fits, key=lambda b: (abs(b - batch_size), -b))
    lcm = math.lcm(*counts) * batch_size
    upper = max(4 * num_prompts, lcm)  # N a multiple of B·lcm(counts) always divides evenly
    fits = [p for p in range(1, upper + 1) if _min_quant_efficiency(p, batch_size, counts) >= target]
    if fits:
        out["num_prompts"] = min(fits, key=lambda p: (abs(p - num_prompts), -p))
    parts = []
    if out["batch_size"]:
        ceil_b = [f"{r['ceiling_speedup']:.2f}" for r in quantisation(num_prompts, out["batch_size"], counts, 1)]
        parts.append(f"batch size {out['batch_size']} instead of {batch_size} (ceiling {', '.join(ceil_b)}; "
                     "a different batch size changes the time per round: measure it)")
    if out["num_prompts"]:
        ceil_n = [f"{r['ceiling_speedup']:.2f}" for r in quantisation(out["num_prompts"], batch_size, counts, 1)]
        parts.append(f"{out['num_prompts']} prompts instead of {num_prompts} (ceiling {', '.join(ceil_n)})")
    counts_text = ", ".join(str(c) for c in counts)
    out["text"] = (f"To remove the quantisation for {counts_text} GPUs (every count within "
                   f"{100 * (1 - target):.0f}% of ideal rounds): " + " or ".join(parts) + ".") if parts else \
        "No batch size or prompt count near the current ones removes the quantisation."
    return out


# --------------------------------------------------------------------------
# One sweep


def world_size(run: dict) -> int:
    """A stored run's GPUs (processes) over all its nodes: the x of every scaling chart."""
    return int(run.get("num_gpus") or 1) * int(run.get("num_nodes") or 1)


def _sweep_settings(sweep: dict) -> dict:
    settings = dict(sweep.get("settings") or {})
    for key in ("mode", "batch_size", "num_prompts", "max_new_tokens", "model"):
        if settings.get(key) is None:
            settings[key] = sweep.get(key)
    runs = sweep.get("runs") or []
    if settings.get("num_prompts") is None and runs:
        settings["num_prompts"] = runs[0]["num_prompts"]
    if settings.get("batch_size") is None and runs:
        settings["batch_size"] = runs[0]["batch_size"]
    return settings


def _timeline_rounds(ranks: list[dict]) -> list[int]:
    return [sum(1 for s in (r.get("timeline") or []) if s.get("phase") == "generate") for r in ranks]


def _planned_rounds(run: dict) -> list[int] | None:
    plan = run.get("plan")
    if isinstance(plan, dict) and plan.get("assignment"):
        return [len(batches) for batches in plan["assignment"]]
    return None


def analyse_sweep(sweep: dict, ranks_by_run: dict | None = None, knee_threshold: float = KNEE_THRESHOLD) -> dict:
    """Every figure the report and the web tab show, from one sweep's rows.

    `sweep` is `Store.get_sweep(id)`; `ranks_by_run` maps run id to its rank
    rows (with timelines), for the timeline check and the per-round times."""
    ranks_by_run = {int(k): v for k, v in (ranks_by_run or {}).items()}
    settings = _sweep_settings(sweep)
    mode = settings.get("mode") or "batched"
    batch_size = 1 if mode == "simple" else int(settings.get("batch_size") or 1)
    num_prompts = int(settings.get("num_prompts") or 0)
    runs = sweep.get("runs") or []
    good = [r for r in runs if r.get("status") == "succeeded" and r.get("tokens_per_second")]
    left_out = [r for r in runs if r not in good]
    counts = sorted({world_size(r) for r in good})
    out = {
        "sweep": {k: sweep.get(k) for k in ("id", "name", "created_at", "finished_at", "status", "model", "mode",
                                             "batch_size", "max_new_tokens", "num_prompts", "gpu_counts",
                                             "repeats", "external", "source")},
        "settings": settings, "batch_size_effective": batch_size, "counts": counts,
        "runs_used": len(good), "runs_left_out": [{"id": r["id"], "gpus": world_size(r), "status": r["status"],
                                                    "error": r.get("error")} for r in left_out],
        "points": [], "fits": {}, "knee": None, "quantisation": [], "diagnosis": None, "suggestion": None,
        "timeline_check": [], "explanation": "",
        "quantisation_curve": [], "extrapolate_to": None,
        "device": good[0].get("device") if good else None,
        "environment": next((r["environment"] for r in good if r.get("environment")), None),
    }
    if not counts:
        out["explanation"] = "This sweep has no succeeded run yet, so there is nothing to analyse."
        return out
    base = counts[0]
    by_count = {n: [r for r in good if world_size(r) == n] for n in counts}
    base_tp = describe((r["tokens_per_second"] for r in by_count[base]), floor=0.0)
    for n in counts:
        tp = describe((r["tokens_per_second"] for r in by_count[n]), floor=0.0)
        secs = describe((r["seconds"] for r in by_count[n]), floor=0.0)
        speedup = tp["median"] / base_tp["median"]
        point = {"gpus": n, "run_ids": [r["id"] for r in by_count[n]],
                 "repeats": [r.get("repeat_index") or 0 for r in by_count[n]],
                 "throughput": tp, "seconds": secs, "speedup": speedup,
                 "speedup_ci": _ratio_ci(tp, base_tp, same=(n == base)),
                 "ideal_speedup": n / base, "efficiency": speedup / (n / base),
                 "imbalance": describe(r.get("imbalance") for r in by_count[n])["median"]}
        out["points"].append(point)
    all_n = [world_size(r) for r in good]
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


def _ratio_ci(tp: dict, base: dict, same: bool) -> tuple[float, float] | None:
    """Speedup interval by the delta method: relative standard errors add in quadrature."""
    if same or tp["std"] is None:
        return None
    rel = (tp["std"] / math.sqrt(tp["n"]) / tp["mean"]) ** 2
    df = tp["n"] - 1
    if base["std"] is not None:
        rel += (base["std"] / math.sqrt(base["n"]) / base["mean"]) ** 2
        df = min(df, base["n"] - 1)
    ratio = tp["mean"] / base["mean"]
    half = t_ppf(0.5 + CONFIDENCE / 2.0, df) * ratio * math.sqrt(rel)
    return (max(0.0, ratio - half), ratio + half)


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


def diagnose(points: list[dict], quant: list[dict], check: list[dict], base: int) -> dict:
    """Which cause fits: quantisation (seconds per round flat, rounds drop in
    steps) or contention (seconds per round grow with n).

    Efficiency splits exactly into two factors: E = (ceiling / ideal) x
    (measured / ceiling). The first is what quantisation costs, the second what
    slower rounds cost; the verdict is the factor that loses more."""
    rows = []
    q_by = {q["gpus"]: q for q in quant}
    c_by = {c["gpus"]: c for c in check}
    base_secs = next(p for p in points if p["gpus"] == base)["seconds"]["median"]
    base_round = base_secs / q_by[base]["rounds"]
    for p in points:
        q = q_by[p["gpus"]]
        per_round = p["seconds"]["median"] / q["rounds"]
        rows.append({"gpus": p["gpus"], "rounds": q["rounds"], "seconds": p["seconds"]["median"],
                     "seconds_per_round": per_round, "round_growth": per_round / base_round,
                     "timeline_round_seconds": c_by.get(p["gpus"], {}).get("round_seconds_median"),
                     "predicted_speedup": q["ceiling_speedup"], "measured_speedup": p["speedup"],
                     "quantisation_efficiency": q["ceiling_efficiency"],
                     "round_efficiency": p["speedup"] / q["ceiling_speedup"],
                     "efficiency": p["efficiency"]})
    rest = [r for r in rows if r["gpus"] != base]
    loss_q = sum(max(0.0, -math.log(r["quantisation_efficiency"])) for r in rest)
    loss_c = sum(max(0.0, -math.log(r["round_efficiency"])) for r in rest)
    growth = [r["round_growth"] for r in rest]
    if not rest:
        verdict = "single-count"
    elif min(r["efficiency"] for r in rest) >= 0.9:
        verdict = "near-linear"
    elif loss_c <= 0.34 * (loss_q + loss_c):
        verdict = "quantisation"
    elif loss_q <= 0.34 * (loss_q + loss_c):
        verdict = "contention"
    else:
        verdict = "both"
    flat_steps = [(a["gpus"], b["gpus"], b["rounds"]) for a, b in zip(quant, quant[1:]) if a["rounds"] == b["rounds"]]
    return {"verdict": verdict, "rows": rows, "loss_quantisation": loss_q, "loss_contention": loss_c,
            "round_growth_max": max(growth) if growth else 1.0, "flat_steps": flat_steps}


def _cpu_cores(analysis: dict) -> int | None:
    env = analysis.get("environment") or {}
    nodes = env.get("nodes") or [env]
    cores = nodes[0].get("cpu_cores") if nodes and isinstance(nodes[0], dict) else None
    return int(cores) if cores else None


def _sig(value: float) -> str:
    """Three significant digits, trailing zeros kept (3.00, not 3)."""
    return f"{value:#.3g}".rstrip(".")


def _join(values, fmt: str = "{}") -> str:
    if fmt == "{:.3g}":
        return ", ".join(_sig(v) for v in values)
    return ", ".join(fmt.format(v) for v in values)


def explain(analysis: dict) -> str:
    """The diagnosis in words, with the numbers it rests on."""
    d = analysis.get("diagnosis")
    points = analysis["points"]
    if not points:
        return analysis.get("explanation") or ""
    counts = [p["gpus"] for p in points]
    lines = []
    if d is None:
        lines.append("The sweep does not record how many prompts it ran, so the quantisation model cannot be applied.")
        return "\n".join(lines)
    if analysis["sweep"].get("status") in ("running", "queued"):
        lines.append(f"This sweep is still running: {analysis['runs_used']} run(s) finished so far, "
                     "so these figures will change.")
    rows = d["rows"]
    b = analysis["batch_size_effective"]
    n_prompts = analysis["settings"].get("num_prompts")
    lines.append(f"{n_prompts} prompts, batch {b}, on {_join(counts)} GPU(s): the busiest rank runs "
                 f"{_join(r['rounds'] for r in rows)} rounds (generate calls), taking "
                 f"{_join((r['seconds_per_round'] for r in rows), '{:.3g}')} s per round.")
    lines.append(f"Predicted speedup from rounds alone: {_join((r['predicted_speedup'] for r in rows), '{:.2f}')}; "
                 f"measured: {_join((r['measured_speedup'] for r in rows), '{:.2f}')}.")
    verdict = d["verdict"]
    if verdict == "single-count":
        lines.append("Only one GPU count succeeded, so there is no scaling to explain yet.")
    elif verdict == "near-linear":
        lines.append("Every count runs at 90% efficiency or better: there is no plateau to explain.")
    elif verdict == "quantisation":
        lines.append(f"Cause: work quantisation/imbalance. Seconds per round stay within "
                     f"{100 * (d['round_growth_max'] - 1):.0f}% of the {counts[0]}-GPU value while the rounds on the "
                     "busiest rank drop in steps; the measured speedup follows the rounds, not a communication cost.")
    elif verdict == "contention":
        worst = max(rows, key=lambda r: r["round_growth"])
        before, after = _sig(rows[0]["seconds_per_round"]), _sig(worst["seconds_per_round"])
        lines.append(f"Cause: contention. A round takes {worst['round_growth']:.2f}x as long on {worst['gpus']} GPUs "
                     f"as on {counts[0]} ({before} s -> {after} s); "
                     "the ranks slow each other down (shared memory bandwidth, CPU cores, PCIe or the interconnect), "
                     "while the rounds alone would allow more speedup.")
        cores = _cpu_cores(analysis)
        if analysis.get("device") == "cpu" and cores and max(counts) > cores:
            lines.append(f"Here the ranks are CPU processes and the machine has {cores} CPU cores: from "
                         f"{cores + 1} processes on, they take turns on the same cores.")
    else:
        lines.append(f"Cause: both. Quantisation costs a factor {math.exp(d['loss_quantisation']):.2f} and slower "
                     f"rounds (contention) a factor {math.exp(d['loss_contention']):.2f} over the counts swept.")
    faster = [r for r in rows[1:] if r["round_growth"] < 1.0 - FLAT_ROUND_TOLERANCE]
    if faster:
        r = min(faster, key=lambda r: r["round_growth"])
        lines.append(f"A round took less time on {r['gpus']} GPUs than on {counts[0]} "
                     f"({_sig(rows[0]['seconds_per_round'])} s -> {_sig(r['seconds_per_round'])} s), so the measured "
                     "speedup beats the rounds ceiling there; check the confidence intervals before reading it "
                     "as real.")
    for a, c, rounds in d["flat_steps"]:
        lines.append(f"Going from {a} to {c} GPUs leaves the busiest rank with {rounds} rounds, so the extra GPUs "
                     "cannot make the run faster.")
    check = [c for c in analysis.get("timeline_check", []) if c["runs_checked"]]
    if check:
        if all(c["agrees"] for c in check):
            lines.append("The stored timelines agree: every rank ran the predicted number of generate calls ("
                         + "; ".join(f"{c['gpus']} GPU(s): {_join(c['predicted'])}" for c in check) + ").")
        else:
            bad = [c for c in check if not c["agrees"]]
            lines.append("The stored timelines disagree with the model at "
                         + "; ".join(f"{c['gpus']} GPU(s): predicted {_join(c['predicted'])}, recorded "
                                     f"{' / '.join(_join(o) for o in c['observed'])}" for c in bad)
                         + ": the split was not the one assumed, so trust the timeline.")
        timed = [c for c in check if c["round_seconds_median"]]
        if timed:
            lines.append("Median generate call in the timelines: "
                         + ", ".join(f"{_sig(c['round_seconds_median'])} s at {c['gpus']}" for c in timed) + ".")
    knee_info = analysis.get("knee") or {}
    if knee_info.get("count"):
        lines.append(f"Knee: at {knee_info['count']} GPUs an added GPU brings less than "
                     f"{knee_info['threshold']:.2f} of a GPU's worth of speedup.")
    usl_fit = analysis["fits"].get("usl") or {}
    if usl_fit.get("lam") is not None:
        peak = (f"peak at n* = {usl_fit['peak_n']:.1f}" if usl_fit.get("peak_n") else "no peak (κ = 0)")
        lines.append(f"USL fit: σ = {usl_fit['sigma']:.3f} (contention), κ = {usl_fit['kappa']:.4f} (coherency), "
                     f"{peak}, R² = {usl_fit['r2']:.3f}." if usl_fit.get("r2") is not None else
                     f"USL fit: σ = {usl_fit['sigma']:.3f}, κ = {usl_fit['kappa']:.4f}, {peak}.")
        if usl_fit.get("r2") is not None and usl_fit["r2"] < 0.5:
            lines.append("The fit explains less than half of the variation between runs: the repeats are noisy, "
                         "so read σ and κ loosely and add repeats.")
        if verdict == "quantisation":
            lines.append("The USL treats the quantisation steps as contention: read its σ and κ as a smooth summary, "
                         "not as a cause.")
    sug = analysis.get("suggestion")
    if sug and sug.get("text"):
        lines.append(sug["text"])
    return "\n".join(lines)


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
    return {"a": a["sweep"]["id"], "b": b["sweep"]["id"], "alpha": alpha, "rows": rows, "unpaired_counts": only}

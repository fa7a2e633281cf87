"""The scaling models a sweep is explained with. Pure math, no I/O.

- Amdahl and the Universal Scalability Law, X(n) = λn / (1 + σ(n−1) + κn(n−1)),
  fitted to throughput against GPU count, and the knee of the measured curve;
- work quantisation: the rounds (generate calls) on the busiest rank from the
  same split the worker makes (`runner.batching`), the speedup ceiling that
  follows, and a batch size or prompt count that removes the steps;
- `diagnose`: which of the two explains a measured curve.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np

from runner.batching import make_batches, split_contiguous

KNEE_THRESHOLD = 0.5  # an added GPU worth less than half a GPU of speedup
SUGGEST_EFFICIENCY = 0.9  # quantisation may cost at most 10% at every count


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
           "sigma_se": None, "kappa_se": None, "points": len(pairs), "distinct_counts": len(distinct), "note": ""}
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
    se_sigma, se_kappa = _standard_errors(np.array([lam, sigma, kappa]), ns, xs, with_kappa)
    out.update(sigma_se=se_sigma, kappa_se=se_kappa)
    top_throughput = float(usl(float(ns.max()), lam, sigma, kappa))
    noise = out["rmse"] / top_throughput if top_throughput > 0 else 0.0  # the fit's residual, as a share
    if with_kappa and _told_from_zero(kappa, se_kappa, _share_at_top(ns, sigma, kappa, "kappa"), noise):
        peak = math.sqrt(max(0.0, 1.0 - sigma) / kappa)
        out["peak_n"] = peak
        out["peak_throughput"] = float(usl(peak, lam, sigma, kappa))
    elif _told_from_zero(sigma, se_sigma, _share_at_top(ns, sigma, kappa, "sigma"), noise):
        out["max_speedup"] = 1.0 / sigma  # Amdahl's asymptote, never reached
    if kappa > 0 and out["peak_n"] is None:
        out["note"] = "κ is indistinguishable from zero in this data: no peak within its reach"
    if not with_kappa:
        out["parallel_fraction"] = 1.0 - sigma
    if len(distinct) == needed:
        out["note"] = "as many parameters as GPU counts: the data cannot test this model"
    return out


# A coefficient whose whole effect on the largest measured count is below this
# share of its throughput is float round-off, whatever its standard error says.
NEGLIGIBLE_SHARE = 1e-6


def _share_at_top(ns, sigma: float, kappa: float, which: str) -> float:
    """The share of the largest count's throughput that σ or κ takes away."""
    top = float(ns.max())
    term = sigma * (top - 1.0) if which == "sigma" else kappa * top * (top - 1.0)
    return term / (1.0 + sigma * (top - 1.0) + kappa * top * (top - 1.0))


def _told_from_zero(value: float, se: float | None, share: float, noise: float) -> bool:
    """Whether the data tell a fitted σ or κ apart from zero: it must exceed twice its
    standard error, and what it takes off the largest count must exceed both round-off
    and the fit's residual noise there. A κ of 1e-18 fitted to linear data (a BLAS's
    rounding) would otherwise put a peak at n* ≈ 1e9."""
    if not value or value <= 0:
        return False
    if se is not None and value <= 2.0 * se:
        return False
    return share > max(NEGLIGIBLE_SHARE, noise)


def _jacobian(params: np.ndarray, ns: np.ndarray, free: int) -> tuple[np.ndarray, np.ndarray]:
    """The USL's throughputs at `params` and their forward-difference Jacobian in the
    first `free` parameters (λ, σ, and κ when it is fitted)."""
    jac = np.zeros((len(ns), free))
    base = usl(ns, *params)
    for j in range(free):
        step = 1e-6 * max(abs(params[j]), 1e-6)
        q = params.copy()
        q[j] += step
        jac[:, j] = (usl(ns, *q) - base) / step
    return base, jac


def _standard_errors(params: np.ndarray, ns: np.ndarray, xs: np.ndarray, with_kappa: bool):
    """σ's and κ's standard errors from the Jacobian at the fit (s²(JᵀJ)⁻¹); None
    where the data leave no degrees of freedom or the matrix is singular."""
    free = 3 if with_kappa else 2
    dof = len(ns) - free
    if dof <= 0:
        return None, None
    base, jac = _jacobian(params, ns, free)
    s2 = float(np.sum((xs - base) ** 2)) / dof
    try:
        cov = s2 * np.linalg.inv(jac.T @ jac)
    except np.linalg.LinAlgError:
        return None, None
    se = np.sqrt(np.clip(np.diag(cov), 0.0, None))
    return float(se[1]), (float(se[2]) if with_kappa else None)


def _polish(params: np.ndarray, ns: np.ndarray, xs: np.ndarray, with_kappa: bool) -> np.ndarray:
    """A few Levenberg-Marquardt steps in throughput space, parameters kept ≥ 0."""
    free = 3 if with_kappa else 2
    p = params.copy()
    damping = 1e-3
    current = _sse(p, ns, xs)
    for _ in range(100):
        base, jac = _jacobian(p, ns, free)
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
# Which cause fits


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

"""The growth of the time per round with the GPU count, fitted as the USL's
denominator: u(n) = a + b(n−1) + c·n(n−1), every coefficient ≥ 0 (contention only
adds), and the leverage of a prediction at n. Used by `studio.analysis.predict`."""

from __future__ import annotations

import math

import numpy as np


def _columns(ns: np.ndarray, form: str) -> np.ndarray:
    cols = [np.ones_like(ns)]
    if form in ("sigma", "usl"):
        cols.append(ns - 1.0)
    if form == "usl":
        cols.append(ns * (ns - 1.0))
    return np.stack(cols, axis=1)


def fit_growth(ns, us, form: str | None = None) -> dict:
    """Least squares of the per-round time against n, coefficients kept ≥ 0 (the
    best of every subset of free coefficients, the constant always free)."""
    ns, us = np.asarray(ns, dtype=float), np.asarray(us, dtype=float)
    distinct = len(set(ns.tolist()))
    form = form or ("usl" if distinct >= 4 else "sigma" if distinct >= 2 else "flat")
    A = _columns(ns, form)
    best = None
    for mask in range(1 << (A.shape[1] - 1)):
        keep = [0] + [j + 1 for j in range(A.shape[1] - 1) if mask >> j & 1]
        coef, *_ = np.linalg.lstsq(A[:, keep], us, rcond=None)
        if np.any(coef < 0):
            continue
        full = np.zeros(A.shape[1])
        full[keep] = coef
        sse = float(np.sum((A @ full - us) ** 2))
        if best is None or sse < best[0]:
            best = (sse, full)
    coef = np.pad(best[1], (0, 3 - len(best[1])))
    rel = (A @ best[1]) / us - 1.0
    a = float(coef[0])
    # the residual's spread per degree of freedom: an exact fit (as many coefficients as
    # counts) has none to estimate it from, which is what None says
    dof = len(us) - A.shape[1]
    return {"form": form, "u1": a, "sigma": float(coef[1]) / a if a else 0.0, "kappa": float(coef[2]) / a if a else 0.0,
            "coef": [float(c) for c in coef], "rel_rms": float(math.sqrt(np.mean(rel**2))),
            "rel_sd": float(math.sqrt(np.sum(rel**2) / dof)) if dof > 0 else None,
            "xtx_inv": np.linalg.pinv(A.T @ A), "min_n": float(ns.min()), "max_n": float(ns.max())}


def leverage(fit: dict, n: float) -> float:
    """x0' (A'A)^-1 x0 of the fit's full form at n: how much the fitted coefficients'
    own noise moves the prediction there, in units of one point's noise. Taken over
    the full form even where a coefficient was clipped to 0, since the clip does not
    make the data any more certain."""
    x0 = _columns(np.array([float(n)]), fit["form"])[0]
    return float(x0 @ fit["xtx_inv"] @ x0)


def growth_at(fit: dict, n: float) -> float:
    a, b, c = fit["coef"]
    return a + b * (n - 1.0) + c * n * (n - 1.0)

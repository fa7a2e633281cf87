"""Every figure computed over repeated runs, in one place. Pure, no I/O.

The charts, the tables, the API, the CLI and the analysis all read their
medians, confidence intervals, speedups and efficiencies from `scaling_series`,
so a number shown in two places is the same number. Rows are the RunRows
`db.store.Store` returns (db.rows: the layout, world size included, worked out once).

A *series* is one sweep (or a lone run) at one value of every setting a grid
sweep may vary besides the GPU count (`SETTING_AXES`: batch size, new tokens,
prompt tokens, dtype, mode, tensor-parallel size); a *point* is one world size of a series (GPUs or
processes over all nodes, so 2 nodes x 1 GPU and 1 node x 2 GPUs are one point).
Runs of a point are its repeats. The view `sweep_summary` in
`db/views.py` groups runs the same way.

The confidence interval is Student t's, computed here (no scipy at runtime).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from statistics import median as _median
from typing import Iterable, Sequence

import numpy as np

from db.rows import RunRow

CONFIDENCE = 0.95
# What a point's figures are computed over; a run without the metric is left out.
METRICS = ("tokens_per_second", "seconds", "joules_per_token", "ttft_ms_p50", "tpot_ms_p50", "comm_fraction")


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



# --------------------------------------------------------------------------
# Series and points


# The settings a grid sweep varies besides the GPU count (studio.sweeps.grid.AXES): runs
# of one sweep that differ in any of them belong to different series. tp_size is the
# layout: a layout sweep has one series per tensor-parallel size.
SETTING_AXES = ("batch_size", "max_new_tokens", "prompt_tokens", "dtype", "mode", "tp_size")


def setting_of(run: RunRow) -> tuple:
    return tuple(run.get(axis) for axis in SETTING_AXES)


def varied_settings(settings) -> list[str]:
    """The SETTING_AXES that take more than one value over `settings` (dicts with those keys):
    what tells a grid sweep's series apart. A missing value (a run not launched yet) is no value."""
    settings = list(settings)
    return [axis for axis in SETTING_AXES
            if len({str(s.get(axis)) for s in settings if s.get(axis) is not None}) > 1]


def series_key(run: RunRow) -> tuple:
    source = ("sweep", run["sweep_id"]) if run.get("sweep_id") is not None else ("run", run["id"])
    return (*source, setting_of(run))


def point_key(run: RunRow) -> tuple:
    """The setting a run measured, within its series: runs with equal keys are repeats."""
    return (run["world_size"],)


@dataclass
class Point:
    """One setting of one series: its runs and the figures over their repeats."""

    x: int  # world size
    runs: list[dict]
    stats: dict[str, dict]  # metric -> describe(...) over the runs
    speedup: float | None = None  # median throughput over the baseline point's
    speedup_ci: tuple[float, float] | None = None
    ideal_speedup: float | None = None
    efficiency: float | None = None
    imbalance: float | None = None  # median of the runs' slowest-rank / mean-rank time

    def values(self, metric: str) -> list[float]:
        return self.stats[metric]["values"]

    def median(self, metric: str) -> float | None:
        return self.stats[metric]["median"]

    def spread(self, metric: str) -> tuple[float, float]:
        """(above, below) the median: an error bar to the slowest and fastest repeat."""
        values, middle = self.values(metric), self.median(metric)
        if len(values) < 2 or middle is None:
            return 0.0, 0.0
        return max(values) - middle, middle - min(values)


@dataclass
class Series:
    key: tuple  # ("sweep" | "run", id, setting_of(run))
    points: list[Point]
    sample: dict  # one run of the series, for its settings and label
    baseline: Point | None = field(default=None)  # the smallest world size with a throughput

    @property
    def source(self) -> tuple:
        """("sweep", id) or ("run", id): where the series' runs come from."""
        return self.key[:2]

    @property
    def setting(self) -> dict:
        return {axis: self.sample.get(axis) for axis in SETTING_AXES}

    def speedup_of(self, run: dict) -> float | None:
        """One run's throughput over the baseline's median."""
        base = self.baseline.median("tokens_per_second") if self.baseline else None
        tps = run.get("tokens_per_second")
        return tps / base if tps and base else None


def _point(x: int, runs: list[dict]) -> Point:
    return Point(x=x, runs=runs,
                 stats={m: describe((r.get(m) for r in runs), floor=0.0) for m in METRICS},
                 imbalance=describe(r.get("imbalance") for r in runs)["median"])


def scaling_series(runs: Iterable[RunRow], series_of=series_key) -> list[Series]:
    """Succeeded runs grouped by series, points in world-size order, with each
    point's speedup, its interval, the ideal speedup and the efficiency measured
    against the series' smallest world size that has a throughput.

    `series_of` maps a run to its series key; one sweep's analysis passes a
    constant, so every run given is one series."""
    groups: dict[tuple, dict[tuple, list[dict]]] = {}
    samples: dict[tuple, dict] = {}
    for run in sorted(runs, key=lambda r: r["id"]):
        if run.get("status") != "succeeded" or not run.get("tokens_per_second"):
            continue
        key = series_of(run)
        samples.setdefault(key, run)
        groups.setdefault(key, {}).setdefault(point_key(run), []).append(run)
    out = []
    for key in sorted(groups, key=lambda k: (k[0] != "sweep", k[1], str(k[2:]))):
        points = [_point(k[0], groups[key][k]) for k in sorted(groups[key])]
        series = Series(key=key, points=points, sample=samples[key], baseline=points[0] if points else None)
        base = series.baseline
        for p in points:
            p.speedup = p.median("tokens_per_second") / base.median("tokens_per_second")
            p.ideal_speedup = p.x / base.x
            p.efficiency = p.speedup / p.ideal_speedup
            p.speedup_ci = _ratio_ci(p.stats["tokens_per_second"], base.stats["tokens_per_second"], same=p is base)
        out.append(series)
    return out


def run_speedups(runs: Iterable[RunRow]) -> dict[int, float]:
    """Each succeeded run's throughput over its series' baseline median."""
    return {run["id"]: series.speedup_of(run) for series in scaling_series(runs)
            for point in series.points for run in point.runs}

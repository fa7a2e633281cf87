"""What if: throughput and generation time of settings a sweep did not run,
predicted from the sweep's own runs. Pure, no I/O.

The model is the analysis' explanation made quantitative:

    seconds(n, B, N, T) = rounds(N, n, B) × u(n) × bytes_round(B, T) / bytes_round(B0, T0)
    tokens/s            = fill × N × T / seconds

- rounds: generate calls on the busiest rank, from the worker's own split
  (`scaling_models.rank_rounds`); this is exact, it is how the work is cut.
- u(n): seconds per round at the measured setting (B0, T0). Each run gives one
  value: the busiest rank's generate spans (its per-batch timings) summed over
  its count, or the run's seconds over its rounds when no timeline is stored.
  Across GPU counts u grows the way the USL's denominator does,
  u(n) = u1 · (1 + σ(n−1) + κ·n(n−1)), fitted by least squares with σ, κ ≥ 0
  over every run: κ only with 4+ distinct counts (with fewer the curve would
  pass through every point and test nothing), σ with 2+, flat with one. This
  is the contention of the USL fit measured on the time per round, so
  quantisation (fewer, fuller rounds) is not mistaken for contention.
- bytes_round: the roofline's bytes one round moves, T·W + kv·B·(T·L + T(T−1)/2)
  (weights read once per decode step, the KV cache of every row), from the
  weight and KV sizes the workers stored. A batch size or length the sweep did
  not run is predicted by assuming the measured bandwidth (bytes per second)
  stays what it was; that assumption is the weakest part of the model, so such
  predictions get a wider interval and a note. When a grid sweep ran several
  batch sizes or lengths, the nearest measured setting is the one scaled.
- fill: tokens generated over N·T (1 with --fixed-length; an EOS makes it less).

Interval: a regression's prediction error on seconds, z·s·sqrt(1 + leverage) faster
and slower, s one run's noise (the fit's residual per degree of freedom, the repeats'
pooled spread or NOISE_FLOOR); past the measured counts the slower side adds EXTRAP per
e-fold of distance (more contention or a step, never less), and the envelope of the
other contention forms is taken as well; a setting leaning on the roofline is widened
by ROOFLINE_WIDEN either way. Below the smallest count and between two counts the
interval also reaches the neighbouring measured time per round (a round is never faster
on more GPUs). z and EXTRAP are calibrated by bench/calibrate_predict.py on seeded
synthetic sweeps (studio.analysis.predict_coverage) under the published sweeps' coverage as a
constraint; docs/analysis.md quotes the coverage on sweeps they were not chosen on.

No number: a GPU count outside the measured ones when fewer than three counts were
measured (a curve through two points is untested), or any count not run when repeats
disagree by more than NOISY_REPEATS; the row says why (`unsupported`) instead.

Held out: each measured setting is predicted from the others (leave-one-out): its
error, whether it fell inside its interval (coverage) and the interval's width, so the
user sees how far the model was off on what was measured.
"""

from __future__ import annotations

import math
from statistics import median as _median

import numpy as np

from studio.analysis.contention import fit_growth, growth_at, leverage
from studio.analysis.observations import batch_of, bytes_per_round, observation
from studio.analysis.scaling_models import rank_rounds
from studio.analysis.stats import scaling_series

NOISE_FLOOR = 0.03  # an exact fit has no residual, yet two runs never agree better than a few %
NOISY_REPEATS = 0.25  # repeats ±25% apart: the count-to-count change is lost in them
# chosen by bench/calibrate_predict.py: seeded synthetic sweeps, constrained by the published ones
INTERVAL_Z = 1.0
EXTRAP = 0.3
ROOFLINE_WIDEN = 1.5  # a batch size or length not measured: seconds may be this factor either way


class PredictError(ValueError):
    """A request the sweep cannot answer; `setting` names the input at fault."""

    def __init__(self, setting: str, message: str):
        super().__init__(f"{setting}: {message}")
        self.setting = setting


# --------------------------------------------------------------------------
# Predicting


def _groups(obs: list[dict]) -> dict[tuple, list[dict]]:
    """Observations by the setting the per-round time depends on (B, T)."""
    out: dict[tuple, list[dict]] = {}
    for o in obs:
        out.setdefault((o["batch_size"], o["max_new_tokens"]), []).append(o)
    return out


def _nearest(groups: dict, batch: int, steps: int) -> tuple:
    return min(groups, key=lambda k: (abs(math.log(k[0] / batch)) + abs(math.log(k[1] / steps)), -len(groups[k])))


def _by_count(obs: list[dict]) -> list[list[float]]:
    by_n: dict[int, list[float]] = {}
    for o in obs:
        by_n.setdefault(o["gpus"], []).append(o["per_round"])
    return [v for v in by_n.values() if len(v) >= 2]


def _spread(obs: list[dict]) -> float:
    """The largest half-spread of repeats relative to their median, over points."""
    return max(((max(v) - min(v)) / 2 / _median(v) for v in _by_count(obs)), default=0.0)


def _repeat_sd(obs: list[dict]) -> float:
    """One run's relative noise, pooled over the repeats of every count."""
    groups = _by_count(obs)
    dof = sum(len(v) - 1 for v in groups)
    if not dof:
        return 0.0
    return math.sqrt(sum(sum((x / np.mean(v) - 1.0) ** 2 for x in v) for v in groups) / dof)


def _bracket(base: list[dict], gpus: int) -> list[float]:
    """The measured time per round that bounds an unmeasured count's: a round takes no
    less time on more GPUs (contention only adds), so below the smallest count it is at
    most the smallest count's, and between two counts it lies between theirs."""
    by_n: dict[int, list[float]] = {}
    for o in base:
        by_n.setdefault(o["gpus"], []).append(o["per_round"])
    if gpus in by_n:
        return []
    below = [n for n in by_n if n < gpus]
    above = [n for n in by_n if n > gpus]
    return ([_median(by_n[max(below)])] if below and above else []) + ([_median(by_n[min(above)])] if above else [])


def _distance(fit: dict, n: float) -> float:
    """How far n lies outside the measured counts, in e-folds (ln of the ratio); 0 inside."""
    if n > fit["max_n"]:
        return math.log(n / fit["max_n"])
    if n < fit["min_n"]:
        return math.log(fit["min_n"] / n)
    return 0.0


def _unsupported(base: list[dict], fit: dict, gpus: int) -> str | None:
    """Why the data cannot back a number at this count, or None when it can. Inside the
    measured counts u(n) is bracketed by its neighbours (contention only grows); outside,
    the curve's form must have been checked by a point it was not forced through."""
    counts = sorted({o["gpus"] for o in base})
    if gpus in counts:
        return None
    spread = _spread(base)
    if spread > NOISY_REPEATS:
        return (f"repeats disagree by up to ±{100 * spread:.0f}% of their median: too noisy to predict a count "
                "not run; add repeats or run it")
    if _distance(fit, gpus) and len(counts) < 3:
        measured = " and ".join(str(n) for n in counts)
        return (f"only {len(counts)} GPU count{'s' if len(counts) > 1 else ''} measured ({measured}): a curve "
                "through them is untested, so a count outside them is not predicted; run a third count")
    return None


def predict_one(obs: list[dict], gpus: int, batch: int, prompts: int, steps: int) -> dict:
    groups = _groups(obs)
    key = _nearest(groups, batch, steps)
    base = groups[key]
    ns = [o["gpus"] for o in base]
    fit = fit_growth(ns, [o["per_round"] for o in base])
    notes = []
    scale = 1.0
    leans_on_roofline = key != (batch, steps)
    if leans_on_roofline:
        shape = next((o["roofline"] for o in base if o["roofline"]), None)
        if shape is None:
            raise PredictError("batch_size" if key[0] != batch else "max_new_tokens",
                               f"the sweep ran batch {key[0]} and {key[1]} new tokens and stored no roofline figures "
                               "to scale from; ask for a setting the sweep ran")
        scale = bytes_per_round(shape, batch, steps) / bytes_per_round(shape, *key)
        if shape.get("weights_only"):
            notes.append("the stored roofline has the run's bytes, not the weight and KV shares: a round's bytes "
                         "are taken as weights per decode step, so batch size leaves the time per round unchanged")
        notes.append(f"batch {batch} / {steps} new tokens were not measured: the time per round is scaled from batch "
                     f"{key[0]} / {key[1]} tokens by the roofline (bytes per round at the measured bandwidth), "
                     f"interval widened {ROOFLINE_WIDEN}x")
    rounds = max(rank_rounds(prompts, gpus, batch))
    per_round = growth_at(fit, gpus) * scale
    seconds = rounds * per_round
    tokens = _median([o["fill"] for o in base]) * prompts * steps
    row = {"gpus": gpus, "batch_size": batch, "num_prompts": prompts, "max_new_tokens": steps, "rounds": rounds,
           "contention": {"form": fit["form"], "sigma": fit["sigma"], "kappa": fit["kappa"], "u1": fit["u1"]},
           "measured": None, "notes": notes}
    reason = _unsupported(base, fit, gpus) or (
        None if per_round > 0 else f"the fitted time per round reaches zero at {gpus} GPUs: the curve does not hold "
                                   "that far from the measured counts")
    if reason:
        return {**row, "seconds_per_round": None, "seconds": None, "seconds_low": None, "seconds_high": None,
                "tokens_per_second": None, "low": None, "high": None, "unsupported": reason}
    candidates = [per_round]
    if gpus > fit["max_n"]:
        edge = fit["max_n"]
        candidates.append(growth_at(fit, edge) * scale)  # no more contention than at the last count
        for form in ("sigma", "usl"):
            candidates.append(growth_at(fit_growth(ns, [o["per_round"] for o in base], form), gpus) * scale)
        notes.append(f"GPU counts beyond the largest measured ({int(edge)}) extrapolate the contention; their "
                     "interval spans no further growth to the fitted growth")
    candidates += [u * scale for u in _bracket(base, gpus)]
    w_fast, w_slow = half_width(fit, base, gpus)
    lo_s, hi_s = rounds * min(candidates) / (1 + w_fast), rounds * max(candidates) * (1 + w_slow)
    if leans_on_roofline:
        lo_s, hi_s = lo_s / ROOFLINE_WIDEN, hi_s * ROOFLINE_WIDEN
    return {**row, "seconds_per_round": per_round, "seconds": seconds, "seconds_low": lo_s, "seconds_high": hi_s,
            "tokens_per_second": tokens / seconds, "low": tokens / hi_s, "high": tokens / max(lo_s, 1e-12),
            "unsupported": None}


def half_width(fit: dict, base: list[dict], gpus: int) -> tuple[float, float]:
    """The interval's relative half-widths on seconds, (faster, slower): a regression's
    prediction error z·s·sqrt(1 + leverage), s one run's noise (the fit's residual per
    degree of freedom, the repeats' pooled spread, or NOISE_FLOOR, whichever is largest).
    Past the measured counts the slower side adds EXTRAP per e-fold of distance in
    quadrature: the part a curve's form cannot answer for is more contention or a step
    (a PCIe switch, a NUMA node, a power budget shared from some count on), and both
    only ever make a round slower. INTERVAL_Z and EXTRAP are calibrated
    (bench/calibrate_predict.py), not chosen."""
    s = max(fit["rel_sd"] or 0.0, _repeat_sd(base), NOISE_FLOOR)
    noise = s * s * (1.0 + leverage(fit, gpus))
    return INTERVAL_Z * math.sqrt(noise), INTERVAL_Z * math.sqrt(noise + (EXTRAP * _distance(fit, gpus)) ** 2)


def _measured(runs: list[dict], gpus: int, batch: int, prompts: int, steps: int) -> dict | None:
    same = [r for r in runs if r["world_size"] == gpus and batch_of(r) == batch and r["num_prompts"] == prompts
            and r["max_new_tokens"] == steps]
    series = scaling_series(same, series_of=lambda run: ("sweep", 0))
    if not series:
        return None
    point = series[0].points[0]
    return {"tokens_per_second": point.median("tokens_per_second"), "seconds": point.median("seconds"),
            "repeats": len(point.runs)}


def held_out(obs: list[dict]) -> dict:
    """Each measured setting (n, B, N, T) predicted from the runs of the others: the
    error, whether the measurement fell inside the interval (the coverage), the
    interval's width relative to the prediction, and the settings the rest could not
    back with a number (they count neither way)."""
    keys = sorted({(o["gpus"], o["batch_size"], o["num_prompts"], o["max_new_tokens"]) for o in obs})
    rows, declined = [], []
    for key in keys:
        rest = [o for o in obs if (o["gpus"], o["batch_size"], o["num_prompts"], o["max_new_tokens"]) != key]
        if not rest:
            continue
        try:
            p = predict_one(rest, *key)
        except PredictError:
            continue
        if p["unsupported"]:
            declined.append({"gpus": key[0], "batch_size": key[1], "num_prompts": key[2], "max_new_tokens": key[3],
                             "reason": p["unsupported"]})
            continue
        m = _measured([o["run"] for o in obs], *key)["tokens_per_second"]
        rows.append({"gpus": key[0], "batch_size": key[1], "num_prompts": key[2], "max_new_tokens": key[3],
                     "predicted": p["tokens_per_second"], "low": p["low"], "high": p["high"], "measured": m,
                     "error_pct": 100.0 * (p["tokens_per_second"] - m) / m, "inside": p["low"] <= m <= p["high"],
                     "width_pct": 100.0 * (p["high"] - p["low"]) / p["tokens_per_second"]})
    errors = [abs(r["error_pct"]) for r in rows]
    inside = sum(r["inside"] for r in rows)
    note = ("" if rows else "no measured setting could be predicted from the others"
            + (f" ({declined[0]['reason']})" if declined else ""))
    return {"per_setting": rows, "declined": declined,
            "median_abs_pct_error": _median(errors) if errors else None,
            "max_abs_pct_error": max(errors) if errors else None,
            "inside_interval": inside, "settings": len(rows),
            "coverage_pct": 100.0 * inside / len(rows) if rows else None,
            "median_width_pct": _median([r["width_pct"] for r in rows]) if rows else None, "note": note}


def predict(sweep: dict, ranks_by_run: dict | None, gpus: list[int], batch_size: int | None = None,
            num_prompts: int | None = None, max_new_tokens: int | None = None) -> dict:
    """Predictions for every requested GPU count, the held-out error and the notes.
    Settings left out default to the sweep's most-run setting."""
    ranks_by_run = {int(k): v for k, v in (ranks_by_run or {}).items()}
    runs = [r for r in sweep.get("runs") or [] if r.get("status") == "succeeded" and r.get("tokens_per_second")
            and r.get("seconds") and r.get("num_prompts") and r.get("max_new_tokens")]
    if not runs:
        raise PredictError("sweep", f"sweep {sweep.get('id')} has no succeeded run to predict from; run it first")
    if any(r.get("mode") == "auto" for r in runs):
        raise PredictError("sweep", "an auto-mode sweep plans its own batches; predict from a batched or simple sweep")
    if not gpus or any(int(n) < 1 for n in gpus):
        raise PredictError("gpus", "give one or more GPU counts from 1, e.g. 1,2,4")
    obs = [observation(r, ranks_by_run.get(int(r["id"])) or []) for r in runs]
    common = max(_groups(obs).items(), key=lambda kv: len(kv[1]))[1][0]
    batch = int(batch_size or common["batch_size"])
    prompts = int(num_prompts or common["num_prompts"])
    steps = int(max_new_tokens or common["max_new_tokens"])
    for name, value in (("batch_size", batch), ("num_prompts", prompts), ("max_new_tokens", steps)):
        if value < 1:
            raise PredictError(name, f"must be a whole number from 1, got {value}")
    rows = []
    for n in sorted({int(g) for g in gpus}):
        row = predict_one(obs, n, batch, prompts, steps)
        row["measured"] = _measured(runs, n, batch, prompts, steps)
        rows.append(row)
    notes = sorted({note for r in rows for note in r.pop("notes")})
    notes += sorted({f"no number for {_counts([r['gpus'] for r in rows if r['unsupported'] == why])} GPUs: {why}"
                     for why in {r["unsupported"] for r in rows if r["unsupported"]}})
    if not any(o["from_timeline"] for o in obs):
        notes.append("no per-batch timeline stored: the time per round is each run's seconds over its rounds")
    derived = {o["tokens_derived"] for o in obs}
    if "rate" in derived:
        notes.append("the sweep stored no token counts (published figures): each run's tokens are its tokens/s "
                     "x seconds as published")
    if "fixed" in derived:
        notes.append("the sweep stored no token counts: its runs had fixed lengths, so each run's tokens are "
                     "prompts x new tokens")
    if len({o["gpus"] for o in obs}) < 2:
        notes.append("the sweep measured one GPU count: no contention could be measured, it is taken as none")
    return {"sweep_id": sweep.get("id"), "request": {"gpus": [r["gpus"] for r in rows], "batch_size": batch,
                                                     "num_prompts": prompts, "max_new_tokens": steps},
            "predictions": rows, "held_out": held_out(obs), "notes": notes,
            "model": "seconds = rounds on the busiest rank x seconds per round u(n) = u1(1 + s(n-1) + k n(n-1)), "
                     "scaled by roofline bytes per round for unmeasured batch sizes or lengths"}


def _counts(ns: list[int]) -> str:
    return ", ".join(str(n) for n in ns)


def describe_held_out(held: dict) -> str:
    """The leave-one-out error in one sentence: how far to trust the predictions."""
    if held["median_abs_pct_error"] is None:
        return f"held out: {held['note']}"
    declined = f"; {len(held['declined'])} not predicted (too little data)" if held.get("declined") else ""
    return (f"held out (each measured setting predicted from the others): median error "
            f"{held['median_abs_pct_error']:.0f}%, worst {held['max_abs_pct_error']:.0f}%, "
            f"{held['inside_interval']} of {held['settings']} inside their interval "
            f"(median width {held['median_width_pct']:.0f}% of the prediction){declined}")

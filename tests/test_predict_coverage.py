"""The what-if intervals hold what was measured at least 80% of the time, on synthetic
sweeps they were not calibrated on and on the published ones (which constrained the
calibration: bench/calibrate_predict.py), and stay narrow enough to decide with."""

from __future__ import annotations

import pytest

from db.store import Store
from studio.analysis.predict import predict
from studio.analysis.predict_coverage import coverage, describe, published_cases, store_cases, synthetic_cases, synthetic_sweep

USEFUL_WIDTH = 50.0  # (high - low) / predicted: past ±25% a prediction no longer tells 4 GPUs from 5


@pytest.fixture
def store(tmp_path):
    return Store(tmp_path / "s.db")


def _runs_at(sweep, counts):
    return {**sweep, "runs": [r for r in sweep["runs"] if r["num_gpus"] in counts]}


@pytest.mark.parametrize("name", ["batched", "simple"])
def test_a_published_sweeps_last_two_counts_from_its_first_three(store, name):
    # before: 4 and 5 GPUs from 1-3 had a 3% interval (NOISE_FLOOR) around a point 9.5% (batched)
    # and 26% / 81% (simple) off the published rate
    (label, sweep, ranks), = [c for c in published_cases(store) if c[0] == f"ref:{name}"]
    out = predict(_runs_at(sweep, {1, 2, 3}), ranks, [4, 5])
    published = {r["num_gpus"]: r["tokens_per_second"] for r in sweep["runs"]}
    rows = [(p["gpus"], p["low"], p["tokens_per_second"], p["high"], published[p["gpus"]]) for p in out["predictions"]]
    print(label, rows)
    if name == "batched":
        for n, low, _, high, measured in rows:
            assert low <= measured <= high, (n, low, high, measured)
    else:
        # the simple sweep's time per round is flat over 1-3 GPUs and then grows 1.3x and 1.4x a count:
        # nothing in 1-3 foretells it, and an interval wide enough to hold it (down to half the point)
        # would hold everything. It stays a counted miss (coverage below), not a widened rule.
        for n, low, _, _high, measured in rows:
            assert measured < low, (n, low, measured)


def test_coverage_on_synthetic_sweeps_the_constants_were_not_chosen_on():
    cov = coverage(synthetic_cases(range(1000, 1100)))  # bench/calibrate_predict.py chose on seeds 0-199
    print(describe(cov, "synthetic seeds 1000-1099"))
    assert cov["points"] > 500
    assert cov["coverage_pct"] >= 80 and cov["median_width_pct"] < USEFUL_WIDTH
    for kind, figures in cov["by_kind"].items():
        assert figures["coverage_pct"] >= 80, kind


def test_coverage_on_the_published_sweeps(store):
    cov = coverage(published_cases(store))
    print(describe(cov, "published sweeps"))
    assert cov["points"] == 14  # 5 + 5 held out one at a time, 2 + 2 from the first three counts
    assert cov["coverage_pct"] >= 80 and cov["median_width_pct"] < USEFUL_WIDTH


def test_synthetic_sweeps_are_seeded_and_follow_their_law():
    a, _, truth = synthetic_sweep(7)
    b, _, _ = synthetic_sweep(7)
    assert a == b and truth["law"] in ("usl", "amdahl")
    assert synthetic_sweep(8)[0] != a


def test_stored_sweeps_with_three_counts_or_more_are_all_checked(store):
    from studio.sweeps.reference import ensure_reference_sweeps

    ensure_reference_sweeps(store)
    cases = store_cases(store)
    assert sorted(label for label, *_ in cases) == ["sweep 1", "sweep 2"]
    assert coverage(cases)["points"] == 14
    sweep, ranks, _ = synthetic_sweep(3)
    two = _runs_at(sweep, set(sweep["gpu_counts"][:2]))
    assert coverage([("two counts", two, ranks)]) | {"per_point": None} == {
        **coverage([]), "skipped": ["two counts"], "per_point": None}

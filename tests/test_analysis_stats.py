"""Student t, confidence intervals and the A/B test, against scipy (test-only)
and against textbook values."""

import math

import pytest
from scipy import stats

from studio.analysis.stats import describe, t_cdf, t_ppf, welch_test


@pytest.mark.parametrize("df", [1, 2, 3, 4, 5.5, 9, 29, 200])
def test_t_quantiles_match_scipy(df):
    for p in (0.6, 0.9, 0.975, 0.995):
        assert t_ppf(p, df) == pytest.approx(stats.t.ppf(p, df), rel=1e-9)
        assert t_ppf(1 - p, df) == pytest.approx(stats.t.ppf(1 - p, df), rel=1e-9)


@pytest.mark.parametrize("df", [1, 3, 7.3, 50])
def test_t_cdf_matches_scipy(df):
    for t in (-4.0, -1.0, 0.0, 0.3, 2.5, 10.0):
        assert t_cdf(t, df) == pytest.approx(stats.t.cdf(t, df), abs=1e-12)


def test_confidence_interval_on_a_known_sample():
    # 1..5: mean 3, s = sqrt(2.5), t(0.975, 4) = 2.7764451 -> half width 1.9632
    d = describe([1, 2, 3, 4, 5])
    assert d["median"] == 3 and d["mean"] == 3
    assert d["std"] == pytest.approx(math.sqrt(2.5))
    assert d["ci_low"] == pytest.approx(3 - 1.963243, abs=1e-5)
    assert d["ci_high"] == pytest.approx(3 + 1.963243, abs=1e-5)


def test_confidence_interval_matches_scipy_interval():
    sample = [512.0, 498.5, 530.2]
    lo, hi = stats.t.interval(0.95, len(sample) - 1, loc=sum(sample) / 3, scale=stats.sem(sample))
    d = describe(sample)
    assert (d["ci_low"], d["ci_high"]) == (pytest.approx(lo), pytest.approx(hi))


def test_one_value_has_no_interval_and_floor_clips():
    one = describe([7.0])
    assert one["median"] == 7.0 and one["ci_low"] is None and one["ci_high"] is None
    wide = describe([1.0, 100.0], floor=0.0)  # t(0.975, 1) = 12.7: the raw interval goes far below 0
    assert wide["ci_low"] == 0.0 and wide["ci_high"] > 100


def test_welch_matches_scipy():
    a, b = [10.1, 10.4, 9.8, 10.0], [11.2, 10.9, 11.6]
    ours = welch_test(a, b)
    ref = stats.ttest_ind(b, a, equal_var=False)
    assert ours["test"] == "welch"
    assert ours["t"] == pytest.approx(ref.statistic)
    assert ours["p"] == pytest.approx(ref.pvalue, rel=1e-8)


def test_one_sample_against_a_published_value():
    ours = welch_test([520.0], [500.0, 505.0, 498.0])
    ref = stats.ttest_1samp([500.0, 505.0, 498.0], 520.0)
    assert ours["test"] == "one-sample" and ours["p"] == pytest.approx(ref.pvalue, rel=1e-8)
    assert welch_test([1.0], [2.0])["p"] is None

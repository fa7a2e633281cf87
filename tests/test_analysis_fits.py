"""Amdahl and USL fits recover known parameters; the knee is where it should be."""

import numpy as np
import pytest

from studio.analysis.scaling_models import fit_scaling, knee, usl


def test_usl_recovers_exact_parameters():
    n = np.arange(1, 9)
    fit = fit_scaling(n, usl(n, 250.0, 0.04, 0.012), "usl")
    assert fit["lam"] == pytest.approx(250.0, rel=1e-6)
    assert fit["sigma"] == pytest.approx(0.04, abs=1e-6)
    assert fit["kappa"] == pytest.approx(0.012, abs=1e-7)
    assert fit["peak_n"] == pytest.approx(np.sqrt((1 - 0.04) / 0.012), rel=1e-5)
    assert fit["r2"] == pytest.approx(1.0)


def test_usl_recovers_parameters_from_noisy_repeats():
    rng = np.random.default_rng(7)
    n = np.repeat(np.arange(1, 9), 3)
    x = usl(n, 100.0, 0.08, 0.005) * (1 + rng.normal(0, 0.01, len(n)))
    fit = fit_scaling(n, x, "usl")
    assert fit["lam"] == pytest.approx(100.0, rel=0.03)
    assert fit["sigma"] == pytest.approx(0.08, abs=0.02)
    assert fit["kappa"] == pytest.approx(0.005, abs=0.002)
    assert fit["r2"] > 0.98


def test_amdahl_recovers_serial_fraction():
    n = np.array([1, 2, 4, 8, 16])
    fit = fit_scaling(n, usl(n, 40.0, 0.1), "amdahl")
    assert fit["kappa"] == 0.0
    assert fit["sigma"] == pytest.approx(0.1, abs=1e-6)
    assert fit["parallel_fraction"] == pytest.approx(0.9, abs=1e-6)
    assert fit["max_speedup"] == pytest.approx(10.0, rel=1e-5)


def test_linear_scaling_fits_zero_contention():
    n = np.arange(1, 6)
    fit = fit_scaling(n, 30.0 * n, "usl")
    assert fit["sigma"] == pytest.approx(0.0, abs=1e-6) and fit["kappa"] == pytest.approx(0.0, abs=1e-7)
    assert fit["peak_n"] is None


def test_round_off_in_linear_data_gives_no_peak_and_no_speedup_limit():
    # Linear data with a relative wobble of 1e-12 (what one BLAS's rounding gives
    # another) fitted κ ≈ 6e-14 and a peak at n* ≈ 4e6 before the significance check.
    rng = np.random.default_rng(0)
    for size in (5, 6, 7, 5, 6, 7):
        n = np.arange(1, size + 1)
        fit = fit_scaling(n, 30.0 * n * (1 + rng.normal(0, 1e-12, size)), "usl")
        assert fit["peak_n"] is None and fit["max_speedup"] is None, fit
        assert fit["kappa"] < 1e-9 and fit["sigma"] < 1e-9


def test_noisy_linear_repeats_give_no_peak():
    rng = np.random.default_rng(3)
    n = np.repeat(np.arange(1, 6), 3)
    for _ in range(10):
        fit = fit_scaling(n, 30.0 * n * (1 + rng.normal(0, 0.02, len(n))), "usl")
        assert fit["peak_n"] is None, fit
        if fit["kappa"] > 0:
            assert "indistinguishable" in fit["note"]


def test_falling_throughput_keeps_sigma_a_fraction():
    n = np.array([1, 2, 3, 4])
    fit = fit_scaling(n, [500.0, 300.0, 200.0, 150.0], "usl")
    assert 0.0 <= fit["sigma"] <= 1.0 and fit["kappa"] > 0


def test_too_few_counts_gives_a_reason_not_a_fit():
    fit = fit_scaling([1, 1, 2, 2], [10, 11, 19, 20], "usl")
    assert fit["lam"] is None and "at least 3" in fit["note"]
    amdahl = fit_scaling([1, 1, 2, 2], [10, 11, 19, 20], "amdahl")
    assert amdahl["lam"] is not None


def test_knee_is_the_first_small_marginal_gain():
    # the reference post's batched speedups: 1, 1.73, 2.32, 3.18, 3.19
    result = knee([1, 2, 3, 4, 5], [1.0, 900 / 520, 1205 / 520, 1655 / 520, 1658 / 520])
    assert result["count"] == 5
    assert [round(g["gain_per_gpu"], 2) for g in result["gains"]] == [0.73, 0.59, 0.87, 0.01]
    assert knee([1, 2, 4], [1.0, 2.0, 4.0])["count"] is None
    assert knee([1, 2, 4], [1.0, 1.9, 2.5], threshold=0.5)["count"] == 4

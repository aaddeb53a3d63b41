"""Simulation-based calibration: ranks, uniformity tests, quantities, and ``gmmflow.calibrate``.

The uniformity tests are checked on simulated ranks against their nominal
error rate (uniform ranks) and their power (ranks of a biased or
mis-dispersed "posterior"); the ECDF band against ArviZ's own (optimised)
simultaneous band; the quantities against scipy. ``calibrate`` itself is
checked for its mechanics, determinism, file round trip and bad input here,
and for calibration of the real samplers with a negative control.
"""

from __future__ import annotations

import re

import numpy as np
import pytest
from arviz.stats.ecdf_utils import ecdf_confidence_band
from scipy import stats

import gmmflow
from gmmflow import schema as S
from gmmflow.core.invariant_quantities import invariant_quantities, quantity_names
from gmmflow.core.rank_uniformity import (
    chi_square_test,
    ecdf_band_test,
    evaluation_points,
    null_band_statistics,
    ranks,
    simultaneous_band,
)

N_SIMS, N_VALUES = 100, 100


@pytest.fixture(scope="module")
def null():
    return null_band_statistics(N_SIMS, N_VALUES, 10_000, np.random.default_rng(0))


# ---------------------------------------------------------------- ranks and tests
def test_ranks_count_draws_below_and_break_ties_uniformly():
    rng = np.random.default_rng(1)
    draws = np.array([[[1.0], [2.0], [3.0]]])  # one simulation, L = 3, one quantity
    assert ranks(draws, np.array([[2.5]]), rng)[0, 0] == 2
    assert ranks(draws, np.array([[0.0]]), rng)[0, 0] == 0
    assert ranks(draws, np.array([[9.0]]), rng)[0, 0] == 3
    # all tied (the weight of one component): uniform on 0..L; 4000 draws, each value expected 1000,
    # the chi-square(3) test at 1e-4 fails with probability < 1e-4 if correct
    tied = ranks(np.ones((4000, 3, 1)), np.ones((4000, 1)), rng)[:, 0]
    assert stats.chisquare(np.bincount(tied, minlength=4)).pvalue > 1e-4


def test_tests_have_their_nominal_error_rate_on_uniform_ranks(null):
    """2000 sets of 100 uniform ranks: each test rejects at 0.05 in 100 sets expected (sd 9.7); the
    bounds [60, 145] fail with probability < 1e-4 if the rate is 0.05."""
    rng = np.random.default_rng(2)
    R = rng.integers(0, N_VALUES, size=(N_SIMS, 2000))
    assert 60 <= np.sum(ecdf_band_test(R, N_VALUES, null) < 0.05) <= 145
    assert 60 <= np.sum(chi_square_test(R, N_VALUES, 20)[1] < 0.05) <= 145


@pytest.mark.parametrize("loc, scale", [(0.5, 1.0), (0.0, 0.6)], ids=["biased", "under-dispersed"])
def test_ecdf_test_has_power_against_a_wrong_posterior(null, loc, scale):
    """Truth ~ N(0, 1), "posterior" N(loc, scale^2) for every data set: not the prior, so ranks are not
    uniform. Measured power at 0.001 with 100 simulations: 0.81 (biased by 0.5 sd) and 0.95 (sd 0.6);
    at least 100 of 200 rejections fails with probability < 1e-10 at those powers."""
    rng = np.random.default_rng(3)
    truth = rng.normal(size=(N_SIMS, 200))
    r = ranks(rng.normal(loc, scale, size=(N_SIMS, N_VALUES - 1, 200)), truth, rng)
    assert np.sum(ecdf_band_test(r, N_VALUES, null) < 0.001) >= 100


def test_chi_square_statistic_matches_scipy():
    r = np.random.default_rng(4).integers(0, N_VALUES, size=(N_SIMS, 3))
    stat, p = chi_square_test(r, N_VALUES, 20)
    for q in range(3):
        ref = stats.chisquare(np.bincount(r[:, q] // 5, minlength=20))
        assert stat[q] == pytest.approx(ref.statistic) and p[q] == pytest.approx(ref.pvalue)
    with pytest.raises(ValueError, match=re.escape("n_bins (7) must divide the number of rank values (100).")):
        chi_square_test(r, N_VALUES, 7)


@pytest.mark.parametrize("alpha", [0.05, 0.001])
def test_simultaneous_band_matches_arviz(null, alpha):
    """ArviZ computes the band of a continuous uniform ECDF by optimisation; ours by simulation of the
    discrete ranks at the same points. They agree to one count (the Monte Carlo and the discreteness)."""
    z = evaluation_points(N_VALUES)
    lower, upper = simultaneous_band(N_SIMS, N_VALUES, alpha, null)
    ref_lower, ref_upper = ecdf_confidence_band(N_SIMS, z, z, prob=1 - alpha, method="optimized")
    assert np.abs(lower - ref_lower).max() * N_SIMS <= 1.0 + 1e-9
    assert np.abs(upper - ref_upper).max() * N_SIMS <= 1.0 + 1e-9


# ---------------------------------------------------------------- quantities
def _random_parameters(rng, S_, K, d):
    A = rng.normal(size=(S_, K, d, d))
    return rng.dirichlet(np.ones(K), S_), rng.normal(size=(S_, K, d)), A @ A.transpose(0, 1, 3, 2) + np.eye(d)


def test_quantities_match_scipy_and_ignore_labels():
    rng = np.random.default_rng(5)
    w, mu, cov = _random_parameters(rng, 3, 3, 2)
    X, P = rng.normal(size=(11, 2)), rng.normal(size=(2, 2))
    q = invariant_quantities(w, mu, cov, X, P)
    names = quantity_names(3, ["a", "b"], 2)
    assert q.shape == (3, len(names)) == (3, 3 + 6 + 1 + 2 + 1)
    for s in range(3):
        dens = np.array([w[s, k] * stats.multivariate_normal(mu[s, k], cov[s, k]).pdf(X) for k in range(3)])
        resp = dens / dens.sum(0)
        at_p = sum(w[s, k] * stats.multivariate_normal(mu[s, k], cov[s, k]).pdf(P) for k in range(3))
        expected = dict(zip(names, q[s]))
        assert expected["log_likelihood"] == pytest.approx(np.log(dens.sum(0)).sum(), rel=1e-12)
        assert expected["assignment_entropy"] == pytest.approx(-(resp * np.log(resp)).sum() / 11, rel=1e-10)
        assert [expected["log_density[p0]"], expected["log_density[p1]"]] == pytest.approx(np.log(at_p))
        assert [expected[f"mu[b] ({j})"] for j in (1, 2, 3)] == pytest.approx(np.sort(mu[s, :, 1]))
        assert [expected[f"w ({j})"] for j in (1, 2, 3)] == pytest.approx(np.sort(w[s]))
    perm = np.array([2, 0, 1])
    assert np.allclose(invariant_quantities(w[:, perm], mu[:, perm], cov[:, perm], X, P), q, rtol=1e-12)


# ---------------------------------------------------------------- calibrate: bad input, before any work
PRIOR_1D = gmmflow.Prior(mean=[0.0], scale=[[1.0]])
MODEL_1D = gmmflow.GMM(2, prior=PRIOR_1D)


@pytest.mark.parametrize("kwargs, error, message", [
    ({"n_sims": 0}, ValueError, "n_sims must be >= 1, got 0."),
    ({"n_obs": 1}, ValueError, "X has 1 row(s) but n_components=2"),
    ({"model": gmmflow.GMM(2, prior=None)}, ValueError, "calibrate needs a prior for the model; "
                                                           "GMM(..., prior=None) is the MLE"),
    ({"model": gmmflow.GMM(2)}, ValueError, "calibrate needs the prior of the model fully specified"),
    ({"sampling_model": gmmflow.GMM(3, prior=PRIOR_1D)}, ValueError,
     "sampling_model must have the model's n_components (2) and dimension (1), got 3 and 1"),
    ({"n_ranked": 500, "draws": 100, "chains": 4}, ValueError,
     "n_ranked (500) exceeds the 4 chains x 100 draws of each posterior"),
    ({"n_bins": 7}, ValueError, "n_bins (7) must divide n_ranked + 1 (100)"),
    ({"points": [[0.0, 1.0]]}, ValueError, "points must be a finite (m, 1) array"),
    ({"alpha": 1.5}, ValueError, "alpha must be a number in (0, 1)"),
    ({"sampler": "metropolis"}, ValueError, "sampler must be one of"),
    ({"thin": 3}, TypeError, "calibrate() got unexpected keyword argument(s) 'thin'"),
    ({"model": "GMM(2)"}, TypeError, "model must be a gmmflow.GMM"),
])
def test_bad_input_is_refused_before_any_work(kwargs, error, message, monkeypatch):
    from gmmflow.workflows import calibration

    monkeypatch.setattr(calibration, "prior_simulations", lambda *a, **k: pytest.fail("work started"))
    args = {"model": MODEL_1D, "n_obs": 20, "n_sims": 5} | kwargs
    with pytest.raises(error, match=re.escape(message)):
        gmmflow.calibrate(args.pop("model"), args.pop("n_obs"), args.pop("n_sims"), **args)

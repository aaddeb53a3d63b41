"""Invariants of every EM fit, by hypothesis and on pinned degenerate examples.

``check_invariants`` states what must hold for any finite input with n >= K:
responsibilities are probabilities, weights lie on the simplex, covariances
are symmetric positive definite and at or above the floor the prior (or
``reg_covar``) guarantees, the objective is finite and never decreases.
"""

import re
import warnings

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import gmmflow
from gmmflow.core.gaussian import cholesky, log_mixture_density
from gmmflow.results.from_idata import hyperparameters_from_idata
from gmmflow.core.prior_density import log_prior
from gmmflow.inputs.matrix import SMALLEST_SPREAD
from conftest import COV_TYPES, full_cov

PRIORS = ("default", None)


def covariance_floor(hyper, t, n, K, d):
    """The smallest covariance the MAP M-step can return: the prior scale over its largest denominator."""
    scale = full_cov(np.asarray(hyper.scale), "tied" if t in ("full", "tied") else t, 1, d)[0] \
        if t in ("full", "tied") else (np.diag(hyper.scale) if t == "diag" else hyper.scale * np.eye(d))
    nu = hyper.dof
    denominator = {"full": nu + n + d + 2, "tied": nu + n + K + d + 1, "diag": nu + n + 3,
                   "spherical": nu + (n + 1) * d + 2}[t]
    return scale / denominator


def fit(X, K, t, prior, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", gmmflow.ConvergenceWarning)
        return gmmflow.fit_em(gmmflow.GMM(K, t, prior=prior), X, **({"seed": 0, "n_init": 2} | kwargs))


def check_invariants(idata, X, t, prior):
    X = np.asarray(X, dtype=np.float64)
    n, d = X.shape
    est = idata.em_estimate
    K = est.sizes["component"]
    resp = gmmflow.predict_proba(idata, X)
    assert np.all((resp >= 0) & (resp <= 1)) and np.allclose(resp.sum(1), 1.0, atol=1e-12)
    w = est.w.values
    assert np.all(w >= 0) and w.sum() == pytest.approx(1.0, abs=1e-12)
    cov = est.cov.values
    assert np.allclose(cov, np.swapaxes(cov, 1, 2), rtol=0, atol=1e-12 * np.abs(cov).max())
    cholesky(cov, "full")  # raises unless every matrix is positive definite
    if prior is None:
        floor = gmmflow.GMM(K, t, prior=None).reg_covar * np.eye(d)
    else:
        floor = covariance_floor(hyperparameters_from_idata(idata), t, n, K, d)
    for c in cov:
        assert np.linalg.eigvalsh(c - floor).min() >= -1e-9 * np.abs(c).max()
    trace = idata.em_trace.objective.values
    assert np.isfinite(float(est.objective)) and np.all(np.isfinite(trace[~np.isnan(trace)]))
    if prior is not None:  # exact monotonicity (the MLE's reg_covar is a floor, see test_fit_em)
        for row in trace:
            row = row[~np.isnan(row)]
            assert np.all(np.diff(row) >= -1e-9 * np.abs(row[1:]))


def _data(draw):
    d = draw(st.integers(1, 3))
    n = draw(st.integers(1, 40))
    elements = st.floats(-1e3, 1e3, allow_nan=False, allow_infinity=False, width=64)
    return draw(hnp.arrays(np.float64, (n, d), elements=elements))


@st.composite
def problems(draw):
    X = _data(draw)
    K = draw(st.integers(1, min(4, X.shape[0])))
    return X, K, draw(st.sampled_from(COV_TYPES))


@settings(max_examples=60, deadline=None)
@given(problems())
@example((np.array([[9999.0], [0.0]]), 2, "full"))        # variance cancellation
@example((np.full((10, 2), 3.0), 2, "full"))               # constant data
@example((np.repeat([[0.0, 1.0], [3.0, 2.0]], 15, axis=0), 3, "diag"))  # duplicate rows, K > distinct
@example((np.column_stack([np.arange(20.0), np.full(20, 7.0)]), 2, "tied"))  # zero-variance column
@example((np.array([[0.0, 0.0], [1.0, 2.0], [5.0, 1.0]]), 3, "full"))  # n = K
@example((np.arange(12.0).reshape(6, 2), 1, "spherical"))  # K = 1
@example((np.array([[0.0], [5.58658185e-255]]), 1, "full"))  # a spread whose square underflows
def test_map_invariants_on_any_finite_data(problem):
    """Every finite data set is fitted with the invariants, or refused up front when a feature's spread is
    below SMALLEST_SPREAD (its squared deviations underflow float64: issue 18)."""
    X, K, t = problem
    spread = X.max(axis=0) - X.min(axis=0)
    if np.any((spread > 0) & (spread < SMALLEST_SPREAD)):
        with pytest.raises(ValueError, match=re.escape("squares of such differences underflow float64")):
            fit(X, K, t, "default")
        return
    check_invariants(fit(X, K, t, "default"), X, t, "default")


@pytest.mark.parametrize("t", COV_TYPES)
@pytest.mark.parametrize("prior", PRIORS)
@pytest.mark.parametrize("dtype", [np.float32, np.int64])
def test_float32_and_integer_input(t, prior, dtype):
    X64 = np.round(np.random.default_rng(1).normal(size=(60, 2)) * 10)
    a = fit(X64.astype(dtype), 2, t, prior)
    b = fit(X64, 2, t, prior)
    check_invariants(a, X64, t, prior)
    assert float(a.em_estimate.objective) == pytest.approx(float(b.em_estimate.objective), rel=1e-12)
    assert a.observed_data.x.dtype == np.float64


def _separated(seed=0, n=60):
    rng = np.random.default_rng(seed)
    return np.vstack([rng.normal(0, 1, (n, 2)), rng.normal(6, 1, (n, 2)) * [1, 0.5]])


@pytest.mark.parametrize("t", COV_TYPES)
@pytest.mark.parametrize("prior", PRIORS)
def test_mle_and_map_invariants_on_separated_data(t, prior):
    X = _separated()
    check_invariants(fit(X, 2, t, prior), X, t, prior)


@settings(max_examples=20, deadline=None)
@given(perm_seed=st.integers(0, 1000), t=st.sampled_from(COV_TYPES))
def test_permuting_components_changes_neither_likelihood_nor_prior(perm_seed, t):
    X = _separated()
    idata = fit(X, 3, t, "default")
    hyper = hyperparameters_from_idata(idata)
    est = idata.em_estimate
    from gmmflow.core.gaussian import compact_covariances

    def parts(order):
        w, mu = est.w.values[order], est.mu.values[order]
        cov = compact_covariances(est.cov.values[order], t)
        chol = cholesky(cov, t)
        return log_mixture_density(X, w, mu, chol, t).sum(), log_prior(w, mu, cov, chol, hyper)

    order = np.random.default_rng(perm_seed).permutation(3)
    assert parts(order) == pytest.approx(parts(np.arange(3)), rel=1e-12)


@pytest.mark.parametrize("t", COV_TYPES)
@pytest.mark.parametrize("prior", PRIORS)
def test_shifting_the_data_shifts_only_the_means(t, prior):
    X = _separated()
    shift = np.array([1e4, -3e3])
    a, b = fit(X, 2, t, prior), fit(X + shift, 2, t, prior)
    ea, eb = a.em_estimate, b.em_estimate
    np.testing.assert_allclose(eb.mu.values, ea.mu.values + shift, rtol=1e-9, atol=1e-8)
    np.testing.assert_allclose(eb.w.values, ea.w.values, rtol=1e-8)
    np.testing.assert_allclose(eb.cov.values, ea.cov.values, rtol=1e-7, atol=1e-10)
    assert float(eb.log_likelihood) == pytest.approx(float(ea.log_likelihood), rel=1e-9)


@pytest.mark.parametrize("t", COV_TYPES)
@pytest.mark.parametrize("prior", PRIORS)
def test_row_order_does_not_matter(t, prior):
    """From the same start (given means), the estimate does not depend on the order of the rows."""
    X = _separated()
    order = np.random.default_rng(3).permutation(len(X))
    start = {"means": np.array([[0.0, 0.0], [6.0, 3.0]])}
    a, b = fit(X, 2, t, prior, init=start, n_init=1), fit(X[order], 2, t, prior, init=start, n_init=1)
    for name in ("w", "mu", "cov"):
        np.testing.assert_allclose(b.em_estimate[name].values, a.em_estimate[name].values, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(b.em_estimate.responsibilities.values, a.em_estimate.responsibilities.values[order],
                               atol=1e-12)

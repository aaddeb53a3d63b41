"""Log-densities against scipy.stats.multivariate_normal.logpdf."""

import numpy as np
import pytest
from scipy import stats

from conftest import COV_TYPES, full_cov
from gmmflow.core.gaussian import (
    NotPositiveDefiniteError,
    cholesky,
    compact_covariances,
    full_covariances,
    log_gaussian_prob,
)


def random_params(t, K, d, rng, scales):
    means = rng.normal(size=(K, d)) * scales
    if t == "full":
        A = rng.normal(size=(K, d, d)) * scales[None, :, None]
        cov = A @ A.transpose(0, 2, 1) + 0.5 * np.diag(scales**2)[None]
    elif t == "tied":
        A = rng.normal(size=(d, d)) * scales[:, None]
        cov = A @ A.T + 0.5 * np.diag(scales**2)
    elif t == "diag":
        cov = rng.uniform(0.2, 2.0, size=(K, d)) * scales**2
    else:
        cov = rng.uniform(0.2, 2.0, size=K) * np.mean(scales**2)
    return means, cov


@pytest.mark.parametrize("t", COV_TYPES)
@pytest.mark.parametrize("scaling", ["unit", "bad"])
def test_log_density_matches_scipy(t, scaling):
    rng = np.random.default_rng(1)
    K, d = 3, 3
    if scaling == "unit":
        scales, offset = np.ones(d), np.zeros(d)
    else:  # features at 1e-3 and 1e4 together, offsets of 1e6
        scales, offset = np.array([1e-3, 1.0, 1e4]), np.full(d, 1e6)
    if t == "spherical":  # one variance for all features: badly scaled only via offset
        scales = np.ones(d) * (1.0 if scaling == "unit" else 1e2)
    means, cov = random_params(t, K, d, rng, scales)
    means = means + offset
    X = means[rng.integers(K, size=200)] + rng.normal(size=(200, d)) * scales
    got = log_gaussian_prob(X, means, cholesky(cov, t), t)
    # scipy refuses covariances with condition number > ~5e9, so evaluate the exact
    # identity log N(x | mu, S) = log N(D^-1 (x - mu) | 0, D^-1 S D^-1) - log|D|,
    # D = diag(sqrt(diag S)): scipy sees a correlation matrix, and x - mu is exact.
    covs = full_cov(cov, t, K, d)
    ref = np.empty_like(got)
    for k, (m, c) in enumerate(zip(means, covs)):
        sd = np.sqrt(np.diag(c))
        corr = c / np.outer(sd, sd)
        ref[:, k] = stats.multivariate_normal(np.zeros(d), corr).logpdf((X - m) / sd) - np.log(sd).sum()
    np.testing.assert_allclose(got, ref, rtol=1e-10, atol=0)


@pytest.mark.parametrize("t", COV_TYPES)
def test_full_and_compact_covariances_round_trip(t):
    rng = np.random.default_rng(2)
    _, cov = random_params(t, 3, 2, rng, np.ones(2))
    full = full_covariances(cov, t, 3, 2)
    assert full.shape == (3, 2, 2)
    np.testing.assert_array_equal(full, full_cov(cov, t, 3, 2))
    np.testing.assert_array_equal(compact_covariances(full, t), cov)


def test_cholesky_names_the_bad_component():
    cov = np.array([np.eye(2), [[1.0, 2.0], [2.0, 1.0]]])
    with pytest.raises(NotPositiveDefiniteError, match="covariance of component 1 is not positive definite"):
        cholesky(cov, "full")
    with pytest.raises(NotPositiveDefiniteError, match="variance at index"):
        cholesky(np.array([1.0, -1.0]), "spherical")

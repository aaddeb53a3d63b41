"""Shared fixtures and independent reference implementations for the tests."""

import warnings

import numpy as np
import pytest
from scipy import stats

COV_TYPES = ("full", "tied", "diag", "spherical")


def mixture_data(seed=0, n_per=150, d=2, K=3, spread=4.0):
    """Seeded, well-separated synthetic mixture data (n_per*K, d)."""
    rng = np.random.default_rng(seed)
    blocks = [rng.normal(size=(n_per, d)) @ (0.5 * np.eye(d) + 0.3 * rng.normal(size=(d, d)))
              + spread * rng.normal(size=d) for _ in range(K)]
    return np.concatenate(blocks)


def full_cov(cov, t, K, d):
    """Independent conversion of a compact covariance to K full matrices."""
    if t == "full":
        return np.asarray(cov)
    if t == "tied":
        return np.array([cov] * K)
    if t == "diag":
        return np.array([np.diag(v) for v in cov])
    return np.array([v * np.eye(d) for v in cov])


def scipy_log_prob(X, weights, means, covs):
    """(n, K) log w_k + log N(x | mu_k, Sigma_k) with scipy."""
    return np.stack([np.log(w) + stats.multivariate_normal(m, c).logpdf(X).reshape(-1)
                     for w, m, c in zip(weights, means, covs)], axis=1)


def scipy_log_prior(weights, means, cov, t, hyper):
    """log p(theta) with scipy distributions, from the hyper-parameters."""
    K, d = means.shape
    covs = full_cov(cov, t, K, d)
    lp = stats.dirichlet(np.full(K, hyper.alpha)).logpdf(weights)
    lp += sum(stats.multivariate_normal(hyper.mean, c / hyper.shrinkage).logpdf(m)
              for m, c in zip(means, covs))
    if t == "full":
        lp += sum(stats.invwishart(df=hyper.dof, scale=hyper.scale).logpdf(c) for c in covs)
    elif t == "tied":
        lp += stats.invwishart(df=hyper.dof, scale=hyper.scale).logpdf(cov)
    else:
        lp += np.sum(stats.invgamma(a=hyper.dof / 2, scale=np.asarray(hyper.scale) / 2).logpdf(cov))
    return float(lp)


@pytest.fixture
def no_warnings():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        yield

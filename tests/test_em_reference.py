"""EM against independent references: sklearn's iterations, the M-step's optimality."""

import warnings

import numpy as np
import pytest
from scipy import optimize
from sklearn.mixture import GaussianMixture

from conftest import COV_TYPES, full_cov, mixture_data, scipy_log_prior, scipy_log_prob
from gmmflow.core.row_blocks import ArrayBlocks
from gmmflow.core.em_steps import Params, m_step, statistics_from_responsibilities
from gmmflow.models.priors import Prior, resolve_hyperparameters


@pytest.mark.parametrize("t", COV_TYPES)
def test_mle_iterations_match_sklearn(t):
    """prior=None: log-likelihood after every iteration equals sklearn's (warm start)."""
    X = mixture_data(seed=3, n_per=200, d=3, K=3)
    n = X.shape[0]
    gm = GaussianMixture(3, covariance_type=t, max_iter=1, warm_start=True, random_state=0,
                         reg_covar=1e-6)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        gm.fit(X)  # one sklearn iteration from its own init: our common start
        start = Params.from_cov(gm.weights_, gm.means_, gm.covariances_, t)
        shift = X.mean(axis=0)
        blocks = ArrayBlocks(X, chunk_size=97, shift=shift)  # ragged blocks on purpose
        ours = start.shifted(-shift)
        for _ in range(25):
            gm.fit(X)
            ours = m_step(blocks.e_step(ours), t, None, 1e-6)
            ll = blocks.e_step(ours).log_likelihood
            np.testing.assert_allclose(ll, gm.score(X) * n, rtol=1e-9)
    np.testing.assert_allclose(ours.shifted(shift).means, gm.means_, rtol=1e-7, atol=1e-9)


def expected_objective(X, resp, params_vec, t, K, d, hyper, unpack):
    """E_r[log p(X, z | theta)] + log p(theta), by scipy densities."""
    w, mu, cov = unpack(params_vec)
    lp = scipy_log_prob(X, w, mu, full_cov(cov, t, K, d))
    out = float(np.sum(resp * lp))
    if hyper is not None:
        out += scipy_log_prior(w, mu, cov, t, hyper)
    return out


def make_unpack(t, K, d):
    """Unconstrained vector <-> (weights, means, covariance), log-Cholesky for matrices."""
    tri = np.tril_indices(d)

    def chol_to_cov(v):
        L = np.zeros((d, d))
        L[tri] = v
        L[np.diag_indices(d)] = np.exp(np.diag(L))
        return L @ L.T

    def unpack(v):
        i = 0
        logits = np.concatenate([[0.0], v[i:i + K - 1]]); i += K - 1
        w = np.exp(logits - logits.max()); w /= w.sum()
        mu = v[i:i + K * d].reshape(K, d); i += K * d
        m = len(tri[0])
        if t == "full":
            cov = np.array([chol_to_cov(v[i + k * m:i + (k + 1) * m]) for k in range(K)])
        elif t == "tied":
            cov = chol_to_cov(v[i:i + m])
        elif t == "diag":
            cov = np.exp(v[i:i + K * d]).reshape(K, d)
        else:
            cov = np.exp(v[i:i + K])
        return w, mu, cov

    def pack(w, mu, cov):
        def cov_to_chol(c):
            L = np.linalg.cholesky(c)
            L[np.diag_indices(d)] = np.log(np.diag(L))
            return L[tri]
        parts = [np.log(w[1:] / w[0]), mu.ravel()]
        if t == "full":
            parts += [cov_to_chol(c) for c in cov]
        elif t == "tied":
            parts.append(cov_to_chol(cov))
        else:
            parts.append(np.log(cov).ravel())
        return np.concatenate(parts)

    return unpack, pack


@pytest.mark.parametrize("t", COV_TYPES)
@pytest.mark.parametrize("with_prior", [True, False])
def test_m_step_maximises_expected_complete_log_posterior(t, with_prior):
    rng = np.random.default_rng(7)
    K, d = 2, 2
    X = mixture_data(seed=5, n_per=20, d=d, K=K)
    resp = rng.dirichlet(np.ones(K), size=X.shape[0])
    hyper = None
    if with_prior:
        prior = Prior(alpha=2.5, shrinkage=0.3, dof=d + 1.5)
        hyper = resolve_hyperparameters(prior, t, K, X.mean(0), np.cov(X.T))
    params = m_step(statistics_from_responsibilities(X.T, resp.T, t), t, hyper, reg_covar=0.0)
    unpack, pack = make_unpack(t, K, d)
    best = pack(params.weights, params.means, params.cov)
    f_best = expected_objective(X, resp, best, t, K, d, hyper, unpack)

    # perturbing the closed form never increases the objective
    for _ in range(30):
        trial = best + 1e-3 * rng.normal(size=best.shape)
        assert expected_objective(X, resp, trial, t, K, d, hyper, unpack) <= f_best + 1e-10 * abs(f_best)

    # a numeric optimiser started there finds nothing better
    res = optimize.minimize(lambda v: -expected_objective(X, resp, v, t, K, d, hyper, unpack),
                            best, method="BFGS", options={"gtol": 1e-9})
    assert -res.fun <= f_best + 1e-8 * abs(f_best)
    # and the gradient there is ~0: it is a stationary point of the same objective
    grad = optimize.approx_fprime(best, lambda v: expected_objective(X, resp, v, t, K, d, hyper, unpack), 1e-7)
    assert np.max(np.abs(grad)) < 1e-3 * max(1.0, abs(f_best)) / X.shape[0]

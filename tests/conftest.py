"""Shared fixtures and independent reference implementations for the tests."""

import os
import warnings

import numpy as np
import pytest
from hypothesis import settings
from scipy import stats

# CI explores the same examples every run (a failure there is reproducible);
# locally, HYPOTHESIS_PROFILE=explore searches afresh each time.
settings.register_profile("ci", derandomize=True, print_blob=True)
settings.register_profile("explore", derandomize=False, print_blob=True)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

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


def fake_posterior(X, K, *, chains=2, draws=40, seed=0, predictive=True, features=None):
    """A posterior-shaped result without NUTS: seeded draws scattered around the EM estimate.

    Plots and ``compare`` only read a result, so their tests need its layout,
    not a real sampler. Weights are Dirichlet, means Gaussian and covariances
    Wishart around the EM values; everything derived (log-likelihood,
    assignment probabilities, predictive draws) is computed from the draws
    exactly as ``sample_posterior`` does.
    """
    import pandas as pd
    import xarray as xr

    from gmmflow.core.gaussian import sample_mixture
    from gmmflow.inputs.matrix import as_data_matrix
    from gmmflow.models.spec import GMM
    from gmmflow.results.records import PosteriorSample
    from gmmflow.results.to_idata import em_groups, posterior_inference_data
    from gmmflow.workflows.em_fit import fit_em_record
    from gmmflow.workflows.posterior_sampling import _draw_params, _pointwise

    model = GMM(K)
    data = as_data_matrix(X if features is None else pd.DataFrame(X, columns=features))
    em = fit_em_record(model, data, n_init=3, seed=seed)
    w0, mu0 = em.params.weights, em.params.means
    cov0 = em.params.cov
    rng = np.random.default_rng(seed)
    S, d = chains * draws, data.shape[1]
    w = rng.dirichlet(300 * w0 + 1, size=S)
    sd = np.sqrt(np.diagonal(cov0, axis1=1, axis2=2))
    mu = mu0 + 0.05 * sd * rng.standard_normal((S, K, d))
    cov = np.stack([[stats.wishart(df=400, scale=c / 400).rvs(random_state=rng).reshape(d, d) for c in cov0]
                    for _ in range(S)])
    params = _draw_params(w, mu, cov, "full")
    loglik, assignment = _pointwise(data.values, params)
    pred = np.stack([sample_mixture(rng, data.shape[0], p.weights, p.means, p.chol, "full")[0]
                     for p in map(params.take, range(S))]) if predictive else None
    stats_ds = xr.Dataset({"diverging": (("chain", "draw"), np.zeros((chains, draws), bool))})
    sample = PosteriorSample(
        shape=(chains, draws), w=w, mu=mu, cov=cov, permutation=np.broadcast_to(np.arange(K), (S, K)).copy(),
        log_likelihood=loglik, assignment=assignment, sample_stats=stats_ds, predictive=pred,
        seed=seed, sampler="fake", draws=draws, tune=0, relabelled=True)
    return posterior_inference_data(model, data, em.hyper, em_groups(em), em.seed, sample)


@pytest.fixture(scope="session")
def posteriors():
    """Fake posteriors on 1-D (galaxies-like), 2-D and 4-D data, keyed by d."""
    out = {}
    for d, K in ((1, 3), (2, 2), (4, 2)):
        X = mixture_data(seed=d, n_per=60, d=d, K=K, spread=6.0)
        out[d] = fake_posterior(X, K, seed=d, features=[f"f{j}" for j in range(d)])
    return out


def fake_nuts(spec, X, hyper, start, draws, tune, chains, seed, jitter_rng, progressbar, log_noise_density=None):
    """A stand-in for a ``nuts_backends`` runner: seeded draws scattered around the start values.

    Weights are Dirichlet around the start, means get small Gaussian noise,
    covariances stay at the start. For tests of what happens around
    sampling (files, signals, messages), where a real NUTS run would only
    cost time.
    """
    import arviz as az
    import xarray as xr

    rng = np.random.default_rng(seed)
    posterior = {}
    for name, value in start.items():
        value = np.asarray(value, dtype=np.float64)
        if name == "w":
            draws_ = rng.dirichlet(500 * value + 1, size=(chains, draws))
        elif name == "mu":
            draws_ = value + 0.01 * (np.abs(value).mean() + 1) * rng.standard_normal((chains, draws, *value.shape))
        else:
            draws_ = np.broadcast_to(value, (chains, draws, *value.shape)).copy()
        posterior[name] = (("chain", "draw", *[f"{name}_dim_{i}" for i in range(value.ndim)]), draws_)
    stats = {"diverging": (("chain", "draw"), np.zeros((chains, draws), bool))}
    return az.InferenceData(posterior=xr.Dataset(posterior), sample_stats=xr.Dataset(stats))


def forbid_work(monkeypatch):
    """Any EM restart, NUTS run or grid cell fails the test: refusals must come before work."""
    def forbidden(*args, **kwargs):
        raise AssertionError("work started before the input was checked")

    for target in ("gmmflow.workflows.em_fit.fit_restarts", "gmmflow.workflows.nuts_backends.run_nutpie",
                   "gmmflow.workflows.nuts_backends.run_pymc", "gmmflow.workflows.nuts_backends.run_numpyro",
                   "gmmflow.workflows.model_selection._fit_cell",
                   "gmmflow.workflows.posterior_sampling._run_sampler"):
        monkeypatch.setattr(target, forbidden)

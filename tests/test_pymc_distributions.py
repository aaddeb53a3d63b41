"""gmmflow.pymc: the mixture distribution, the inverse Wishart and the named prior blocks.

References: scipy's densities (mixture by logsumexp over scipy.stats.multivariate_normal,
scipy.stats.invwishart), closed-form moments of the draws, and EM's own hyper-parameters.
"""

import re
import warnings

import numpy as np
import pymc as pm
import pytensor.tensor as pt
import pytest
from scipy import stats
from scipy.special import logsumexp

import gmmflow
from gmmflow.pymc import GaussianMixture, InverseWishart, gmm_priors

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


def random_mixture(rng, K, d):
    w = rng.dirichlet(np.ones(K) * 2)
    mu = rng.normal(scale=2.0, size=(K, d))
    A = rng.normal(size=(K, d, d))
    cov = A @ A.transpose(0, 2, 1) + 0.5 * np.eye(d)
    return w, mu, cov


def scipy_mixture_logpdf(X, w, mu, cov):
    return logsumexp(np.stack([np.log(w[k]) + stats.multivariate_normal(mu[k], cov[k]).logpdf(X).reshape(len(X))
                               for k in range(len(w))], axis=1), axis=1)


def pointwise(model):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return model.compile_fn(model.logp(sum=False)[0], point_fn=False)()


@pytest.mark.parametrize("d", [1, 2, 3, 4])
@pytest.mark.parametrize("form", ["chol", "cov", "diag", "spherical"])
def test_logp_equals_scipy_mixture_density(d, form):
    rng = np.random.default_rng(d)
    w, mu, cov = random_mixture(rng, 3, d)
    if form == "diag":
        cov = np.stack([np.diag(np.diag(c)) for c in cov])
    elif form == "spherical":
        cov = np.stack([np.trace(c) / d * np.eye(d) for c in cov])
    X = rng.normal(scale=3.0, size=(40, d))
    arg = {"cov": cov} if form == "cov" else {"chol": np.linalg.cholesky(cov)}
    with pm.Model() as model:
        GaussianMixture("x", w, mu, **arg, observed=X)
    np.testing.assert_allclose(pointwise(model), scipy_mixture_logpdf(X, w, mu, cov), rtol=1e-10, atol=1e-12)


def test_univariate_mixture_logp_equals_scipy():
    rng = np.random.default_rng(5)
    w, mu, sd = rng.dirichlet(np.ones(4)), rng.normal(size=4), rng.uniform(0.3, 2.0, 4)
    x = rng.normal(scale=2.0, size=50)
    with pm.Model() as model:
        GaussianMixture("x", w, mu, sigma=sd, observed=x)
    ref = logsumexp(np.log(w) + stats.norm(mu, sd).logpdf(x[:, None]), axis=1)
    np.testing.assert_allclose(pointwise(model), ref, rtol=1e-10)


def test_batched_parameters_broadcast_against_the_rows():
    """Weights per group (w[g_i]) and means per row (a regression line): the slow, broadcasting path."""
    rng = np.random.default_rng(3)
    K, d, n, G = 3, 2, 30, 4
    _, mu, cov = random_mixture(rng, K, d)
    W = rng.dirichlet(np.ones(K), size=G)
    g = rng.integers(0, G, n)
    shift = rng.normal(size=(n, 1, d))
    X = rng.normal(size=(n, d))
    with pm.Model() as model:
        GaussianMixture("x", pt.as_tensor(W)[g], mu + shift, chol=np.linalg.cholesky(cov), observed=X)
    ref = np.array([scipy_mixture_logpdf(X[i:i + 1], W[g[i]], mu + shift[i], cov)[0] for i in range(n)])
    np.testing.assert_allclose(pointwise(model), ref, rtol=1e-10)


def _moments_within_4_se(draws, mean, cov):
    """Sample mean and covariance of ``draws`` within 4 standard errors of the truth, entry by entry.

    Each entry fails with probability ~6e-5 under the null; the tests below check < 40 entries
    in all, so a correct generator fails with probability < 3e-3 (and the seeds are fixed).
    """
    n = draws.shape[0]
    se_mean = np.sqrt(np.diag(cov) / n)
    assert np.all(np.abs(draws.mean(0) - mean) < 4 * se_mean), (draws.mean(0), mean)
    centred = draws - mean
    products = centred[:, :, None] * centred[:, None, :]
    se_cov = products.std(0, ddof=1) / np.sqrt(n)
    assert np.all(np.abs(products.mean(0) - cov) < 4 * se_cov), (products.mean(0), cov)


@pytest.mark.parametrize("d", [1, 2, 3])
def test_draws_match_the_mixture_mean_and_covariance(d):
    rng = np.random.default_rng(10 + d)
    w, mu, cov = random_mixture(rng, 3, d)
    mean = w @ mu
    total = sum(w[k] * (cov[k] + np.outer(mu[k] - mean, mu[k] - mean)) for k in range(3))
    with pm.Model():
        GaussianMixture("x", w, mu, chol=np.linalg.cholesky(cov), shape=(40_000, d))
        draws = pm.sample_prior_predictive(draws=1, random_seed=d).prior["x"].values[0, 0]
    assert draws.shape == (40_000, d)
    _moments_within_4_se(draws, mean, total)


def test_univariate_draws_match_the_mixture_moments():
    w, mu, sd = np.array([0.2, 0.8]), np.array([-2.0, 1.0]), np.array([0.5, 1.5])
    with pm.Model():
        GaussianMixture("x", w, mu, sigma=sd, shape=(40_000,))
        draws = pm.sample_prior_predictive(draws=1, random_seed=0).prior["x"].values[0, 0]
    mean = w @ mu
    _moments_within_4_se(draws[:, None], np.array([mean]), np.array([[w @ (sd**2 + (mu - mean) ** 2)]]))


def test_inverse_wishart_logp_equals_scipy_and_draws_have_its_mean():
    rng = np.random.default_rng(0)
    d, nu = 3, 8.0
    A = rng.normal(size=(d, d))
    scale = A @ A.T + np.eye(d)
    with pm.Model() as model:
        S = InverseWishart("S", nu, scale)
    value = stats.invwishart(df=nu, scale=scale).rvs(random_state=1)
    logp = model.compile_logp(vars=[S], jacobian=False)
    point = {"S_cholesky_cov__": model.rvs_to_transforms[S].forward(pt.as_tensor(value)).eval()}
    np.testing.assert_allclose(logp(point), stats.invwishart(df=nu, scale=scale).logpdf(value), rtol=1e-10)
    with pm.Model():
        InverseWishart("S", nu, scale, shape=(20_000, d, d))
        draws = pm.sample_prior_predictive(draws=1, random_seed=2).prior["S"].values[0, 0]
    # E[Sigma] = scale / (nu - d - 1); entry sds from the draws themselves, 4 of them
    se = draws.std(0, ddof=1) / np.sqrt(draws.shape[0])
    assert np.all(np.abs(draws.mean(0) - scale / (nu - d - 1)) < 4 * se)


def test_prior_and_posterior_predictive_return_the_observed_variable():
    X = np.random.default_rng(0).normal(size=(25, 2))
    spec = gmmflow.GMM(2)
    with pm.Model(coords={"obs_id": np.arange(25)}) as model:
        w, mu, _, chol = gmm_priors(spec, X)
        GaussianMixture("x", w, mu, chol=chol, observed=X, dims=("obs_id", "feature"))
        prior = pm.sample_prior_predictive(draws=5, random_seed=0)
        trace = prior.prior.rename({"chain": "chain", "draw": "draw"})
        post = pm.sample_posterior_predictive(trace, random_seed=1, progressbar=False)
    assert prior.prior_predictive["x"].shape == (1, 5, 25, 2)
    assert post.posterior_predictive["x"].shape == (1, 5, 25, 2)
    assert model["x"] in model.observed_RVs


def test_two_mixtures_live_in_one_model_under_prefixes():
    rng = np.random.default_rng(1)
    A, B = rng.normal(size=(30, 2)), rng.normal(size=(20, 3))
    with pm.Model() as model:
        a = gmm_priors(gmmflow.GMM(2), A, prefix="a_")
        b = gmm_priors(gmmflow.GMM(3, "diag"), B, prefix="b_")
        GaussianMixture("xa", a.w, a.mu, chol=a.chol, observed=A)
        GaussianMixture("xb", b.w, b.mu, chol=b.chol, observed=B)
    names = {rv.name for rv in model.free_RVs}
    assert names == {"a_w", "a_mu", "a_cov", "b_w", "b_mu", "b_var"}
    assert model.named_vars_to_dims["a_cov"] == ("a_component", "a_feature", "a_feature2")
    assert len(model.coords["b_component"]) == 3 and len(model.coords["a_feature"]) == 2


@pytest.mark.parametrize("t", ["full", "tied", "diag", "spherical"])
def test_prior_resolve_gives_em_s_hyperparameters(t):
    X = gmmflow.load_dataset("faithful")
    fit = gmmflow.fit_em(gmmflow.GMM(2, t), X, n_init=1, seed=0)
    from gmmflow.results.from_idata import hyperparameters_from_idata

    em = hyperparameters_from_idata(fit)
    mine = gmmflow.Prior().resolve(X, covariance_type=t, n_components=2)
    for field in ("alpha", "shrinkage", "dof"):
        assert getattr(mine, field) == getattr(em, field)
    np.testing.assert_allclose(mine.mean, em.mean, rtol=1e-13)
    np.testing.assert_allclose(mine.scale, em.scale, rtol=1e-12)


def test_the_model_is_built_from_the_blocks():
    """GMM.pymc_model is gmm_priors + GaussianMixture: same variables, same density."""
    X = gmmflow.load_dataset("faithful")
    spec = gmmflow.GMM(2)
    built = spec.pymc_model(X)
    with pm.Model(coords={"obs_id": X.obs_id.values}) as by_hand:
        w, mu, _, chol = gmm_priors(spec, X)
        GaussianMixture("x", w, mu, chol=chol, observed=X.values, dims=("obs_id", "feature"))
    point = built.initial_point()
    assert set(point) == set(by_hand.initial_point())
    np.testing.assert_allclose(built.compile_logp()(point), by_hand.compile_logp()(point), rtol=1e-12)


def test_no_cholesky_decomposition_is_left_in_the_gradient():
    """The transform marks its factor lower-triangular: PyTensor rewrites cholesky(L L^T) to L."""
    import pytensor
    from pytensor.tensor.slinalg import Cholesky

    model = gmmflow.GMM(2).pymc_model(gmmflow.load_dataset("faithful"))
    fn = pytensor.function(model.value_vars, pytensor.grad(model.logp(), model.value_vars),
                           on_unused_input="ignore")
    ops = [getattr(n.op, "core_op", n.op) for n in fn.maker.fgraph.toposort()]
    assert not any(isinstance(op, Cholesky) for op in ops)


@pytest.mark.parametrize("kwargs, message", [
    ({}, "GaussianMixture needs exactly one of chol="),
    ({"chol": np.eye(2)[None], "cov": np.eye(2)[None]}, "GaussianMixture needs exactly one of chol="),
    ({"chol": np.ones((1, 2))}, "GaussianMixture: mu must be (..., K, d) and chol/cov (..., K, d, d)"),
])
def test_bad_parameters_are_refused(kwargs, message):
    with pm.Model(), pytest.raises(ValueError, match=re.escape(message)):
        GaussianMixture("x", np.ones(1), np.zeros((1, 2)), **kwargs)

"""The PyMC model: same density as EM's objective, transform, forms, find_MAP, prior draws."""

import itertools
import time
import warnings

import numpy as np
import pymc as pm
import pytensor
import pytensor.tensor as pt
import pytest
from scipy import stats
from scipy.special import logsumexp

import gmmflow
from conftest import COV_TYPES, full_cov
from gmmflow.core.row_blocks import ArrayBlocks, data_moments
from gmmflow.core.em_steps import Params
from gmmflow.core.prior_density import log_prior
from gmmflow.models.priors import resolve_hyperparameters
from gmmflow.models.pymc_model import covariance_value_name, unconstrained_point_function
from gmmflow.pymc import CholeskyCovTransform, GaussianMixture, gmm_priors

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

FAITHFUL = gmmflow.load_dataset("faithful")


def em_objective(X, w, mu, cov, t, hyper):
    p = Params.from_cov(w, mu, cov, t)
    ll = ArrayBlocks(np.asarray(X)).e_step(p).log_likelihood
    return ll + log_prior(w, mu, cov, p.chol, hyper)


def prior_draws(spec, hyper, n=4, seed=1):
    with spec.pymc_model(hyperparameters=hyper):
        return pm.sample_prior_predictive(draws=n, random_seed=seed).prior


@pytest.mark.parametrize("t", COV_TYPES)
def test_pymc_logp_equals_em_objective_at_prior_draws(t):
    spec = gmmflow.GMM(2, t)
    mean, cov = data_moments(FAITHFUL.values)
    hyper = spec.hyperparameters(mean, cov)
    model = spec.pymc_model(FAITHFUL)
    logp = model.compile_logp(jacobian=False)
    to_point = unconstrained_point_function(model)
    pointwise = model.compile_fn(model.logp(vars=model.observed_RVs, sum=False)[0])
    draws = prior_draws(spec, hyper)
    cname = covariance_value_name(t)
    for i in range(draws.sizes["draw"]):
        w, mu, c = (draws[v].values[0, i] for v in ("w", "mu", cname))
        point = to_point({"w": w, "mu": mu, cname: c})
        np.testing.assert_allclose(logp(point), em_objective(FAITHFUL.values, w, mu, c, t, hyper), rtol=1e-8)
        # the marginal likelihood, row by row, against scipy + logsumexp
        covs = full_cov(c, t, 2, 2)
        ref = logsumexp(np.stack([np.log(w[k]) + stats.multivariate_normal(mu[k], covs[k]).logpdf(FAITHFUL.values)
                                  for k in range(2)], 1), axis=1)
        np.testing.assert_allclose(pointwise(point), ref, rtol=1e-10)


def test_generative_and_marginal_forms_give_the_same_density():
    X = np.array([[0.1, -0.3], [2.0, 1.5], [0.7, 0.2]])
    spec = gmmflow.GMM(2, "full")
    hyper = resolve_hyperparameters(gmmflow.Prior(), "full", 2, X.mean(0), np.cov(X.T))
    marg = spec.pymc_model(X, hyperparameters=hyper)
    gen = spec.pymc_model(X, marginalized=False, hyperparameters=hyper)
    w, mu = np.array([0.3, 0.7]), np.array([[0.0, 0.0], [1.0, 1.0]])
    cov = np.array([[[1.0, 0.2], [0.2, 0.5]], [[0.7, -0.1], [-0.1, 1.2]]])
    f_marg = marg.compile_logp(jacobian=False)
    f_gen = gen.compile_logp(jacobian=False)
    pm_marg = unconstrained_point_function(marg)({"w": w, "mu": mu, "cov": cov})
    pm_gen = unconstrained_point_function(gen)({"w": w, "mu": mu, "cov": cov})
    # sum the generative density over all 2^3 labellings by hand
    joint = [f_gen({**pm_gen, "z": np.array(z)}) for z in itertools.product([0, 1], repeat=3)]
    np.testing.assert_allclose(logsumexp(joint), f_marg(pm_marg), rtol=1e-12)


def test_transform_round_trip_and_log_jacobian_by_finite_differences():
    d = 3
    tr = CholeskyCovTransform(d)
    rng = np.random.default_rng(0)
    A = rng.normal(size=(d, d))
    S = A @ A.T + np.eye(d)
    v = pt.dvector("v")
    backward = pytensor.function([v], tr.backward(v))
    ljd = pytensor.function([v], tr.log_jac_det(v))
    vec = tr.forward(pt.as_tensor(S)).eval()
    np.testing.assert_allclose(backward(vec), S, rtol=1e-12)
    # batched round trip
    S2 = np.stack([S, 2 * S])
    np.testing.assert_allclose(tr.backward(tr.forward(pt.as_tensor(S2))).eval(), S2, rtol=1e-12)
    # Jacobian of v -> vech(Sigma) (lower triangle), central differences
    rows, cols = np.tril_indices(d)
    h = 1e-6
    J = np.empty((vec.size, vec.size))
    for j in range(vec.size):
        e = np.zeros(vec.size); e[j] = h
        J[:, j] = (backward(vec + e)[rows, cols] - backward(vec - e)[rows, cols]) / (2 * h)
    np.testing.assert_allclose(ljd(vec), np.linalg.slogdet(J)[1], rtol=1e-6)


@pytest.mark.parametrize("t", COV_TYPES)
def test_find_map_does_not_move_em_estimate_and_never_beats_it(t, record_property):
    spec = gmmflow.GMM(2, t)
    X = (FAITHFUL - FAITHFUL.mean("obs_id")) / FAITHFUL.std("obs_id")
    t0 = time.perf_counter()
    idata = gmmflow.fit_em(spec, X, n_init=5, seed=0, tol=1e-12)
    em_seconds = time.perf_counter() - t0
    est = idata.em_estimate
    cname = covariance_value_name(t)
    from gmmflow.core.gaussian import compact_covariances
    start = {"w": est.w.values, "mu": est.mu.values, cname: compact_covariances(est.cov.values, t)}
    model = spec.pymc_model(X)
    logp = model.compile_logp(jacobian=False)
    to_point = unconstrained_point_function(model)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        t0 = time.perf_counter()
        found = pm.find_MAP(start=start, model=model, progressbar=False)
        map_seconds = time.perf_counter() - t0
        elsewhere = pm.find_MAP(model=model, progressbar=False)  # PyMC's default start
    em_obj = float(est.objective)
    f_found = logp(to_point({k: found[k] for k in ("w", "mu", cname)}))
    np.testing.assert_allclose(f_found, em_obj, rtol=1e-8)
    np.testing.assert_allclose(found["mu"], est.mu.values, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(found["w"], est.w.values, rtol=1e-5, atol=1e-6)
    f_else = logp(to_point({k: elsewhere[k] for k in ("w", "mu", cname)}))
    assert f_else <= em_obj + 1e-8 * abs(em_obj)
    record_property("find_map_over_em_seconds", map_seconds / em_seconds)
    print(f"{t}: EM {em_seconds:.3f}s, find_MAP from EM {map_seconds:.3f}s, ratio {map_seconds / em_seconds:.1f}")


def test_prior_predictive_shapes_and_inverse_wishart_mean():
    d, nu = 2, 8.0
    scale = np.array([[2.0, 0.3], [0.3, 1.0]])
    spec = gmmflow.GMM(2, "full", prior=gmmflow.Prior(mean=[1.0, -1.0], scale=scale, dof=nu, shrinkage=0.5))
    model = spec.pymc_model(marginalized=False, n_obs=7)
    with model:
        prior = pm.sample_prior_predictive(draws=4000, random_seed=3).prior
    assert prior["x"].shape == (1, 4000, 7, 2)
    assert prior["z"].shape == (1, 4000, 7)
    assert prior["cov"].shape == (1, 4000, 2, 2, 2)
    cov = prior["cov"].values.reshape(-1, 2, 2)
    want = scale / (nu - d - 1)
    # Monte Carlo: 8000 IW matrices; compare within 4 standard errors per entry
    se = cov.std(axis=0) / np.sqrt(cov.shape[0])
    assert np.all(np.abs(cov.mean(axis=0) - want) < 4 * se)
    # mu | Sigma ~ N(m, Sigma / kappa): E[mu] = m, Cov[mu] = E[Sigma] / kappa
    mu = prior["mu"].values.reshape(-1, 2)
    assert np.all(np.abs(mu.mean(axis=0) - [1.0, -1.0]) < 4 * mu.std(axis=0) / np.sqrt(mu.shape[0]))
    w = prior["w"].values.reshape(-1, 2)
    assert abs(w.mean() - 0.5) < 0.01  # Dirichlet(1, 1): mean 1/2, sd 0.29, 8000 draws -> se 0.003


def test_simulate_returns_data_labels_and_truth():
    spec = gmmflow.GMM(3, "diag", prior=gmmflow.Prior(mean=[0.0, 0.0], scale=[1.0, 2.0]))
    ds = gmmflow.simulate(spec, 40, seed=5)
    assert ds["x"].shape == (40, 2) and ds["z"].shape == (40,) and ds["cov"].shape == (3, 2, 2)
    assert set(np.unique(ds["z"].values)) <= {0, 1, 2}
    again = gmmflow.simulate(spec, 40, seed=5)
    np.testing.assert_array_equal(ds["x"].values, again["x"].values)
    with pytest.raises(ValueError, match="Without X the default prior has no data"):
        gmmflow.simulate(gmmflow.GMM(2), 10, seed=0)


def test_user_prior_identical_in_both_engines():
    prior = gmmflow.Prior(alpha=3.0, shrinkage=0.5, dof=6.0, scale=[[0.5, 0.1], [0.1, 40.0]], mean=[3.0, 70.0])
    spec = gmmflow.GMM(2, "full", prior=prior)
    idata = gmmflow.fit_em(spec, FAITHFUL, n_init=2, seed=0)
    from gmmflow.results.from_idata import hyperparameters_from_idata
    hyper = hyperparameters_from_idata(idata)
    assert hyper.alpha == 3.0 and hyper.dof == 6.0 and hyper.shrinkage == 0.5
    np.testing.assert_array_equal(hyper.scale, np.array(prior.scale))
    model = spec.pymc_model(FAITHFUL)
    est = idata.em_estimate
    point = unconstrained_point_function(model)({"w": est.w.values, "mu": est.mu.values, "cov": est.cov.values})
    np.testing.assert_allclose(model.compile_logp(jacobian=False)(point), float(est.objective), rtol=1e-10)


def test_gmm_as_a_piece_of_a_larger_model():
    """Robust regression: y = a + b t + e, e ~ 2-component GMM (most small, some outliers)."""
    rng = np.random.default_rng(0)
    t = np.linspace(-2, 2, 200)
    outlier = rng.random(200) < 0.15
    y = 1.0 + 2.5 * t + np.where(outlier, rng.normal(0, 5.0, 200), rng.normal(0, 0.3, 200))
    spec = gmmflow.GMM(2, "full")
    hyper = resolve_hyperparameters(gmmflow.Prior(mean=[0.0], scale=[[1.0]]), "full", 2, np.zeros(1), np.eye(1))
    with pm.Model():
        a = pm.Normal("a", 0, 10)
        b = pm.Normal("b", 0, 10)
        w, mu, cov, chol = gmm_priors(spec, hyper=hyper, features=["e"])
        # every row's component means shifted by its regression line: batched means (n, K, 1)
        GaussianMixture("y", w, (a + b * t)[:, None, None] + mu, chol=chol, observed=y[:, None])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            # both components start at the IW mode, a symmetric stationary point:
            # start them apart (a narrow and a wide error component)
            found = pm.find_MAP(start={"cov": np.array([[[0.1]], [[10.0]]])}, progressbar=False)
    b_ols = np.polyfit(t, y, 1)[0]  # 2.616: pulled by the outliers
    b_inliers = np.polyfit(t[~outlier], y[~outlier], 1)[0]  # 2.497, the oracle
    # inlier slope standard error ~0.3 / sqrt(170 * 1.35) = 0.02; allow 2.5 of them
    assert abs(found["b"] - b_inliers) < 0.05
    assert abs(found["b"] - 2.5) < abs(b_ols - 2.5) / 2
    assert sorted(np.sqrt(found["cov"].ravel()))[0] < 1.0


@pytest.mark.parametrize("t", COV_TYPES)
def test_point_maps_are_inverse(t):
    from gmmflow.core.gaussian import compact_covariances
    from gmmflow.models.pymc_model import constrained_point_function
    est = gmmflow.fit_em(gmmflow.GMM(2, t), FAITHFUL, seed=0).em_estimate
    model = gmmflow.GMM(2, t).pymc_model(FAITHFUL)
    values = {"w": est.w.values, "mu": est.mu.values,
              covariance_value_name(t): compact_covariances(est.cov.values, t)}
    point = unconstrained_point_function(model)(values)
    assert set(point) == {v.name for v in model.value_vars}
    back = constrained_point_function(model)(point)
    for name, value in values.items():
        np.testing.assert_allclose(back[name], value, rtol=1e-12, atol=1e-14)

"""Missing values (``missing="marginalize"``): EM on each row's observed coordinates.

References independent of ``core/missing_data.py``: scipy's marginal
densities per row, a plain-loop missing-data EM step written from the
textbook (centred scatter, conditional moments by ``np.linalg.solve``), the
complete-data fit when nothing is missing, and duplicated rows for weights.
"""

import re

import numpy as np
import pytest
import xarray as xr
from scipy import stats
from scipy.optimize import linear_sum_assignment
from scipy.special import logsumexp

import gmmflow
from conftest import COV_TYPES, forbid_work, full_cov, mixture_data, scipy_log_prior
from gmmflow.core.em_steps import m_step
from gmmflow.core.missing_data import MissingBlocks
from gmmflow.results.from_idata import em_params, hyperparameters_from_idata

PRIORS = ("default", None)


def with_missing(X, share, seed):
    """``X`` with a ``share`` of its cells set to NaN completely at random, all-missing rows dropped."""
    rng = np.random.default_rng(seed)
    Xm = X.copy()
    Xm[rng.random(X.shape) < share] = np.nan
    keep = ~np.isnan(Xm).all(axis=1)
    return Xm[keep], X[keep]


def observed_log_likelihood(X, w, mu, covs):
    """sum_i log sum_k w_k N(x_io | mu_ko, Sigma_k,oo) by scipy, row by row."""
    total = 0.0
    for x in X:
        o = ~np.isnan(x)
        total += logsumexp([np.log(w[k]) + stats.multivariate_normal(mu[k][o], covs[k][np.ix_(o, o)]).logpdf(x[o])
                            for k in range(len(w))])
    return total


@pytest.fixture(scope="module")
def incomplete():
    X = mixture_data(seed=5, n_per=60, d=3, K=2)
    return with_missing(X, 0.2, seed=1)[0]


def _fit(X, t, prior, **options):
    model = gmmflow.GMM(2, covariance_type=t, prior=prior)
    return gmmflow.fit_em(model, X, missing="marginalize", **({"seed": 0, "n_init": 3} | options))


@pytest.mark.parametrize("prior", PRIORS)
@pytest.mark.parametrize("t", COV_TYPES)
def test_objective_is_observed_log_likelihood_plus_log_prior(incomplete, t, prior):
    """The EM objective at the estimate equals scipy's marginal densities per row plus scipy's log-prior."""
    idata = _fit(incomplete, t, prior)
    model, params, _ = em_params(idata)
    K, d = params.means.shape
    ll = observed_log_likelihood(incomplete, params.weights, params.means, full_cov(params.cov, t, K, d))
    hyper = hyperparameters_from_idata(idata)
    lp = 0.0 if hyper is None else scipy_log_prior(params.weights, params.means, params.cov, t, hyper)
    est = idata.em_estimate
    assert abs(float(est.log_likelihood) - ll) < 1e-10 * max(1.0, abs(ll))
    assert abs(float(est.objective) - (ll + lp)) < 1e-10 * max(1.0, abs(ll + lp))
    assert np.isnan(idata.observed_data.x.values).sum() == np.isnan(incomplete).sum()
    assert idata.attrs["missing"] == "marginalize"
    assert idata.attrs["n_missing"] == int(np.isnan(incomplete).sum())


# ---------------------------------------------------------------- an independent EM step
def reference_em_step(X, w, mu, covs, t, hyper, reg_covar):
    """One missing-data EM step (Ghahramani & Jordan 1994) in plain loops, in the data's frame.

    E-step: per row and component, the marginal density of the observed
    coordinates, the conditional mean and covariance of the missing ones by
    ``np.linalg.solve``; M-step from centred expected scatter matrices.
    """
    n, d = X.shape
    K = len(w)
    xhat = np.zeros((n, K, d))
    extra = np.zeros((n, K, d, d))  # conditional covariance of the missing block, zero elsewhere
    logp = np.zeros((n, K))
    for i in range(n):
        o = ~np.isnan(X[i])
        m = ~o
        for k in range(K):
            S = covs[k]
            logp[i, k] = np.log(w[k]) + stats.multivariate_normal(mu[k][o], S[np.ix_(o, o)]).logpdf(X[i][o])
            xhat[i, k][o] = X[i][o]
            if m.any():
                coef = np.linalg.solve(S[np.ix_(o, o)], S[np.ix_(o, m)]).T
                xhat[i, k][m] = mu[k][m] + coef @ (X[i][o] - mu[k][o])
                extra[i, k][np.ix_(m, m)] = S[np.ix_(m, m)] - coef @ S[np.ix_(o, m)]
    r = np.exp(logp - logsumexp(logp, axis=1, keepdims=True))
    nk = r.sum(axis=0)
    if hyper is None:
        w_new = nk / n
        mu_new = np.einsum("ik,ikd->kd", r, xhat) / nk[:, None]
    else:
        a, kappa, m0 = hyper.alpha, hyper.shrinkage, hyper.mean
        w_new = (nk + a - 1) / (n + K * (a - 1))
        mu_new = (np.einsum("ik,ikd->kd", r, xhat) + kappa * m0) / (nk + kappa)[:, None]
    W = np.zeros((K, d, d))  # sum_i r_ik E[(x_i - mu_k)(x_i - mu_k)^T]
    for i in range(n):
        for k in range(K):
            dev = xhat[i, k] - mu_new[k]
            W[k] += r[i, k] * (np.outer(dev, dev) + extra[i, k])
    if hyper is None:
        if t == "full":
            cov = W / nk[:, None, None] + reg_covar * np.eye(d)
        elif t == "tied":
            cov = W.sum(axis=0) / n + reg_covar * np.eye(d)
        elif t == "diag":
            cov = np.array([np.diag(W[k]) / nk[k] for k in range(K)]) + reg_covar
        else:
            cov = np.array([np.trace(W[k]) / (nk[k] * d) for k in range(K)]) + reg_covar
        return w_new, mu_new, cov
    B = W + kappa * np.einsum("kd,ke->kde", mu_new - m0, mu_new - m0)
    nu = hyper.dof
    if t == "full":
        cov = (hyper.scale + B) / (nu + nk + d + 2)[:, None, None]
    elif t == "tied":
        cov = (hyper.scale + B.sum(axis=0)) / (nu + n + K + d + 1)
    elif t == "diag":
        cov = np.array([(hyper.scale + np.diag(B[k])) / (nu + nk[k] + 3) for k in range(K)])
    else:
        cov = np.array([(hyper.scale + np.trace(B[k])) / (nu + (nk[k] + 1) * d + 2) for k in range(K)])
    return w_new, mu_new, cov


@pytest.mark.parametrize("prior", PRIORS)
@pytest.mark.parametrize("t", COV_TYPES)
def test_estimate_is_fixed_point_of_an_independent_em_step(incomplete, t, prior):
    """The reference step leaves the estimate where it is (to EM's convergence: with 20% missing
    the parameters settle slowly, ~1e-7 relative when the objective has settled to 1e-15), and
    gmmflow's own step from the same point is the reference step to rounding."""
    idata = _fit(incomplete, t, prior, tol=1e-15, max_iter=5000)
    model, params, _ = em_params(idata)
    hyper = hyperparameters_from_idata(idata)
    K, d = params.means.shape
    w, mu, cov = reference_em_step(incomplete, params.weights, params.means, full_cov(params.cov, t, K, d), t,
                                   hyper, model.reg_covar)
    np.testing.assert_allclose(w, params.weights, rtol=1e-5)
    np.testing.assert_allclose(mu, params.means, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(cov, params.cov, rtol=1e-5)
    ours = m_step(MissingBlocks(incomplete, chunk_size=37).e_step(params), t, hyper, model.reg_covar)
    np.testing.assert_allclose(ours.weights, w, rtol=1e-12)
    np.testing.assert_allclose(ours.means, mu, rtol=1e-11, atol=1e-12)
    np.testing.assert_allclose(ours.cov, cov, rtol=1e-11)


@pytest.mark.parametrize("t", COV_TYPES)
def test_nothing_missing_gives_todays_result(t):
    X = mixture_data(seed=2, n_per=50, d=2, K=2)
    model = gmmflow.GMM(2, covariance_type=t)
    today = gmmflow.fit_em(model, X, seed=3, n_init=2)
    marginalized = gmmflow.fit_em(model, X, seed=3, n_init=2, missing="marginalize")
    for group in today.groups():
        xr.testing.assert_identical(today[group], marginalized[group])
    assert marginalized.attrs["n_missing"] == 0 and today.attrs["missing"] == "error"
    for key in set(today.attrs) - {"created_at", "missing"}:
        assert today.attrs[key] == marginalized.attrs[key], key


@pytest.mark.parametrize("t", COV_TYPES)
def test_weights_act_as_duplicated_rows(incomplete, t):
    """MLE: weights 2 and 1 give the estimate of the data with the weight-2 rows repeated
    (the MLE depends on the weights' ratios only)."""
    weights = np.where(np.arange(incomplete.shape[0]) % 3 == 0, 2.0, 1.0)
    repeated = np.concatenate([incomplete, incomplete[weights == 2]])
    start = em_params(_fit(incomplete, t, None))[1]
    init = dict(weights=start.weights, means=start.means, covariances=start.cov)
    options = dict(init=init, n_init=1, tol=1e-14, max_iter=3000)
    a = em_params(_fit(incomplete, t, None, sample_weight=weights, **options))[1]
    b = em_params(_fit(repeated, t, None, **options))[1]
    np.testing.assert_allclose(a.means, b.means, rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(a.cov, b.cov, rtol=1e-6, atol=1e-8)


# ---------------------------------------------------------------- better than complete-case analysis
def _relabelled_distance(params, reference):
    """Distance of means and covariances to ``reference``'s, components matched by their means."""
    cost = ((params.means[:, None] - reference.means[None]) ** 2).sum(axis=-1)
    rows, cols = linear_sum_assignment(cost)
    K, d = params.means.shape
    cov, ref_cov = (full_cov(p.cov, "full", K, d) for p in (params, reference))
    return float(np.sqrt(cost[rows, cols].sum() + ((cov[rows] - ref_cov[cols]) ** 2).sum()))


def mcar_comparison(seed):
    """(distance of marginalize, distance of complete-case) to the full-data estimate, 20% MCAR cells."""
    X = mixture_data(seed=seed, n_per=100, d=3, K=2, spread=3.0)
    Xm, _ = with_missing(X, 0.2, seed=seed + 1000)
    model = gmmflow.GMM(2)
    full = em_params(gmmflow.fit_em(model, X, seed=0, n_init=2))[1]
    marg = em_params(gmmflow.fit_em(model, Xm, seed=0, n_init=2, missing="marginalize"))[1]
    complete = em_params(gmmflow.fit_em(model, Xm[~np.isnan(Xm).any(axis=1)], seed=0, n_init=2))[1]
    return _relabelled_distance(marg, full), _relabelled_distance(complete, full)


def test_closer_to_full_data_than_complete_case():
    """20% of cells deleted MCAR: marginalizing beats complete-case analysis on most seeds.

    Measured on seeds 0..199 (bench/missing_values.py): marginalizing was closer on 198
    (median distances 0.146 against 0.294). The wins in 30 seeds are Binomial(30, p);
    at p = 0.99 the test fails with probability 5e-7, and with probability < 1e-3 for
    any p above 0.964 (the lower end of the 95% interval of the measured share).
    """
    wins = sum(a < b for a, b in map(mcar_comparison, range(30)))
    assert wins >= 25


# ---------------------------------------------------------------- bad input
def test_nan_without_the_option_names_it(incomplete, monkeypatch):
    forbid_work(monkeypatch)
    with pytest.raises(ValueError, match=re.escape("Pass missing='marginalize' to fit on each row's observed "
                                                   "values (CLI: --missing marginalize)")):
        gmmflow.fit_em(gmmflow.GMM(2), incomplete)


@pytest.mark.parametrize("make, message", [
    (lambda X: np.vstack([X, np.full((2, 3), np.nan)]),
     "X has 2 row(s) with every value missing (the first is row 100, obs_id 100); they carry no "
     "information about the mixture. Drop them first"),
    (lambda X: np.column_stack([X, np.r_[1.0, np.full(X.shape[0] - 1, np.nan)]]),
     "X feature 'x3' has 1 observed value(s); at least 2 are needed to estimate its variance. Drop the feature."),
    (lambda X: np.where(np.arange(X.size).reshape(X.shape) == 4, np.inf, X),
     "X contains 1 non-finite value(s); the first is inf at row 1, feature 'x1'."),
])
def test_bad_missing_data_refused_before_work(make, message, monkeypatch):
    X = mixture_data(seed=5, n_per=50, d=3, K=2)
    X[0, 0] = np.nan
    forbid_work(monkeypatch)
    with pytest.raises(ValueError, match=re.escape(message)):
        gmmflow.fit_em(gmmflow.GMM(2), make(X), missing="marginalize")


def test_bad_option_refused(incomplete, monkeypatch):
    forbid_work(monkeypatch)
    with pytest.raises(ValueError, match=re.escape("missing must be one of 'error', 'marginalize'; got 'drop'.")):
        gmmflow.fit_em(gmmflow.GMM(2), incomplete, missing="drop")


# ---------------------------------------------------------------- PyMC and NUTS
@pytest.mark.parametrize("t", COV_TYPES)
def test_pymc_density_equals_em_objective(incomplete, t):
    """The PyMC model (one mixture per missingness pattern, Cholesky of each Sigma_oo) at the
    EM-MAP has EM's objective; its pointwise densities are scipy's marginals."""
    from gmmflow.models.pymc_model import covariance_value_name, unconstrained_point_function

    idata = _fit(incomplete, t, "default")
    spec, params, _ = em_params(idata)
    model = spec.pymc_model(incomplete, hyperparameters=hyperparameters_from_idata(idata), missing="marginalize")
    point = unconstrained_point_function(model)(
        {"w": params.weights, "mu": params.means, covariance_value_name(t): params.cov})
    objective = float(idata.em_estimate.objective)
    np.testing.assert_allclose(model.compile_logp(jacobian=False)(point), objective, rtol=1e-10)
    patterns = np.unique(~np.isnan(incomplete), axis=0)
    assert len(model.observed_RVs) == len(patterns)
    K, d = params.means.shape
    pointwise = sum(float(np.sum(model.compile_fn(model.logp(vars=[rv], sum=False)[0])(point)))
                    for rv in model.observed_RVs)
    ll = observed_log_likelihood(incomplete, params.weights, params.means, full_cov(params.cov, t, K, d))
    np.testing.assert_allclose(pointwise, ll, rtol=1e-10)


def test_pymc_model_refuses_nan_without_the_option_and_in_the_generative_form(incomplete):
    with pytest.raises(ValueError, match=re.escape("Pass missing='marginalize'")):
        gmmflow.GMM(2).pymc_model(incomplete)
    with pytest.raises(ValueError, match=re.escape("X has missing values: the generative form "
                                                   "(marginalized=False) needs complete data.")):
        gmmflow.GMM(2).pymc_model(incomplete, marginalized=False, missing="marginalize")


def test_sample_posterior_refuses_nan_without_the_option(incomplete, monkeypatch):
    forbid_work(monkeypatch)
    with pytest.raises(ValueError, match=re.escape("Pass missing='marginalize'")):
        gmmflow.sample_posterior(gmmflow.GMM(2), incomplete)
    with pytest.raises(ValueError, match=re.escape("Pass missing='marginalize'")):
        gmmflow.sample_posterior(gmmflow.GMM(2), incomplete, sampler="gibbs")


def test_gibbs_samples_the_observed_data_posterior(incomplete):
    """A short Gibbs run with missing cells drawn (core/gibbs.py): it records the option and the count of
    missing cells, keeps the NaN in observed_data, and its pointwise log-likelihood is the observed-data
    density of each draw (scipy marginals; the sampler's conditionals are tested in
    tests/test_gibbs_noise_missing.py, its agreement with NUTS in the slow tier there)."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        idata = gmmflow.sample_posterior(gmmflow.GMM(2), incomplete, sampler="gibbs", missing="marginalize",
                                         seed=0, draws=20, tune=5, chains=2, progressbar=False)
    assert idata.attrs["missing"] == "marginalize"
    assert idata.attrs["n_missing"] == int(np.isnan(incomplete).sum()) > 0
    np.testing.assert_array_equal(np.isnan(idata.observed_data.x.values), np.isnan(incomplete))
    post = idata.posterior
    for c, j in ((0, 0), (1, 19)):
        ll = observed_log_likelihood(incomplete, post.w.values[c, j], post.mu.values[c, j], post.cov.values[c, j])
        np.testing.assert_allclose(idata.log_likelihood.x.values[c, j].sum(), ll, rtol=1e-10)


@pytest.mark.slow
def test_nuts_samples_the_observed_data_posterior():
    """A short NUTS run on 60 rows with 20% missing cells: it runs, records the option, its
    pointwise log-likelihood is the observed-data density of each draw, and the posterior
    mean of the means lies near the EM-MAP (within 4 posterior sds: fails with probability
    ~1e-4 per coordinate if the posterior is near normal and the chains mixed)."""
    import warnings

    X = mixture_data(seed=5, n_per=30, d=2, K=2)
    Xm, _ = with_missing(X, 0.2, seed=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        idata = gmmflow.sample_posterior(gmmflow.GMM(2, "diag"), Xm, missing="marginalize", draws=150, tune=150,
                                         chains=2, seed=1, progressbar=False, em_kwargs={"n_init": 1})
    assert idata.attrs["missing"] == "marginalize" and idata.attrs["n_missing"] == int(np.isnan(Xm).sum())
    assert np.isnan(idata.observed_data.x.values).sum() == np.isnan(Xm).sum()
    post = idata.posterior
    w, mu, cov = (post[v].values[0, 0] for v in ("w", "mu", "cov"))
    ll = idata.log_likelihood.x.values[0, 0]
    np.testing.assert_allclose(ll.sum(), observed_log_likelihood(Xm, w, mu, cov), rtol=1e-10)
    sd = post.mu.std(("chain", "draw")).values
    assert np.all(np.abs(post.mu.mean(("chain", "draw")).values - idata.em_estimate.mu.values) < 4 * sd)


# ---------------------------------------------------------------- predictions, files, report, CLI
def test_predictions_on_observed_coordinates_and_round_trip(incomplete, tmp_path):
    idata = _fit(incomplete, "full", "default")
    proba = gmmflow.predict_proba(idata, incomplete, missing="marginalize")
    np.testing.assert_allclose(proba, idata.em_estimate.responsibilities.values, rtol=1e-12, atol=1e-300)
    model, params, _ = em_params(idata)
    dens = gmmflow.score_samples(idata, incomplete, missing="marginalize")
    row = 0 if np.isnan(incomplete[0]).any() else int(np.argmax(np.isnan(incomplete).any(axis=1)))
    o = ~np.isnan(incomplete[row])
    covs = full_cov(params.cov, "full", 2, 3)
    ref = logsumexp([np.log(params.weights[k]) + stats.multivariate_normal(
        params.means[k][o], covs[k][np.ix_(o, o)]).logpdf(incomplete[row][o]) for k in range(2)])
    np.testing.assert_allclose(dens[row], ref, rtol=1e-12)
    with pytest.raises(ValueError, match=re.escape("Pass missing='marginalize'")):
        gmmflow.predict(idata, incomplete)
    gmmflow.save(idata, tmp_path / "fit.nc")
    back = gmmflow.load(tmp_path / "fit.nc")
    np.testing.assert_array_equal(back.observed_data.x.values, incomplete)  # NaN in the same cells
    assert back.attrs["n_missing"] == int(np.isnan(incomplete).sum())


def test_report_states_the_missing_cells(incomplete, tmp_path):
    idata = _fit(incomplete, "full", "default")
    gmmflow.write_report(idata, tmp_path / "rep")
    html = (tmp_path / "rep" / "report.html").read_text()
    n = int(np.isnan(incomplete).sum())
    assert f"{n} of {incomplete.size} cells ({n / incomplete.size:.1%}) missing, marginalized" in html


def test_cli_fits_a_csv_with_empty_cells(tmp_path):
    from gmmflow.cli import main

    X = mixture_data(seed=5, n_per=30, d=2, K=2)
    Xm, _ = with_missing(X, 0.1, seed=3)
    path = tmp_path / "m.csv"
    path.write_text("a,b\n" + "\n".join(",".join("" if np.isnan(v) else repr(float(v)) for v in row) for row in Xm) + "\n")
    assert main(["em", "--data", str(path), "--k", "2", "--seed", "0", "--out", str(tmp_path / "r.nc"),
                 "--missing", "marginalize", "--quiet"]) == 0
    back = gmmflow.load(tmp_path / "r.nc")
    assert back.attrs["n_missing"] == int(np.isnan(Xm).sum()) and back.attrs["missing"] == "marginalize"
    assert main(["em", "--data", str(path), "--k", "2", "--out", str(tmp_path / "s.nc"), "--quiet"]) != 0
    assert not (tmp_path / "s.nc").exists()


def test_run_with_missing_values_writes_result_and_report(incomplete, tmp_path, monkeypatch):
    """gmmflow run (one K) on incomplete data, NUTS replaced by conftest.fake_nuts: the whole
    pipeline (EM, sampling, comparison, plots, report) takes the NaN; a K range is refused."""
    from conftest import fake_nuts
    from gmmflow.main_job import run

    monkeypatch.setattr("gmmflow.workflows.nuts_backends.run_nutpie", fake_nuts)
    monkeypatch.setattr("gmmflow.workflows.nuts_backends.run_pymc", fake_nuts)
    idata, _ = run(incomplete, tmp_path / "out", ks=2, seed=0, n_init=2, missing="marginalize", draws=30,
                   tune=30, chains=2, progressbar=False)
    assert idata.attrs["n_missing"] == int(np.isnan(incomplete).sum())
    assert np.isfinite(idata.log_likelihood.x.values).all()
    assert "cells (" in (tmp_path / "out" / "report.html").read_text()
    forbid_work(monkeypatch)
    with pytest.raises(ValueError, match=re.escape("X has missing values: choosing K from K in [2, 3] with "
                                                   "missing='marginalize' is not supported yet.")):
        run(incomplete, tmp_path / "other", ks=range(2, 4), missing="marginalize")

"""The Gibbs sampler with a noise component and with missing cells (core/gibbs.py's docstring).

- the noise model's conditional ``(w, mu, Sigma) | z, X`` is proportional to the
  posterior (scipy densities) and its draws have the closed-form moments;
- the assignment pass draws the noise as one more class (scipy probabilities,
  the same uniforms), whatever the blocking or dask chunking;
- missing cells are drawn from the Gaussian conditional given the observed
  coordinates (a reference through the precision matrix), rows' components
  from the observed coordinates' marginals, whatever the blocking;
- through ``sample_posterior``: dask and numpy give the same draws for a noise
  model; bad combinations are refused before any work; and (slow tier) Gibbs
  and NUTS agree on the posterior means of small data sets.
"""

import re
import warnings

import arviz as az
import numpy as np
import pytest
from scipy import stats
from threadpoolctl import threadpool_limits

import gmmflow
from conftest import COV_TYPES, forbid_work, full_cov, mixture_data, scipy_log_prior, scipy_log_prob
from gmmflow import schema as S
from gmmflow.core.assignment_draws import RowUniforms, hard_assignment_statistics
from gmmflow.core.em_steps import Params, statistics_from_responsibilities
from gmmflow.core.gibbs import draw_parameters
from gmmflow.core.missing_data import (MissingBlocks, Pattern, cell_normals, conditional, conditional_factor,
                                       draw_missing, marginal_params)
from gmmflow.models.spec import GMM
from test_gibbs_conditionals import (N_DRAWS, Z_MAX, assert_sampled_statistics_equal, conditional_law, log_conditional,
                                     start_params, z_of_mean)

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning", "ignore::FutureWarning")

K, D = 3, 2  # as test_gibbs_conditionals
LOG_NOISE = -np.log(200.0)  # -log V of a 200-unit box


# ------------------------------------------------------------------ noise: (w, mu, Sigma) | z, X
def noise_setting(t, seed=0):
    """Clusters plus uniform rows, assignments with K = noise (the last class), statistics, prior."""
    rng = np.random.default_rng(seed)
    X = np.concatenate([mixture_data(seed=seed, n_per=40, d=D, K=K), rng.uniform(-7, 7, (20, D))])
    z = np.concatenate([rng.integers(K, size=3 * 40), np.full(20, K)])
    z[rng.choice(3 * 40, 10, replace=False)] = K  # some cluster rows drawn to the noise too
    hyper = GMM(K, t, noise=True).hyperparameters(X.mean(axis=0), np.cov(X.T))
    return X, z, hard_assignment_statistics(X.T.copy(), z, K + 1, t, noise=True), hyper


def noise_dirichlet(z, hyper):
    return stats.dirichlet(hyper.alpha + np.bincount(z, minlength=K + 1))


def log_noise_target(p, X, z, hyper):
    """log p(theta) + log p(z, X | theta) by scipy: Dirichlet(alpha 1_{K+1}), Gaussian rows' densities,
    ``log w_0 - log V`` for each noise row."""
    t = hyper.covariance_type
    even = np.full(K, 1.0 / K)  # the Gaussian part of the prior: scipy's prior at any weights, less their term
    lp = (scipy_log_prior(even, p.means, p.cov, t, hyper) - stats.dirichlet(np.full(K, hyper.alpha)).logpdf(even)
          + stats.dirichlet(np.full(K + 1, hyper.alpha)).logpdf(p.weights))
    gauss = z < K
    log_joint = scipy_log_prob(X[gauss], p.weights[:K], p.means, full_cov(p.cov, t, K, D))
    return lp + log_joint[np.arange(gauss.sum()), z[gauss]].sum() + (~gauss).sum() * (np.log(p.weights[K]) + LOG_NOISE)


def log_noise_conditional(p, X, z, hyper):
    """The claimed conditional: Dirichlet over K+1 counts, the Gaussian laws on the non-noise rows."""
    gauss = z < K
    w = p.weights[:K] / p.weights[:K].sum()
    gaussian_part = (log_conditional(w, p.means, p.cov, X[gauss], z[gauss], hyper)
                     - conditional_law(X[gauss], z[gauss], hyper)[0].logpdf(w))
    return gaussian_part + noise_dirichlet(z, hyper).logpdf(p.weights)


@pytest.mark.parametrize("t", COV_TYPES)
def test_noise_conditional_density_is_proportional_to_the_posterior(t):
    """log q(theta) - log p(theta, z, X) does not depend on theta (exact; 1e-8 on values of order 1e2)."""
    X, z, suff, hyper = noise_setting(t)
    rng = np.random.default_rng(1)
    points = [draw_parameters(rng, suff, hyper, LOG_NOISE) for _ in range(6)]
    assert all(p.weights.shape == (K + 1,) and p.log_noise_density == LOG_NOISE for p in points)
    gaps = [log_noise_target(p, X, z, hyper) - log_noise_conditional(p, X, z, hyper) for p in points]
    assert np.ptp(gaps) < 1e-8, gaps


@pytest.mark.parametrize("t", COV_TYPES)
def test_noise_conditional_draws_have_the_closed_form_moments(t):
    """4000 draws: the K+1 weights' means and variances are Dirichlet(alpha + n_j)'s, the means' mean is
    mhat_k and the covariances' mean the inverse-Wishart / inverse-gamma mean, both from the non-noise
    rows only. |z| < 4.5 per check (two-sided 6.8e-6; about 60 checks over the four types: < 1e-3)."""
    X, z, suff, hyper = noise_setting(t, seed=2)
    gauss = z < K
    _, cov_laws, post = conditional_law(X[gauss], z[gauss], hyper)
    rng = np.random.default_rng(3)
    with threadpool_limits(limits=1, user_api="blas"):
        draws = [draw_parameters(rng, suff, hyper, LOG_NOISE) for _ in range(N_DRAWS)]
    w = np.array([p.weights for p in draws])
    mu = np.array([p.means for p in draws])
    cov = np.array([p.cov for p in draws])
    dirichlet = noise_dirichlet(z, hyper)
    checks = [z_of_mean(w, dirichlet.mean(), dirichlet.var())]
    cov_mean = np.array([law.mean() for law in cov_laws]).reshape(cov.shape[1:])
    # standard error of the covariances' mean from the draws themselves (their variance exists: n_k ~ 40)
    checks.append((cov.mean(axis=0) - cov_mean) / (cov.std(axis=0) / np.sqrt(N_DRAWS)))
    mu_sd = mu.std(axis=0) / np.sqrt(N_DRAWS)
    checks.append((mu.mean(axis=0) - np.array([mhat for _, mhat, _ in post])) / mu_sd)
    worst = max(float(np.max(np.abs(c))) for c in checks)
    assert worst < Z_MAX, worst


def reference_components(log_joint, uniforms):
    """Inverse-CDF draws from (n, classes) log joint densities with the given uniforms."""
    p = np.exp(log_joint - log_joint.max(axis=1, keepdims=True))
    cdf = np.cumsum(p / p.sum(axis=1, keepdims=True), axis=1)
    return np.minimum((cdf < uniforms[:, None]).sum(axis=1), log_joint.shape[1] - 1)


@pytest.mark.parametrize("t", COV_TYPES)
def test_assignment_pass_draws_the_noise_class_whatever_the_blocking(t):
    """Components equal scipy's inverse-CDF draws over K Gaussians plus ``w_0 / V`` (same uniforms); the
    noise rows count in ``nk[K]`` and in no moment; blocks, threads and dask chunks change nothing."""
    rng = np.random.default_rng(4)
    X = np.concatenate([mixture_data(seed=4, n_per=100, d=3, K=K), rng.uniform(-8, 8, (60, 3))])
    base = start_params(t, X)
    params = Params.from_cov(np.append(0.8 * base.weights, 0.2), base.means, base.cov, t,
                             log_noise_density=LOG_NOISE)
    u = RowUniforms((3, 5), 0)
    log_joint = np.column_stack([scipy_log_prob(X, params.weights[:K], params.means, full_cov(params.cov, t, K, 3)),
                                 np.full(X.shape[0], np.log(0.2) + LOG_NOISE)])
    z = reference_components(log_joint, u(0, X.shape[0]))
    assert 20 < (z == K).sum() < X.shape[0] - 100  # the test has both kinds of rows
    onehot = np.zeros((K + 1, X.shape[0]))
    onehot[z, np.arange(X.shape[0])] = 1.0
    want = statistics_from_responsibilities(X.T.copy(), onehot, t, noise=True)
    assert_sampled_statistics_equal(X, params, u, want)


# ------------------------------------------------------------------ missing cells: x_m | x_o, z
def random_params(t, d=3, seed=0):
    rng = np.random.default_rng(seed)
    A = rng.normal(size=(K, d, d))
    cov = A @ A.transpose(0, 2, 1) + 0.5 * np.eye(d)
    compact = {"full": cov, "tied": cov[0], "diag": np.diagonal(cov, axis1=1, axis2=2).copy(),
               "spherical": cov[:, 0, 0].copy()}[t]
    return Params.from_cov(np.array([0.2, 0.3, 0.5]), rng.normal(size=(K, d)), compact, t)


def reference_conditional(mean, cov, x_o, o, m):
    """x_m | x_o of N(mean, cov) through the precision matrix Q = cov^-1 (Rue & Held):
    covariance Q_mm^-1, mean mu_m - Q_mm^-1 Q_mo (x_o - mu_o)."""
    Q = np.linalg.inv(cov)
    C = np.linalg.inv(Q[np.ix_(m, m)])
    return mean[m] - C @ Q[np.ix_(m, o)] @ (x_o - mean[o]), C


@pytest.mark.parametrize("t", COV_TYPES)
def test_missing_cells_are_drawn_from_the_gaussian_conditional(t):
    """x_m = E[x_m | x_o, k] + chol(Cov[x_m | x_o, k]) eps, row by row, against the precision-matrix
    reference (exact identity, to rounding)."""
    params = random_params(t)
    covs = full_cov(params.cov, t, K, 3)
    rng = np.random.default_rng(1)
    for o, m in (([0], [1, 2]), ([0, 2], [1]), ([2], [0, 1])):
        o, m = np.array(o), np.array(m)
        pattern = Pattern(o, m, np.arange(12))
        XT_o, z, eps = rng.normal(size=(o.size, 12)), rng.integers(K, size=12), rng.normal(size=(12, m.size))
        cond = conditional(params, marginal_params(params, o), pattern)
        got = draw_missing(XT_o, z, params.means, cond, conditional_factor(cond), pattern, eps)
        np.testing.assert_array_equal(got[o], XT_o)
        for i in range(12):
            mean, C = reference_conditional(params.means[z[i]], covs[z[i]], XT_o[:, i], o, m)
            np.testing.assert_allclose(got[m, i], mean + np.linalg.cholesky(C) @ eps[i], rtol=1e-10, atol=1e-12)


def with_nan(X, fraction, seed):
    rng = np.random.default_rng(seed)
    X = X.copy()
    mask = rng.random(X.shape) < fraction
    mask[mask.all(axis=1), 0] = False  # every row observes something
    X[mask] = np.nan
    return X


@pytest.mark.parametrize("t", COV_TYPES)
def test_missing_pass_draws_components_and_cells_whatever_the_blocking(t):
    """Row i's component is scipy's inverse-CDF draw over the observed coordinates' marginals at uniform i;
    its missing cell j is the reference conditional draw at ``Phi^-1`` of cell uniform ``i d + j``; the
    statistics are the completed rows' one-hot statistics for any block size or thread count."""
    d = 3
    X = with_nan(mixture_data(seed=6, n_per=40, d=d, K=K), 0.25, seed=2)
    params = random_params(t, d, seed=3)
    covs = full_cov(params.cov, t, K, d)
    n = X.shape[0]
    u = RowUniforms((9, 2), 5)
    cells = stats.norm.ppf(u.cells()(0, n * d) + 2.0**-54).reshape(n, d)
    complete, z = X.copy(), np.empty(n, dtype=int)
    for i, row in enumerate(X):
        o, m = np.flatnonzero(~np.isnan(row)), np.flatnonzero(np.isnan(row))
        log_joint = scipy_log_prob(row[o][None], params.weights, params.means[:, o], covs[:, o[:, None], o])
        z[i] = reference_components(log_joint, u(i, i + 1))[0]
        if m.size:
            mean, C = reference_conditional(params.means[z[i]], covs[z[i]], row[o], o, m)
            complete[i, m] = mean + np.linalg.cholesky(C) @ cells[i, m]
    onehot = np.zeros((K, n))
    onehot[z, np.arange(n)] = 1.0
    want = statistics_from_responsibilities(complete.T.copy(), onehot, t)
    for blocks in (MissingBlocks(X), MissingBlocks(X, chunk_size=7, n_threads=2)):
        s = blocks.sampled_statistics(Params.stack([params]), [u]).take(0)
        np.testing.assert_array_equal(s.nk, want.nk)
        np.testing.assert_allclose(s.sx, want.sx, rtol=1e-10, atol=1e-10)
        np.testing.assert_allclose(s.sxx, want.sxx, rtol=1e-10, atol=1e-10)
        np.testing.assert_allclose(s.log_likelihood, MissingBlocks(X).e_step(params).log_likelihood, rtol=1e-12)


def test_cell_normals_are_standard_normal_and_finite():
    """KS test of 20,000 cell normals against N(0, 1) (fails with probability 1e-4 if they are normal)."""
    z = cell_normals(RowUniforms((1, 2), 0).cells()(0, 20_000))
    assert stats.kstest(z, "norm").pvalue > 1e-4
    ends = cell_normals(np.array([0.0, 1.0 - 2.0**-53]))  # both ends of the uniforms' grid: finite, symmetric
    np.testing.assert_allclose(ends, [stats.norm.ppf(2.0**-54), -stats.norm.ppf(2.0**-54)], rtol=1e-12)
    grid = np.array([0.25, 0.5 - 2.0**-53, 0.5, 0.75])
    np.testing.assert_allclose(cell_normals(grid), stats.norm.ppf(grid + 2.0**-54), rtol=1e-12, atol=1e-15)


# ------------------------------------------------------------------ sample_posterior
def noise_data():
    rng = np.random.default_rng(8)
    return np.concatenate([rng.normal([-2, -1], 0.6, (27, 2)), rng.normal([2, 1], 0.6, (27, 2)),
                           rng.uniform(-5, 5, (6, 2))])


def missing_data():
    rng = np.random.default_rng(7)
    return with_nan(np.concatenate([rng.normal([-2, -1], 0.7, (20, 2)), rng.normal([2, 1], 0.7, (20, 2))]), 0.2,
                    seed=7)


GIBBS = dict(sampler="gibbs", draws=40, tune=10, chains=2, progressbar=False)


def test_noise_model_same_draws_with_numpy_and_dask():
    """The noise class is drawn from the row's own uniform too: dask chunks of 7 and 25 rows give the
    numpy run's draws to rounding (rtol 1e-9, as tests/test_gibbs_sampling.py argues)."""
    da = pytest.importorskip("dask.array")
    X = noise_data()
    model = gmmflow.GMM(2, noise=True)
    em = gmmflow.fit_em(model, X, n_init=2, seed=0)
    ref = gmmflow.sample_posterior(model, X, em=em, seed=3, **GIBBS)
    np.testing.assert_allclose((ref.posterior.w.sum(S.COMPONENT) + ref.posterior[S.NOISE_WEIGHT]).values, 1.0,
                               rtol=1e-12)
    assert ref[S.POSTERIOR_ASSIGNMENT][S.NOISE_ASSIGNMENT].dims == (S.OBS,)
    assert ref.attrs[S.NOISE_LOG_VOLUME_ATTR] == em.attrs[S.NOISE_LOG_VOLUME_ATTR]
    for chunk in (7, 25):
        run = gmmflow.sample_posterior(model, da.from_array(X, chunks=(chunk, 2)), em=em, seed=3, **GIBBS)
        for v in ("w", S.NOISE_WEIGHT, "mu", "cov"):
            np.testing.assert_allclose(run.posterior[v].values, ref.posterior[v].values, rtol=1e-9, atol=0)


def test_missing_cells_with_noise_refused_before_any_work(monkeypatch):
    da = pytest.importorskip("dask.array")
    X = missing_data()
    forbid_work(monkeypatch)
    with pytest.raises(ValueError, match=re.escape("GMM(noise=True) cannot fit data with missing values yet")):
        gmmflow.sample_posterior(gmmflow.GMM(2, noise=True), da.from_array(X, chunks=(10, 2)), missing="marginalize",
                                 **GIBBS)
    with pytest.raises(ValueError, match=re.escape("GMM(noise=True) cannot fit data with missing values yet")):
        gmmflow.sample_posterior(gmmflow.GMM(2, noise=True), X, missing="marginalize", **GIBBS)
    for refused in (lambda: gmmflow.fit_em(gmmflow.GMM(2, noise=True), X, missing="marginalize"),
                    lambda: gmmflow.GMM(2, noise=True).pymc_model(X, missing="marginalize")):
        with pytest.raises(ValueError, match=re.escape("GMM(noise=True) cannot fit data with missing values yet")):
            refused()


def posterior_means_z(gibbs, nuts, names):
    """{variable: |mean_Gibbs - mean_NUTS| / sqrt(MCSE_Gibbs^2 + MCSE_NUTS^2)} per entry."""
    out = {}
    for v in names:
        means = [idata.posterior[v].mean((S.CHAIN, S.DRAW)).values for idata in (gibbs, nuts)]
        mcse = [az.mcse(idata, var_names=[v])[v].values for idata in (gibbs, nuts)]
        out[v] = (np.abs(means[0] - means[1]) / np.hypot(*mcse)).ravel()
    return out


@pytest.mark.slow
@pytest.mark.parametrize("case", ["missing", "noise"])
def test_gibbs_and_nuts_agree_on_small_data(case):
    """Gibbs (4 x 1000 draws) and NUTS (4 x 1000, sampler="auto") from the same EM start: every parameter's
    posterior mean agrees within 4 combined MCSEs (ArviZ's, from each sampler's ESS). Missing: 40 rows,
    d = 2, K = 2, 20% of cells missing (12 parameters); noise: 60 rows, 6 of them uniform (13). Each of
    the 25 comparisons fails with probability 6e-5 if both samplers are exact: about 2e-3 for both cases
    if the MCSEs were exact (they are estimates). Seeds fixed: the outcome is reproducible. Power: a wrong
    sampler that imputes the missing cells at their conditional mean instead of drawing them gave |z| up to
    23 here (measured once by hand). Slow tier: 10-60 s per case, most of it compiling the NUTS model."""
    X, model, options = ((missing_data(), gmmflow.GMM(2), {"missing": "marginalize"}) if case == "missing"
                         else (noise_data(), gmmflow.GMM(2, noise=True), {}))
    run = dict(draws=1000, chains=4, progressbar=False, **options)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        nuts = gmmflow.sample_posterior(model, X, seed=11, tune=500, em_kwargs={"n_init": 3}, **run)
        gibbs = gmmflow.sample_posterior(model, X, em=nuts, seed=12, sampler="gibbs", tune=200, **run)
    assert (nuts.attrs["sampling_status"], gibbs.attrs["sampling_status"]) == ("ok", "ok")
    z = posterior_means_z(gibbs, nuts, ["w", "mu", "cov"] + ([S.NOISE_WEIGHT] if model.noise else []))
    worst = max(float(v.max()) for v in z.values())
    print(f"{case}: largest |z| {worst:.2f}", {v: np.round(x, 2).tolist() for v, x in z.items()})
    assert worst < 4.0, z


@pytest.mark.parametrize("ask", ["predict", "predict_proba", "score_samples"])
def test_a_noise_fit_refuses_to_predict_on_missing_cells(ask):
    """A complete-data noise fit asked about rows with NaN (missing='marginalize') says why it cannot,
    instead of failing in numpy broadcasting; complete rows are still judged."""
    X = missing_data()
    complete = X[~np.isnan(X).any(axis=1)]
    em = gmmflow.fit_em(gmmflow.GMM(2, noise=True), complete, n_init=1, seed=0)
    with pytest.raises(ValueError, match=re.escape("GMM(noise=True) cannot predict on data with missing values "
                                                   "yet (missing='marginalize' and a noise component)")):
        getattr(gmmflow, ask)(em, X, missing="marginalize")
    assert len(getattr(gmmflow, ask)(em, complete, missing="marginalize")) == complete.shape[0]

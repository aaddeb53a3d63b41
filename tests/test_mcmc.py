"""Posterior sampling: label switching, recovery, agreement with EM, files, bad input."""

import re
import warnings

import numpy as np
import pytest
import xarray as xr

import arviz as az
import gmmflow
from gmmflow.core.relabel import apply_permutation, relabel_costs, relabel_permutations
from gmmflow.workflows.nuts_backends import BACKENDS

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning", "ignore::FutureWarning")


def standardised(name):
    X = gmmflow.load_dataset(name)
    return (X - X.mean("obs_id")) / X.std("obs_id")


# ---------------------------------------------------------------- relabelling kernel (fast)
def test_relabelling_undoes_known_permutations():
    rng = np.random.default_rng(0)
    K, d, S = 3, 2, 50
    pivot_mu = np.array([[0.0, 0.0], [5.0, 0.0], [0.0, 5.0]])
    chol = np.broadcast_to(np.eye(d), (K, d, d))
    truth = np.stack([rng.permutation(K) for _ in range(S)])
    draws = pivot_mu[None] + 0.3 * rng.normal(size=(S, K, d))
    scrambled = np.empty_like(draws)
    for s in range(S):
        scrambled[s, truth[s]] = draws[s]  # draw component truth[s][k] holds pivot k
    perm = relabel_permutations(relabel_costs(scrambled, pivot_mu, chol))
    np.testing.assert_array_equal(perm, truth)
    np.testing.assert_array_equal(apply_permutation(scrambled, perm), draws)


def test_relabel_cost_is_mahalanobis_in_pivot_metric():
    pivot_mu = np.array([[0.0, 0.0], [1.0, 1.0]])
    cov = np.array([[[4.0, 0.0], [0.0, 1.0]], [[1.0, 0.5], [0.5, 2.0]]])
    chol = np.linalg.cholesky(cov)
    mu = np.array([[[2.0, 1.0], [0.0, 3.0]]])
    C = relabel_costs(mu, pivot_mu, chol)
    for k in range(2):
        for j in range(2):
            diff = mu[0, j] - pivot_mu[k]
            np.testing.assert_allclose(C[0, k, j], diff @ np.linalg.solve(cov[k], diff), rtol=1e-12)


# ---------------------------------------------------------------- bad input (fast: before any model)
def test_nan_rejected_before_any_model_is_built():
    X = standardised("faithful").values.copy()
    X[3, 0] = np.nan
    with pytest.raises(ValueError, match=re.escape("X contains 1 non-finite value(s); the first is NaN at row 3")):
        gmmflow.sample_posterior(gmmflow.GMM(2), X, seed=0)


@pytest.mark.parametrize("kwargs,exc,message", [
    ({"sampler": "stan"}, ValueError,
     "sampler must be one of 'auto', 'pymc', 'nutpie', 'numpyro', 'gibbs'; got 'stan'"),
    ({"draws": 0}, ValueError, "draws must be >= 1, got 0"),
    ({"chains": 0}, ValueError, "chains must be >= 1, got 0"),
])
def test_bad_sampling_options(kwargs, exc, message):
    with pytest.raises(exc, match=re.escape(message)):
        gmmflow.sample_posterior(gmmflow.GMM(2), standardised("faithful"), **kwargs)


def test_mle_model_refused():
    with pytest.raises(ValueError, match=re.escape("sample_posterior needs a prior")):
        gmmflow.sample_posterior(gmmflow.GMM(2, prior=None), standardised("faithful"))


def test_em_of_another_model_refused():
    X = standardised("faithful")
    em = gmmflow.fit_em(gmmflow.GMM(3), X, seed=0)
    with pytest.raises(ValueError, match=re.escape("em was fitted with a different model spec")):
        gmmflow.sample_posterior(gmmflow.GMM(2), X, em=em)


# ---------------------------------------------------------------- real NUTS runs, every backend
# The tests below run once per backend gmmflow offers (``nuts_backends.BACKENDS``). The runs are
# GMM(2, "full") on data of Old Faithful's shape (272, 2): a backend compiles that model once for
# the whole module (``compile_cache``), which keeps the slow tier short. PyMC's own NUTS
# (``"pymc"``, PyTensor's C backend, the fallback) takes about 20 minutes for 4 x (1000 + 1000)
# on Faithful on 2 cores: it runs the short tests only (same seed, start at EM).
@pytest.fixture(scope="module", params=[b for b in BACKENDS if b != "pymc"])
def backend(request):
    return request.param


@pytest.fixture(scope="module", params=BACKENDS)
def any_backend(request):
    return request.param


@pytest.fixture(scope="module")
def faithful_run(backend):
    X = standardised("faithful")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return X, gmmflow.sample_posterior(gmmflow.GMM(2), X, draws=1000, tune=1000, chains=4, seed=3,
                                           progressbar=False, posterior_predictive=True, sampler=backend)


@pytest.mark.slow
def test_schema_and_label_switching_on_faithful(faithful_run, backend):
    X, idata = faithful_run
    assert idata.attrs["sampler"] == backend
    assert {"posterior", "sample_stats", "log_likelihood", "observed_data", "posterior_assignment",
            "posterior_predictive", "em_estimate", "em_restarts", "em_trace"} <= set(idata.groups())
    assert idata.posterior.cov.dims == ("chain", "draw", "component", "feature", "feature2")
    assert idata.sample_stats.relabel_permutation.dims == ("chain", "draw", "component")
    assert idata.log_likelihood.x.dims == ("chain", "draw", "obs_id")
    rhat = az.rhat(idata, var_names=["w", "mu"])
    assert float(rhat.to_array().max()) <= 1.01
    table = gmmflow.diagnose(idata)
    assert table.loc["divergences", "value"] == 0
    assert table.loc["max r_hat", "ok"]
    # the pointwise log-likelihood is the marginal under each draw: check one draw by scipy
    from scipy import stats
    from scipy.special import logsumexp
    post = idata.posterior.isel(chain=1, draw=7)
    ref = logsumexp(np.stack([np.log(post.w.values[k]) + stats.multivariate_normal(
        post.mu.values[k], post.cov.values[k]).logpdf(X.values) for k in range(2)], 1), axis=1)
    np.testing.assert_allclose(idata.log_likelihood.x.isel(chain=1, draw=7).values, ref, rtol=1e-10)


@pytest.mark.slow
def test_posterior_agrees_with_em_on_well_separated_data(faithful_run):
    X, idata = faithful_run
    hdi = az.hdi(idata, hdi_prob=0.94, var_names=["w", "mu"])
    est = idata.em_estimate
    for v in ("w", "mu"):
        lo, hi = hdi[v].sel(hdi="lower"), hdi[v].sel(hdi="higher")
        assert bool(((est[v] >= lo) & (est[v] <= hi)).all()), v
    # Faithful's two clusters are well separated: responsibilities are near 0/1 under both;
    # the posterior averages over parameter uncertainty, so allow a mean gap of 0.01
    gap = np.abs(idata.posterior_assignment.posterior_assignment.values - est.responsibilities.values)
    assert gap.mean() < 0.01


@pytest.mark.slow
def test_round_trip_of_a_sampling_result(faithful_run, tmp_path):
    _, idata = faithful_run
    path = gmmflow.save(idata, tmp_path / "run.nc")
    back = gmmflow.load(path)
    for g in idata.groups():
        xr.testing.assert_identical(idata[g], back[g])
    assert back.attrs == idata.attrs
    assert set(az.from_netcdf(path).groups()) == set(idata.groups())


@pytest.mark.slow
def test_swapped_chains_show_label_switching_and_relabelling_fixes_it(backend):
    """Negative control: half the chains start from EM with the labels swapped."""
    X = standardised("faithful")
    em = gmmflow.fit_em(gmmflow.GMM(2), X, n_init=5, seed=0)
    est = em["em_estimate"]
    flipped = est.assign(w=(est.w.dims, est.w.values[::-1]), mu=(est.mu.dims, est.mu.values[::-1]),
                         cov=(est.cov.dims, est.cov.values[::-1]))
    swapped = az.InferenceData(attrs=em.attrs, **{g: (flipped if g == "em_estimate" else em[g])
                                                  for g in em.groups()})
    runs = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for name, start in (("a", em), ("b", swapped)):
            runs[name] = gmmflow.sample_posterior(gmmflow.GMM(2), X, em=start, draws=300, tune=300, chains=2,
                                                  seed=1, progressbar=False, relabel=False, sampler=backend)
    raw = xr.concat([runs["a"].posterior, runs["b"].posterior.assign_coords(chain=[2, 3])], dim="chain")
    assert float(az.rhat(raw)["mu"].max()) > 1.1
    # relabel every draw to the same pivot: the switching disappears
    from gmmflow.core.gaussian import cholesky
    S = raw.sizes["chain"] * raw.sizes["draw"]
    mu = raw.mu.values.reshape(S, 2, 2)
    pivot_chol = cholesky(em.em_estimate.cov.values, "full")
    perm = relabel_permutations(relabel_costs(mu, em.em_estimate.mu.values, pivot_chol))
    fixed = apply_permutation(mu, perm).reshape(raw.mu.shape)
    fixed_ds = raw.assign(mu=(raw.mu.dims, fixed))
    assert float(az.rhat(fixed_ds)["mu"].max()) <= 1.01
    assert perm[: S // 2].tolist() == [[0, 1]] * (S // 2)  # chains from EM: untouched


@pytest.mark.slow
def test_recovery_of_simulated_truth(backend):
    """Simulated well-separated data (n=272, Old Faithful's shape): 94% HDIs cover the truth.

    With 2 + 2*2 + 3*2 = 12 free scalar quantities checked at 94%, a calibrated
    posterior misses ~0.7 on average; we require at least 9 of 12 covered
    (P(>= 4 misses) = 0.004 if calibrated and independent).
    """
    rng = np.random.default_rng(11)
    w = np.array([0.4, 0.6])
    mu = np.array([[-3.0, 0.0], [3.0, 1.0]])
    cov = np.array([[[1.0, 0.3], [0.3, 0.5]], [[0.6, -0.2], [-0.2, 1.2]]])
    z = rng.choice(2, size=272, p=w)
    X = mu[z] + np.einsum("nij,nj->ni", np.linalg.cholesky(cov)[z], rng.normal(size=(272, 2)))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        idata = gmmflow.sample_posterior(gmmflow.GMM(2), X, draws=500, tune=500, chains=2, seed=2,
                                         progressbar=False, sampler=backend)
    order = np.argsort(idata.em_estimate.mu.values[:, 0])  # align EM's labels with the truth's
    hdi = az.hdi(idata, hdi_prob=0.94, var_names=["w", "mu", "cov"])
    covered, total = 0, 0
    for k_true, k in enumerate(order):
        checks = [(hdi.w.sel(component=k), w[k_true])]
        checks += [(hdi.mu.sel(component=k, feature=f), mu[k_true, j]) for j, f in enumerate(hdi.feature.values)]
        for (i, a), (j, b) in [((0, 0), (0, 0)), ((1, 1), (1, 1)), ((0, 1), (0, 1))]:
            checks.append((hdi.cov.sel(component=k).isel(feature=i, feature2=j), cov[k_true, a, b]))
        for interval, truth in checks:
            total += 1
            covered += float(interval.sel(hdi="lower")) <= truth <= float(interval.sel(hdi="higher"))
    assert total == 12 and covered >= 9


@pytest.mark.slow
def test_same_seed_same_draws_for_a_backend(any_backend):
    """Same seed: identical draws; another seed: other draws (the seed reaches the sampler)."""
    X = standardised("faithful")
    em = gmmflow.fit_em(gmmflow.GMM(2), X, n_init=3, seed=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        a, b, c = (gmmflow.sample_posterior(gmmflow.GMM(2), X, em=em, draws=50, tune=50, chains=2, seed=seed,
                                            progressbar=False, sampler=any_backend) for seed in (9, 9, 10))
    xr.testing.assert_identical(a.posterior, b.posterior)
    assert not np.array_equal(a.posterior.mu.values, c.posterior.mu.values)


@pytest.mark.slow
def test_pymc_backend_runs_from_the_em_start():
    X = standardised("faithful")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        idata = gmmflow.sample_posterior(gmmflow.GMM(2, "diag"), X, draws=50, tune=50, chains=2,
                                         sampler="pymc", seed=4, progressbar=False)
    assert idata.attrs["sampler"] == "pymc"
    assert idata.posterior.cov.shape == (2, 50, 2, 2, 2)
    # near the EM estimate: every draw's means lie within 0.5 sd units of it
    gap = np.abs(idata.posterior.mu - idata.em_estimate.mu).max()
    assert float(gap) < 0.5

"""sample_posterior(sampler="gibbs"): NUTS's schema, chunking invariance, many rows, failures, the CLI."""

import re
import sys
import warnings

import arviz as az
import numpy as np
import pytest
import xarray as xr
from scipy import stats

import gmmflow
from gmmflow.cli import main
from gmmflow.models.pymc_model import covariance_value_name
from gmmflow.workflows import em_fit, gibbs_sampling

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning", "ignore::FutureWarning")

X = gmmflow.load_dataset("faithful").isel(obs_id=slice(0, 120))  # EM's exact LOO in compare refits n times
N = 120
GIBBS = dict(sampler="gibbs", draws=150, tune=30, chains=4, progressbar=False)


@pytest.fixture(scope="module")
def em():
    return gmmflow.fit_em(gmmflow.GMM(2), X, n_init=2, seed=0)


@pytest.fixture(scope="module")
def gibbs(em):
    return gmmflow.sample_posterior(gmmflow.GMM(2), X, em=em, seed=1, posterior_predictive=True, **GIBBS)


def _nuts_shaped(em, chains=4, draws=150):
    """What a NUTS backend returns (the PyMC model's variables), scattered around the EM estimate."""
    rng = np.random.default_rng(0)
    est = em.em_estimate
    K, d = est.sizes["component"], est.sizes["feature"]
    return az.InferenceData(
        posterior=xr.Dataset({
            "w": (("chain", "draw", "w_dim"), rng.dirichlet(200 * est.w.values + 1, size=(chains, draws))),
            "mu": (("chain", "draw", "k", "d"), est.mu.values + 0.01 * rng.standard_normal((chains, draws, K, d))),
            covariance_value_name("full"): (("chain", "draw", "k", "d", "d2"),
                                            np.broadcast_to(est.cov.values, (chains, draws, K, d, d)).copy())}),
        sample_stats=xr.Dataset({"diverging": (("chain", "draw"), np.zeros((chains, draws), bool))}))


@pytest.fixture(scope="module")
def nuts(em):
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr("gmmflow.workflows.nuts_backends.run_nutpie", lambda *a: _nuts_shaped(em))
        return gmmflow.sample_posterior(gmmflow.GMM(2), X, em=em, seed=1, posterior_predictive=True,
                                        sampler="nutpie", draws=150, tune=30)


# ---------------------------------------------------------------- the schema
def test_same_groups_variables_and_dims_as_a_nuts_result(gibbs, nuts):
    assert set(gibbs.groups()) == set(nuts.groups())
    for group in gibbs.groups():
        if group == "sample_stats":
            continue
        assert {v: gibbs[group][v].dims for v in gibbs[group].data_vars} == \
               {v: nuts[group][v].dims for v in nuts[group].data_vars}, group
        for dim in gibbs[group].dims:
            np.testing.assert_array_equal(gibbs[group][dim].values, nuts[group][dim].values)
    assert gibbs.sample_stats.relabel_permutation.dims == ("chain", "draw", "component")
    assert set(nuts.attrs) <= set(gibbs.attrs)
    assert (gibbs.attrs["method"], gibbs.attrs["sampler"], gibbs.sample_stats.attrs["sampler"]) == \
           ("gibbs", "gibbs", "gibbs")
    assert gibbs.attrs["pointwise_draws"] == 150 and gibbs.attrs["observed_data_stored"] == 1
    assert gibbs.attrs["sampling_status"] in ("ok",) or gibbs.attrs["sampling_status"].startswith("warnings")


def test_lp_is_each_draws_log_posterior(gibbs):
    """sample_stats.lp = log p(X | theta) + log p(theta), checked by scipy at a few draws."""
    from conftest import scipy_log_prior, scipy_log_prob
    from gmmflow.results.from_idata import hyperparameters_from_idata

    hyper = hyperparameters_from_idata(gibbs)
    post, x = gibbs.posterior, gibbs.observed_data.x.values
    for c, j in ((0, 0), (2, 77), (3, 149)):
        w, mu, cov = (post[v].values[c, j] for v in ("w", "mu", "cov"))
        ll = np.logaddexp.reduce(scipy_log_prob(x, w, mu, cov), axis=1)
        np.testing.assert_allclose(gibbs.log_likelihood.x.values[c, j], ll, rtol=1e-10)
        perm = gibbs.sample_stats.relabel_permutation.values[c, j]  # lp is label-free
        want = ll.sum() + scipy_log_prior(w, mu, cov, "full", hyper)
        np.testing.assert_allclose(float(gibbs.sample_stats.lp.values[c, j]), want, rtol=1e-10)
        assert sorted(perm) == [0, 1]


def test_result_round_trips_and_compare_and_report_work_as_on_nuts(gibbs, nuts, tmp_path):
    back = gmmflow.load(gmmflow.save(gibbs, tmp_path / "gibbs.nc"))
    xr.testing.assert_identical(back.posterior, gibbs.posterior)
    assert back.attrs["method"] == "gibbs"
    for kind in ("parameters", "assignments", "predictive"):  # EM's exact LOO (n refits) is left to the report
        ours, theirs = gmmflow.compare(back, kind, em_loo_max_obs=0), gmmflow.compare(nuts, kind, em_loo_max_obs=0)
        assert list(ours.columns) == list(theirs.columns) and list(ours.index) == list(theirs.index), kind
        numbers = ours.select_dtypes("number")
        assert np.isfinite(numbers.loc[[i for i in numbers.index if i != "em_plugin"]].drop(
            columns=["n_pareto_k_above_0.7"], errors="ignore").to_numpy(dtype=float)).all(), kind
    page = gmmflow.write_report(back, tmp_path / "report")
    text = page.read_text()
    assert "gibbs" in text and "Predictive fit" in text and "Not available" not in text
    assert 'class="bad"' not in text  # every plot drawn


# ---------------------------------------------------------------- bad input, before any work
def test_mle_spec_is_refused_with_the_reason():
    with pytest.raises(ValueError, match=re.escape(
            "sample_posterior needs a prior; GMM(..., prior=None) is for the MLE only. Without a prior the "
            "posterior is improper")):
        gmmflow.sample_posterior(gmmflow.GMM(2, prior=None), X, **GIBBS)


def test_nuts_refuses_chunked_input_and_names_gibbs():
    da = pytest.importorskip("dask.array")
    with pytest.raises(TypeError, match=re.escape("NUTS needs in-memory data, and X is chunked (a dask array or "
                                                  "zarr store): use sampler='gibbs'")):
        gmmflow.sample_posterior(gmmflow.GMM(2), da.from_array(X.values, chunks=100), sampler="nutpie")


def test_nan_in_a_chunk_is_refused_before_any_fit(monkeypatch):
    da = pytest.importorskip("dask.array")
    bad = X.values.copy()
    bad[60, 1] = np.nan
    monkeypatch.setattr(em_fit, "fit_em_record", lambda *a, **k: pytest.fail("EM ran on bad data"))
    with pytest.raises(ValueError, match=re.escape("X contains NaN in chunk 1 (rows 50 to 99). Pass missing='marginalize'")):
        gmmflow.sample_posterior(gmmflow.GMM(2), da.from_array(bad, chunks=(50, 2)), **GIBBS)


def test_work_that_would_not_fit_is_refused_up_front(monkeypatch):
    monkeypatch.setattr("gmmflow.resources.available_memory", lambda: 1e5)
    with pytest.raises(MemoryError, match=re.escape("sample_posterior with 4 chains x 150 draws on 120 rows needs "
                                                    "an estimated")):
        gmmflow.sample_posterior(gmmflow.GMM(2), X, **GIBBS)


# ---------------------------------------------------------------- chunking and schedulers
def test_same_seed_same_draws_whatever_the_chunking_or_scheduler(em):
    """numpy, dask with 23- and 71-row chunks, a dask-backed DataArray and a 2-worker LocalCluster.

    Each row's component is drawn from a uniform fixed by (seed, chain, sweep, row), so the chunking only
    changes the order in which the statistics are summed: draws agree to rounding (rtol 1e-9 allows
    1e-16 relative summation differences amplified by a few thousand through the covariance's
    Cholesky factor and the conditional means; they are not compounded, as each sweep's draw depends
    on the previous one only through the assignments, which rounding does not flip).
    """
    da = pytest.importorskip("dask.array")
    distributed = pytest.importorskip("distributed")
    options = dict(em=em, seed=3, **(GIBBS | {"draws": 60, "tune": 10}))
    ref = gmmflow.sample_posterior(gmmflow.GMM(2), X, **options)
    runs = {f"dask {c}": gmmflow.sample_posterior(gmmflow.GMM(2), da.from_array(X.values, chunks=(c, 2)),
                                                  **options) for c in (23, 71)}
    runs["DataArray"] = gmmflow.sample_posterior(gmmflow.GMM(2), X.chunk({"obs_id": 40}), **options)
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                                  dashboard_address=None) as cluster, distributed.Client(cluster):
        runs["LocalCluster"] = gmmflow.sample_posterior(gmmflow.GMM(2), da.from_array(X.values, chunks=(50, 2)),
                                                        **options)
    for name, run in runs.items():
        for v in ("w", "mu", "cov"):
            np.testing.assert_allclose(run.posterior[v].values, ref.posterior[v].values, rtol=1e-9, atol=0,
                                       err_msg=name)
        np.testing.assert_array_equal(run.sample_stats.relabel_permutation.values,
                                      ref.sample_stats.relabel_permutation.values)
    other = gmmflow.sample_posterior(gmmflow.GMM(2), X, **(options | {"seed": 4}))
    assert not np.allclose(other.posterior.mu.values, ref.posterior.mu.values)  # the seed is what fixes them


def test_zarr_store(em, tmp_path):
    da = pytest.importorskip("dask.array")
    store = tmp_path / "x.zarr"
    da.from_array(X.values, chunks=(50, 2)).to_zarr(str(store))
    run = gmmflow.sample_posterior(gmmflow.GMM(2), store, em=em, seed=3, **GIBBS)
    ref = gmmflow.sample_posterior(gmmflow.GMM(2), X.values, em=em, seed=3, **GIBBS)
    np.testing.assert_allclose(run.posterior.mu.values, ref.posterior.mu.values, rtol=1e-9)
    assert run.attrs["observed_data_stored"] == 1 and "log_likelihood" in run.groups()


# ---------------------------------------------------------------- many rows
def test_pointwise_groups_are_thinned_evenly_above_the_budget(em, monkeypatch):
    monkeypatch.setattr(gibbs_sampling, "POINTWISE_MAX_VALUES", N * 4 * (1 + 2) * 12)  # 12 draws per chain
    run = gmmflow.sample_posterior(gmmflow.GMM(2), X, em=em, seed=5, posterior_predictive=True, **GIBBS)
    kept = np.unique(np.linspace(0, 149, 12).round().astype(int))
    assert run.attrs["pointwise_draws"] == 12 and run.posterior.sizes["draw"] == 150
    for group in ("log_likelihood", "posterior_predictive"):
        np.testing.assert_array_equal(run[group].draw.values, kept)
    # the kept log-likelihoods are those of the posterior draws with those numbers (scipy)
    c, j = 1, kept[5]
    w, mu, cov = (run.posterior[v].values[c, j] for v in ("w", "mu", "cov"))
    want = np.logaddexp.reduce(np.log(w) + np.stack([stats.multivariate_normal(m, s).logpdf(X.values)
                                                     for m, s in zip(mu, cov)], axis=1), axis=1)
    np.testing.assert_allclose(run.log_likelihood.x.sel(chain=c, draw=j).values, want, rtol=1e-10)
    table = gmmflow.compare(run, "predictive")  # PSIS-LOO on the 48 kept draws
    assert np.isfinite(table.loc["posterior", "elpd_loo"])


def test_chunked_rows_above_the_storage_limit_are_not_kept(em, monkeypatch, tmp_path):
    da = pytest.importorskip("dask.array")
    monkeypatch.setattr(gibbs_sampling, "STORE_MAX_ROWS", 100)
    monkeypatch.setattr(em_fit, "STORE_MAX_ROWS", 100)
    run = gmmflow.sample_posterior(gmmflow.GMM(2), da.from_array(X.values, chunks=(50, 2)), seed=5,
                                   em_kwargs={"n_init": 1}, **GIBBS)
    assert not {"observed_data", "log_likelihood", "posterior_assignment"} & set(run.groups())
    assert (run.attrs["observed_data_stored"], run.attrs["pointwise_draws"], run.attrs["n_obs"]) == (0, 0, N)
    assert len(gmmflow.compare(run)) > 0 and gmmflow.diagnose(run).loc["chains", "ok"]
    with pytest.raises(ValueError, match=re.escape("This result has no observed_data, log_likelihood group(s); it "
                                                   "was sampled on chunked data too large to keep")):
        gmmflow.compare(run, "predictive")
    back = gmmflow.load(gmmflow.save(run, tmp_path / "big.nc"))
    text = gmmflow.write_report(back, tmp_path / "report").read_text()
    assert "Not available" in text and 'class="bad"' not in text


def test_cli_sample_with_gibbs_reads_a_zarr_store_chunk_by_chunk(monkeypatch, tmp_path):
    """Above the storage limit nothing row-sized is kept, so the free-space check counts no pointwise values
    (not chains x draws x rows); a store read into memory first (as NUTS needs) would keep its rows."""
    da = pytest.importorskip("dask.array")
    store, out = tmp_path / "x.zarr", tmp_path / "post.nc"
    da.from_array(X.values, chunks=(50, 2)).to_zarr(str(store))
    monkeypatch.setattr(gibbs_sampling, "STORE_MAX_ROWS", 100)
    monkeypatch.setattr(em_fit, "STORE_MAX_ROWS", 100)
    asked, size = [], gmmflow.results.files.result_file_bytes
    monkeypatch.setattr("gmmflow.results.files.result_file_bytes", lambda *a: asked.append(a) or size(*a))
    assert main(["--quiet", "sample", "--data", str(store), "--k", "2", "--sampler", "gibbs", "--draws", "100",
                 "--tune", "10", "--seed", "0", "--out", str(out)]) == 0
    run = gmmflow.load(out)
    assert (run.attrs["observed_data_stored"], run.attrs["n_obs"], asked) == (0, N, [(0, 2, 0, False)])
    assert gibbs_sampling.pointwise_size(N, 2, True, 4, 100, False) == (0, 0)
    assert gibbs_sampling.pointwise_size(N, 2, False, 4, 100, True) == (N, 400)


# ---------------------------------------------------------------- failures, interrupts, progress
def test_a_failing_sweep_raises_and_keeps_the_em_result(em, monkeypatch):
    def fail(*args):
        raise FloatingPointError("overflow in a draw")

    monkeypatch.setattr("gmmflow.core.gibbs.draw_parameters", fail)
    with pytest.raises(gmmflow.SamplingError, match=re.escape("The Gibbs sampler failed: overflow in a draw. "
                                                              "The EM estimate")) as info:
        gmmflow.sample_posterior(gmmflow.GMM(2), X, em=em, seed=0, **GIBBS)
    assert info.value.partial.attrs["sampling_status"] == "failed: overflow in a draw"
    assert "posterior" not in info.value.partial.groups()


def test_cli_sample_with_gibbs_and_ctrl_c_leaves_nothing(monkeypatch, tmp_path, capsys):
    out = tmp_path / "post.nc"
    assert main(["--quiet", "sample", "--data", "faithful", "--k", "2", "--sampler", "gibbs", "--draws", "100",
                 "--tune", "10", "--seed", "0", "--out", str(out)]) == 0
    assert gmmflow.load(out).attrs["method"] == "gibbs"
    calls = []

    def interrupt_later(*args):
        calls.append(1)
        if len(calls) > 20:
            raise KeyboardInterrupt
        return draw(*args)

    from gmmflow.core.gibbs import draw_parameters as draw
    monkeypatch.setattr("gmmflow.core.gibbs.draw_parameters", interrupt_later)
    second = tmp_path / "second.nc"
    assert main(["sample", "--data", "faithful", "--k", "2", "--sampler", "gibbs", "--seed", "0",
                 "--out", str(second)]) == 130
    assert "interrupted" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["post.nc"]


def test_progress_bar_only_on_a_terminal(monkeypatch):
    with gibbs_sampling.progress_bar(3, True) as tick:
        assert tick is None  # pytest's stderr is not a terminal
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    with gibbs_sampling.progress_bar(3, False) as tick:
        assert tick is None
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with gibbs_sampling.progress_bar(3, True) as tick:
            for i in range(3):
                tick(i)

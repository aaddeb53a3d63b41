"""Missing values on chunked data: ``fit_em``, predictions and Gibbs on dask arrays and zarr stores.

The reference is the in-memory missing-data fit (``MissingBlocks``), itself
checked against scipy's marginal densities and an independently written EM
step in tests/test_missing_values.py. On dask every chunk is reduced by the
same kernel and the statistics are summed in chunk order, so the two differ
only by the order of floating-point sums (relative 1e-16, amplified by the
EM iterations to well below the 1e-10 asserted here). The chunkings below cut
the rows at places unrelated to their missingness patterns, so patterns are
split across chunks (asserted).
"""

import re

import dask.array as da
import numpy as np
import pytest
import xarray as xr

import gmmflow
from conftest import COV_TYPES, forbid_work, mixture_data
from gmmflow import schema as S
from gmmflow.cli import main
from gmmflow.core.assignment_draws import RowUniforms
from gmmflow.core.dask_blocks import MissingDaskBlocks
from gmmflow.core.em_steps import Params
from gmmflow.core.missing_data import MissingBlocks, missing_patterns
from gmmflow.workflows import em_fit, gibbs_sampling

PRIORS = ("default", None)
CHUNKS = (60, 128, 251)  # 300 rows: ragged last chunks, boundaries unrelated to the patterns


def with_missing(X, share, seed):
    """``X`` with a ``share`` of its cells NaN completely at random; rows left all-missing get one value back."""
    rng = np.random.default_rng(seed)
    Xm = X.copy()
    Xm[rng.random(X.shape) < share] = np.nan
    empty = np.isnan(Xm).all(axis=1)
    Xm[empty, 0] = X[empty, 0]
    return Xm


XM = with_missing(mixture_data(seed=11, n_per=100, d=3, K=3), 0.25, seed=2)  # 300 x 3


def dask_of(X, chunks):
    return da.from_array(X, chunks=(chunks, X.shape[1]))


def test_every_pattern_is_split_by_the_chunkings():
    """The chunkings of these tests cut through the rows of the missingness patterns (all of them for
    60 and 128 rows per chunk, all but one for 251)."""
    patterns = missing_patterns(~np.isnan(XM))
    assert len(patterns) == 7  # every pattern of 3 features with at least one observed
    for c in CHUNKS:
        assert sum(np.unique(p.rows // c).size > 1 for p in patterns) >= len(patterns) - (c > 200)


@pytest.mark.parametrize("shape, share", [((3000, 5), 0.3), ((400, 70), 0.03), ((20, 1), 0.3)])
def test_patterns_are_those_of_numpy_unique_rows(shape, share):
    """missing_patterns (rows keyed by their packed mask bytes) gives np.unique(mask, axis=0)'s groups in
    its (lexicographic) order; 70 features need 9 bytes per key."""
    mask = np.random.default_rng(4).random(shape) >= share
    masks, inverse = np.unique(mask, axis=0, return_inverse=True)
    patterns = missing_patterns(mask)
    assert len(patterns) == masks.shape[0]
    for k, p in enumerate(patterns):
        np.testing.assert_array_equal(p.observed, np.flatnonzero(masks[k]))
        np.testing.assert_array_equal(p.missing, np.flatnonzero(~masks[k]))
        np.testing.assert_array_equal(p.rows, np.flatnonzero(inverse.reshape(-1) == k))


def test_memory_estimate_counts_the_pattern_kernel(monkeypatch):
    """The chunked estimate with missing cells adds each chunk's pattern work (observed-values copy, mask,
    per-pattern marginals and conditionals): memory between the two estimates refuses only the missing fit."""
    from gmmflow.resources import chunked_em_bytes
    complete, missing = (chunked_em_bytes(300, 3, 3, 100, True, 2, "full", m) for m in (False, True))
    assert missing == complete + 8 * (100 * 4 + 8 * 2 * 3 * 9)
    monkeypatch.setattr("gmmflow.resources.available_memory", lambda: (complete + missing) / 2)
    gmmflow.fit_em(gmmflow.GMM(3), dask_of(np.nan_to_num(XM), 100), n_init=2, max_iter=2)  # fits
    forbid_work(monkeypatch)
    with pytest.raises(MemoryError, match=re.escape("fit_em on 300 x 3 chunked data with K=3, 2 restart(s) and 100 "
                                                    "rows per chunk needs an estimated")):
        gmmflow.fit_em(gmmflow.GMM(3), dask_of(XM, 100), missing="marginalize", n_init=2)


def assert_same_fit(dsk, mem, tol=1e-10):
    """Same estimate (every variable of ``em_estimate``), objective trace and restarts to ``tol``."""
    for v in mem.em_estimate.data_vars:
        np.testing.assert_allclose(dsk.em_estimate[v].values.astype(float), mem.em_estimate[v].values.astype(float),
                                   rtol=tol, atol=tol, err_msg=v)
    np.testing.assert_allclose(dsk.em_trace.objective.values, mem.em_trace.objective.values, rtol=tol, atol=0)
    np.testing.assert_array_equal(dsk.em_restarts.n_iter.values, mem.em_restarts.n_iter.values)


@pytest.mark.parametrize("chunks", CHUNKS)
@pytest.mark.parametrize("prior", PRIORS)
@pytest.mark.parametrize("t", COV_TYPES)
def test_dask_fit_equals_in_memory_fit(t, prior, chunks):
    """Same seed, same restarts (hc and k-means++ starts on the same completed subsample): the same
    estimate, trace and objective; the result has the in-memory result's groups and missing attrs."""
    model = gmmflow.GMM(3, covariance_type=t, prior=prior)
    mem = gmmflow.fit_em(model, XM, missing="marginalize", seed=4, n_init=3)
    dsk = gmmflow.fit_em(model, dask_of(XM, chunks), missing="marginalize", seed=4, n_init=3)
    assert_same_fit(dsk, mem)
    assert set(dsk.groups()) == set(mem.groups())
    assert (dsk.attrs[S.MISSING_ATTR], dsk.attrs[S.N_MISSING_ATTR]) == ("marginalize", int(np.isnan(XM).sum()))
    assert dsk.attrs[S.N_MISSING_ATTR] == mem.attrs[S.N_MISSING_ATTR] > 0
    np.testing.assert_array_equal(dsk.observed_data.x.values, XM)  # NaN kept (equal_nan)


@pytest.mark.parametrize("chunks", CHUNKS[1:2])
@pytest.mark.parametrize("t", COV_TYPES)
def test_weighted_dask_fit_equals_weighted_in_memory_fit(t, chunks):
    """Weights as a numpy array and as a dask array chunked otherwise than the rows."""
    w = np.random.default_rng(3).uniform(0.2, 3.0, XM.shape[0])
    model = gmmflow.GMM(3, covariance_type=t)
    mem = gmmflow.fit_em(model, XM, missing="marginalize", seed=4, n_init=2, sample_weight=w)
    for sw in (w, da.from_array(w, chunks=60)):
        dsk = gmmflow.fit_em(model, dask_of(XM, chunks), missing="marginalize", seed=4, n_init=2, sample_weight=sw)
        assert_same_fit(dsk, mem)
        np.testing.assert_allclose(dsk.constant_data.sample_weight.values, mem.constant_data.sample_weight.values,
                                   rtol=1e-14)


def test_data_moments_and_starting_rows_equal_in_memory():
    """The one-Gaussian MLE (shared EM, run over chunks), the moments and the completed subsample."""
    mem = MissingBlocks(XM)
    dsk = MissingDaskBlocks(dask_of(XM, 37), 64, n_missing=int(np.isnan(XM).sum()))
    for a, b in zip(dsk.moments(), mem.moments()):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-14)
    shift = np.array([1.0, -2.0, 0.5])
    rows = np.array([3, 250, 17, 99])
    (a, wa), (b, wb) = dsk.with_shift(shift).sample(rows), mem.with_shift(shift).sample(rows)
    np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-14)
    assert wa is None and wb is None
    assert not np.isnan(dsk.sample(None)[0]).any()


def test_zarr_store_with_missing_cells(tmp_path):
    store = tmp_path / "x.zarr"
    dask_of(XM, 100).to_zarr(str(store))
    mem = gmmflow.fit_em(gmmflow.GMM(3), XM, missing="marginalize", seed=1, n_init=2)
    via_zarr = gmmflow.fit_em(gmmflow.GMM(3), str(store), missing="marginalize", seed=1, n_init=2, chunk_size=70)
    assert_same_fit(via_zarr, mem)
    assert via_zarr.attrs[S.N_MISSING_ATTR] == int(np.isnan(XM).sum())


def test_dask_backed_dataarray_with_missing_cells():
    arr = xr.DataArray(dask_of(XM, 64), dims=("obs_id", "feature"), coords={"feature": ["a", "b", "c"]})
    dsk = gmmflow.fit_em(gmmflow.GMM(3), arr, missing="marginalize", seed=1, n_init=2)
    mem = gmmflow.fit_em(gmmflow.GMM(3), XM, missing="marginalize", seed=1, n_init=2)
    assert list(dsk.em_estimate.feature.values) == ["a", "b", "c"]
    np.testing.assert_allclose(float(dsk.em_estimate.objective), float(mem.em_estimate.objective), rtol=1e-10)


def test_complete_chunked_data_with_the_option_is_the_complete_data_fit():
    X = mixture_data(seed=11, n_per=100, d=3, K=3)
    plain = gmmflow.fit_em(gmmflow.GMM(3), dask_of(X, 100), seed=1, n_init=2)
    marg = gmmflow.fit_em(gmmflow.GMM(3), dask_of(X, 100), seed=1, n_init=2, missing="marginalize")
    np.testing.assert_array_equal(marg.em_trace.objective.values, plain.em_trace.objective.values)
    assert marg.attrs[S.N_MISSING_ATTR] == 0


def test_rows_above_the_storage_limit_are_not_kept(monkeypatch):
    monkeypatch.setattr(em_fit, "STORE_MAX_ROWS", 100)
    dsk = gmmflow.fit_em(gmmflow.GMM(3), dask_of(XM, 100), missing="marginalize", seed=1, n_init=2)
    mem = gmmflow.fit_em(gmmflow.GMM(3), XM, missing="marginalize", seed=1, n_init=2)
    assert "observed_data" not in dsk.groups() and dsk.attrs["observed_data_stored"] == 0
    np.testing.assert_allclose(float(dsk.em_estimate.objective), float(mem.em_estimate.objective), rtol=1e-10)


@pytest.mark.slow  # about 20 s: starting two worker processes
@pytest.mark.timeout(240)
def test_local_cluster_with_two_processes_matches_threads():
    distributed = pytest.importorskip("distributed")
    threaded = gmmflow.fit_em(gmmflow.GMM(3), dask_of(XM, 100), missing="marginalize", seed=1, n_init=2)
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                                  dashboard_address=None) as cluster, distributed.Client(cluster):
        remote = gmmflow.fit_em(gmmflow.GMM(3), dask_of(XM, 100), missing="marginalize", seed=1, n_init=2)
    # other processes (another BLAS thread count or memory alignment): equal up to rounding
    assert_same_fit(remote, threaded, tol=1e-12)


# ---------------------------------------------------------------- bad input
def test_all_missing_rows_are_named_by_row_and_chunk(monkeypatch):
    bad = XM.copy()
    bad[[230, 270]] = np.nan  # chunk 2 of 100-row chunks
    forbid_work(monkeypatch)
    with pytest.raises(ValueError, match=re.escape(
            "X has 2 row(s) with every value missing (the first is row 230, in chunk 2 (rows 200 to 299)); they "
            "carry no information about the mixture. Drop them first")):
        gmmflow.fit_em(gmmflow.GMM(3), dask_of(bad, 100), missing="marginalize")


def test_a_feature_observed_once_is_refused(monkeypatch):
    bad = XM.copy()
    bad[1:, 2] = np.nan
    bad[np.isnan(bad).all(axis=1), 0] = 0.0
    forbid_work(monkeypatch)
    with pytest.raises(ValueError, match=re.escape("X feature 'x2' has 1 observed value(s); at least 2 are needed")):
        gmmflow.fit_em(gmmflow.GMM(3), dask_of(bad, 100), missing="marginalize")


def test_inf_is_refused_with_the_option_and_nan_without_it(monkeypatch):
    bad = XM.copy()
    bad[150, 1] = np.inf
    forbid_work(monkeypatch)
    with pytest.raises(ValueError, match=re.escape("X contains inf in chunk 1 (rows 100 to 199). Remove the rows "
                                                   "with infinite values or rescale the data.")):
        gmmflow.fit_em(gmmflow.GMM(3), dask_of(bad, 100), missing="marginalize")
    first_nan_chunk = int(np.flatnonzero(np.isnan(XM).any(axis=1))[0] // 100)
    with pytest.raises(ValueError, match=re.escape(
            f"X contains NaN in chunk {first_nan_chunk} (rows {100 * first_nan_chunk} to {100 * first_nan_chunk + 99}). "
            "Pass missing='marginalize' to fit on each row's observed values (CLI: --missing marginalize)")):
        gmmflow.fit_em(gmmflow.GMM(3), dask_of(XM, 100))


def test_ranges_come_from_the_observed_values(monkeypatch):
    """A huge observed value is named with its chunk; NaN do not hide it nor count as values."""
    bad = XM.copy()
    bad[120, 0] = 1e160
    forbid_work(monkeypatch)
    with pytest.raises(ValueError, match=re.escape("X holds 1e+160 (chunk 1, rows 100 to 199, feature 'x0')")):
        gmmflow.fit_em(gmmflow.GMM(3), dask_of(bad, 100), missing="marginalize")


def test_cli_fit_on_a_zarr_store_with_missing_cells(tmp_path):
    store, out = tmp_path / "x.zarr", tmp_path / "fit.nc"
    dask_of(XM, 100).to_zarr(str(store))
    assert main(["--quiet", "em", "--data", str(store), "--k", "3", "--seed", "1", "--n-init", "2",
                 "--missing", "marginalize", "--out", str(out)]) == 0
    fit = gmmflow.load(out)
    mem = gmmflow.fit_em(gmmflow.GMM(3), XM, missing="marginalize", seed=1, n_init=2)
    np.testing.assert_allclose(float(fit.em_estimate.objective), float(mem.em_estimate.objective), rtol=1e-10)
    assert fit.attrs[S.N_MISSING_ATTR] == int(np.isnan(XM).sum())


def test_cli_refuses_nan_in_a_zarr_store_without_the_option_and_writes_nothing(tmp_path, capsys):
    store, out = tmp_path / "x.zarr", tmp_path / "fit.nc"
    dask_of(XM, 100).to_zarr(str(store))
    assert main(["--quiet", "em", "--data", str(store), "--k", "3", "--out", str(out)]) != 0
    assert "Pass missing='marginalize'" in capsys.readouterr().err
    assert not out.exists()


# ---------------------------------------------------------------- predictions
def test_predictions_take_in_memory_data_with_missing_cells_and_refuse_dask_as_for_complete_data():
    """predict/predict_proba/score_samples read in-memory data only (complete data too): a dask array with
    NaN gets the same refusal; loaded into memory, the same values as the fit's own rows."""
    fit = gmmflow.fit_em(gmmflow.GMM(3), dask_of(XM, 64), missing="marginalize", seed=1, n_init=2)
    np.testing.assert_allclose(gmmflow.predict_proba(fit, XM, missing="marginalize"), fit.em_estimate.responsibilities,
                               rtol=1e-12, atol=1e-15)
    for fn in (gmmflow.predict_proba, gmmflow.predict, gmmflow.score_samples):
        with pytest.raises(TypeError, match=re.escape("X is a dask collection; this entry point needs in-memory data "
                                                      "(call .compute() on it if it fits in memory).")):
            fn(fit, dask_of(XM, 64), missing="marginalize")


# ---------------------------------------------------------------- Gibbs
@pytest.mark.parametrize("t", COV_TYPES)
def test_gibbs_pass_draws_the_same_cells_whatever_the_chunking(t):
    """Row i's uniform and cell (i, j)'s normal are numbered globally: the sampled statistics of dask
    chunks of 1, 37 and 251 rows are those of the in-memory pass (itself checked against scipy in
    tests/test_gibbs_noise_missing.py), the assignment counts exactly."""
    start = gmmflow.fit_em(gmmflow.GMM(3, covariance_type=t), XM, missing="marginalize", seed=1, n_init=1)
    from gmmflow.results.from_idata import em_params
    params = em_params(start)[1]
    uniforms = [RowUniforms((5, 8), 3), RowUniforms((6, 1), 0)]
    want = MissingBlocks(XM).sampled_statistics(Params.stack([params, params]), uniforms)
    for chunks in (1, 37, 251):
        got = MissingDaskBlocks(dask_of(XM, chunks), 64).sampled_statistics(Params.stack([params, params]), uniforms)
        for g, w in ((got.take(c), want.take(c)) for c in range(2)):
            np.testing.assert_array_equal(g.nk, w.nk)
            np.testing.assert_allclose(g.sx, w.sx, rtol=1e-12, atol=1e-10)
            np.testing.assert_allclose(g.sxx, w.sxx, rtol=1e-12, atol=1e-10)
            np.testing.assert_allclose(g.log_likelihood, w.log_likelihood, rtol=1e-12)


GIBBS = dict(sampler="gibbs", draws=40, tune=10, chains=2, progressbar=False)


@pytest.mark.filterwarnings("ignore::UserWarning", "ignore::FutureWarning")
def test_gibbs_same_draws_in_memory_and_on_dask_chunkings():
    """Same seed: dask chunks of 23 and 100 rows give the in-memory run's draws to rounding (rtol 1e-9, as
    tests/test_gibbs_sampling.py argues: summation order only, assignments identical)."""
    model = gmmflow.GMM(3)
    em = gmmflow.fit_em(model, XM, missing="marginalize", seed=1, n_init=2)
    ref = gmmflow.sample_posterior(model, XM, em=em, seed=3, missing="marginalize", **GIBBS)
    for chunks in (23, 100):
        run = gmmflow.sample_posterior(model, dask_of(XM, chunks), em=em, seed=3, missing="marginalize", **GIBBS)
        for v in ("w", "mu", "cov"):
            np.testing.assert_allclose(run.posterior[v].values, ref.posterior[v].values, rtol=1e-9, atol=0,
                                       err_msg=f"{v}, chunks {chunks}")
        np.testing.assert_allclose(run.sample_stats.lp.values, ref.sample_stats.lp.values, rtol=1e-10)
        np.testing.assert_array_equal(run.observed_data.x.values, XM)
        np.testing.assert_allclose(run.log_likelihood.x.values, ref.log_likelihood.x.values, rtol=1e-9)
    # without em=: the EM start is fitted on the chunks (the in-memory estimate to 1e-10), then the same draws
    options = dict(seed=3, missing="marginalize", em_kwargs={"n_init": 2}) | GIBBS
    ref = gmmflow.sample_posterior(model, XM, **options)
    run = gmmflow.sample_posterior(model, dask_of(XM, 100), **options)
    np.testing.assert_allclose(run.posterior["mu"].values, ref.posterior["mu"].values, rtol=1e-8, atol=0)


def test_gibbs_on_dask_with_nan_and_no_option_is_refused_before_any_work(monkeypatch):
    forbid_work(monkeypatch)
    monkeypatch.setattr(em_fit, "fit_em_record", lambda *a, **k: pytest.fail("EM ran on bad data"))
    with pytest.raises(ValueError, match=re.escape("Pass missing='marginalize'")):
        gmmflow.sample_posterior(gmmflow.GMM(3), dask_of(XM, 100), **GIBBS)
    assert gibbs_sampling.gibbs_data(gmmflow.GMM(3), dask_of(XM, 100), missing=True)[1].n_missing > 0

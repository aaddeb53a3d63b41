"""EM on dask: same numbers as in memory, any scheduler, clear errors per chunk."""

import json
import re

import dask.array as da
import numpy as np
import pytest
import xarray as xr

import gmmflow
from conftest import COV_TYPES, mixture_data
from gmmflow.cli import main

X = mixture_data(seed=8, n_per=333, d=3, K=3)  # 999 rows: ragged last chunks below


@pytest.fixture(autouse=True)
def _quiet():
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", gmmflow.ConvergenceWarning)
        yield


def start(t):
    """A fixed start shared by both paths (the dict init skips the random subsample)."""
    ref = gmmflow.fit_em(gmmflow.GMM(3, t), X, seed=0, max_iter=2)
    from gmmflow.core.gaussian import compact_covariances
    est = ref.em_estimate
    return {"weights": est.w.values, "means": est.mu.values,
            "covariances": compact_covariances(est.cov.values, t)}


@pytest.mark.parametrize("t", COV_TYPES)
@pytest.mark.parametrize("chunks", [100, 250, 999])
def test_dask_equals_in_memory_at_every_iteration(t, chunks):
    init = start(t)
    mem = gmmflow.fit_em(gmmflow.GMM(3, t), X, init=init, seed=1, tol=1e-10)
    dsk = gmmflow.fit_em(gmmflow.GMM(3, t), da.from_array(X, chunks=(chunks, 3)), init=init, seed=1, tol=1e-10)
    a, b = mem.em_trace.objective.values[0], dsk.em_trace.objective.values[0]
    assert a.shape == b.shape
    np.testing.assert_allclose(b, a, rtol=1e-10)
    np.testing.assert_allclose(dsk.em_estimate.mu.values, mem.em_estimate.mu.values, rtol=1e-9, atol=1e-12)
    assert set(dsk.groups()) == set(mem.groups())
    assert dsk.attrs["chunked"] == 1


def test_dask_backed_dataarray_and_zarr_store(tmp_path):
    init = start("full")
    mem = gmmflow.fit_em(gmmflow.GMM(3), X, init=init, seed=1)
    arr = xr.DataArray(da.from_array(X, chunks=(300, 3)), dims=("obs_id", "feature"),
                       coords={"feature": ["a", "b", "c"]})
    via_xr = gmmflow.fit_em(gmmflow.GMM(3), arr, init=init, seed=1)
    assert list(via_xr.em_estimate.feature.values) == ["a", "b", "c"]
    store = tmp_path / "x.zarr"
    da.from_array(X, chunks=(300, 3)).to_zarr(str(store))
    via_zarr = gmmflow.fit_em(gmmflow.GMM(3), str(store), init=init, seed=1, chunk_size=200)
    for res in (via_xr, via_zarr):
        np.testing.assert_allclose(float(res.em_estimate.objective), float(mem.em_estimate.objective), rtol=1e-10)


def test_restarts_from_the_subsample_are_reproducible():
    a = gmmflow.fit_em(gmmflow.GMM(3), da.from_array(X, chunks=200), n_init=2, seed=4)
    b = gmmflow.fit_em(gmmflow.GMM(3), da.from_array(X, chunks=200), n_init=2, seed=4)
    xr.testing.assert_identical(a.em_restarts, b.em_restarts)
    # and the best restart finds the same optimum as the in-memory fit
    mem = gmmflow.fit_em(gmmflow.GMM(3), X, n_init=2, seed=4)
    np.testing.assert_allclose(float(a.em_estimate.objective), float(mem.em_estimate.objective), rtol=1e-6)


@pytest.mark.timeout(240)
def test_local_cluster_with_two_processes_matches_threads():
    distributed = pytest.importorskip("distributed")
    init = start("full")
    threaded = gmmflow.fit_em(gmmflow.GMM(3), da.from_array(X, chunks=250), init=init, seed=1)
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                                  dashboard_address=None) as cluster, distributed.Client(cluster):
        remote = gmmflow.fit_em(gmmflow.GMM(3), da.from_array(X, chunks=250), init=init, seed=1)
    # Same kernels and block order, but other processes (and possibly another BLAS thread count or memory
    # alignment): equal up to rounding, not necessarily bit for bit.
    np.testing.assert_array_equal(remote.em_estimate.n_iter.values, threaded.em_estimate.n_iter.values)
    np.testing.assert_allclose(remote.em_trace.objective.values, threaded.em_trace.objective.values,
                               rtol=1e-12)


def test_nan_in_one_chunk_is_named():
    bad = X.copy()
    bad[612, 1] = np.nan
    with pytest.raises(ValueError, match=re.escape("X contains NaN in chunk 2 (rows 500 to 749). Pass missing='marginalize' to fit "
                                                   "on each row's observed values (CLI: --missing marginalize)")):
        gmmflow.fit_em(gmmflow.GMM(3), da.from_array(bad, chunks=(250, 3)), seed=0)


@pytest.mark.parametrize("make,exc,message", [
    (lambda: da.zeros((10, 2, 2), chunks=5), ValueError, "X must be 2-D (n_samples, n_features); got 3-D"),
    (lambda: xr.DataArray(da.from_array(X, chunks=100), dims=("a", "b")), ValueError, "name the feature axis 'feature'"),
    (lambda: da.from_array(X[:2], chunks=1), ValueError, "X has 2 row(s) but n_components=3"),
    (lambda: da.from_array(np.array([["a"] * 3] * 5)), TypeError, "X must be numeric"),
])
def test_bad_chunked_input(make, exc, message):
    with pytest.raises(exc, match=re.escape(message)):
        gmmflow.fit_em(gmmflow.GMM(3), make(), seed=0)


def test_cli_em_on_zarr(tmp_path, capsys):
    store = tmp_path / "x.zarr"
    da.from_array(X, chunks=(300, 3)).to_zarr(str(store))
    out = tmp_path / "fit.nc"
    assert main(["em", "--data", str(store), "--chunks", "400", "--k", "3", "--n-init", "2", "--seed", "0",
                 "--out", str(out)]) == 0
    assert gmmflow.load(out).attrs["n_chunks"] == 3


def test_subsampled_init_is_shared_by_memory_and_dask(monkeypatch):
    """Above INIT_SAMPLE_ROWS both engines initialise on the same subsample: same seed, same fit."""
    from gmmflow.core import initialization as init_module
    monkeypatch.setattr(init_module, "INIT_SAMPLE_ROWS", 300)
    rows = init_module.init_sample_rows(X.shape[0], 5)
    assert rows.shape == (300,) and np.all(np.diff(rows) > 0)
    mem = gmmflow.fit_em(gmmflow.GMM(3), X, n_init=2, seed=5)
    dsk = gmmflow.fit_em(gmmflow.GMM(3), da.from_array(X, chunks=250), n_init=2, seed=5)
    np.testing.assert_allclose(dsk.em_trace.objective.values, mem.em_trace.objective.values, rtol=1e-10)


@pytest.mark.parametrize("t", ["full", "diag"])
def test_weighted_dask_equals_weighted_in_memory(t):
    """Weights ride along with the chunks (a numpy array, or a dask array chunked otherwise):
    the same fit as in memory, the same prior (weighted moments), the weights stored."""
    init = start(t)
    w = np.random.default_rng(0).integers(0, 4, X.shape[0]).astype(float)
    mem = gmmflow.fit_em(gmmflow.GMM(3, t), X, init=init, seed=1, tol=1e-10, sample_weight=w)
    for weights in (w, da.from_array(w, chunks=100)):
        dsk = gmmflow.fit_em(gmmflow.GMM(3, t), da.from_array(X, chunks=(250, 3)), init=init, seed=1, tol=1e-10,
                             sample_weight=weights)
        a, b = mem.em_trace.objective.values[0], dsk.em_trace.objective.values[0]
        np.testing.assert_allclose(b[~np.isnan(b)], a[~np.isnan(a)], rtol=1e-10)
        assert mem.attrs["hyperparameters"] == dsk.attrs["hyperparameters"] or np.allclose(
            json.loads(mem.attrs["hyperparameters"])["scale"], json.loads(dsk.attrs["hyperparameters"])["scale"],
            rtol=1e-12)
        np.testing.assert_allclose(dsk.constant_data.sample_weight.values, mem.constant_data.sample_weight.values,
                                   rtol=1e-14)  # both rescaled to sum to the positive rows' count
        assert dsk.attrs["data_fingerprint"] == mem.attrs["data_fingerprint"] or json.loads(
            dsk.attrs["data_fingerprint"])["weights_hash"] is not None

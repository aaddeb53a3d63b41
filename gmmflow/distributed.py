"""EM on chunked data: dask arrays, dask-backed DataArrays, zarr stores.

The E-step is a map over row blocks and the M-step needs only summed
sufficient statistics, so EM distributes without a second implementation:
every dask block is reduced by the same ``ArrayBlocks.e_step`` as in-memory
data (``core``), the statistics are summed on the client in block order
(deterministic), the M-step runs on the client, and the small parameter
arrays travel to the workers with the next round of tasks. Whatever dask
scheduler is active runs it: the threaded scheduler by default, or a
``dask.distributed.Client`` (local or remote) if one has been created.

Initialisation runs on the same uniform random subsample of at most
``INIT_SAMPLE_ROWS`` rows as the in-memory path (``core.init.init_sample_rows``;
k-means|| would need several passes over the data). Observed data and
responsibilities are stored in the result only when n <= ``STORE_MAX_ROWS``;
otherwise the attrs say ``observed_data_stored = 0``.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from gmmflow._validation import check_int

STORE_MAX_ROWS = 1_000_000


def is_chunked(X) -> bool:
    """True for dask arrays, dask-backed DataArrays and zarr store paths."""
    if isinstance(X, (str, os.PathLike)):
        return Path(X).suffix == ".zarr"
    data = getattr(X, "data", None)
    return type(X).__module__.startswith("dask") or type(data).__module__.startswith("dask")


def open_zarr(path, chunks: int | None = None):
    """A zarr store of shape (n, d) as a dask array chunked by rows."""
    import dask.array as da

    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"No such zarr store: {path}.")
    arr = da.from_zarr(str(path))
    if chunks:
        arr = arr.rechunk({0: int(chunks), 1: -1})
    return arr


def _as_dask_matrix(X, chunk_size):
    """(dask array (n, d) float64 chunked by rows only, feature names)."""
    import dask.array as da

    features = None
    if isinstance(X, (str, os.PathLike)):
        X = open_zarr(X, chunk_size)
    elif hasattr(X, "dims") and hasattr(X, "data"):  # xarray.DataArray
        if "feature" not in X.dims:
            raise ValueError(f"X has dims {X.dims}; name the feature axis 'feature'.")
        obs = next(d for d in X.dims if d != "feature")
        X = X.transpose(obs, "feature")
        if "feature" in X.coords:
            features = [str(f) for f in X["feature"].values]
        X = X.data
    if X.ndim != 2:
        raise ValueError(f"X must be 2-D (n_samples, n_features); got {X.ndim}-D with shape {X.shape}.")
    if X.dtype.kind not in "iuf":
        raise TypeError(f"X must be numeric (integer or float), got dtype {X.dtype}.")
    if X.shape[0] == 0 or X.shape[1] == 0:
        raise ValueError(f"X is empty or has no features (shape {X.shape}).")
    X = X.astype(np.float64).rechunk({0: chunk_size or X.chunks[0][0], 1: -1})
    features = features or [f"x{j}" for j in range(X.shape[1])]
    return X, features, da


def _check_blocks_finite(X, da) -> None:
    """One pass: the first block holding NaN or inf is named in the error."""
    flags = X.map_blocks(lambda b: np.array([[np.isfinite(b).all()]]), chunks=(1, 1), dtype=bool)
    ok = flags.compute().ravel()
    if not ok.all():
        block = int(np.argmin(ok))
        start = int(np.sum(X.chunks[0][:block]))
        raise ValueError(
            f"X contains NaN or inf in chunk {block} (rows {start} to {start + X.chunks[0][block] - 1}). "
            "Remove or impute missing values before fitting."
        )


def _block_stats(block, params, shift, chunk):
    from gmmflow.core.blocks import ArrayBlocks

    return ArrayBlocks(np.asarray(block, dtype=np.float64), shift, chunk_size=chunk).e_step(params)


def fit_em_chunked(model, X, *, n_init=1, init="kmeans++", max_iter=1000, tol=1e-8, seed=None,
                   sample_weight=None, chunk_size=None):
    """``fit_em`` for chunked input (called by ``fit_em``; same parameters and result)."""
    import dask
    from functools import reduce
    from operator import add

    from gmmflow import io
    from gmmflow._validation import DataMatrix
    from gmmflow.core.blocks import default_chunk_size
    from gmmflow.workflows.em import (
        best_restart, check_fit_options, check_init, check_rows, fit_options, run_restarts, shift_given,
        shifted_hyper,
    )
    from gmmflow.core.init import init_sample_rows, initial_parameters

    if sample_weight is not None:
        raise ValueError("sample_weight is not supported with chunked input; repeat rows or use in-memory data.")
    if chunk_size is not None:
        chunk_size = check_int(chunk_size, "chunk_size", 1)
    n_init, max_iter, tol, seed = check_fit_options(n_init, max_iter, tol, seed)
    Xd, features, da = _as_dask_matrix(X, chunk_size)
    n, d = Xd.shape
    check_rows((n, d), model)
    method, given = check_init(init, model, d)
    _check_blocks_finite(Xd, da)

    mean = Xd.mean(axis=0).compute()
    centred = Xd - mean
    cov = (centred.T @ centred).compute() / max(n - 1, 1)
    hyper = model.hyperparameters(mean, cov)
    inner = default_chunk_size(model.n_components, d)
    blocks = Xd.to_delayed().ravel()

    class DaskBlocks:
        def e_step(self, params):
            parts = dask.compute(*[dask.delayed(_block_stats)(b, params, mean, inner) for b in blocks])
            return reduce(add, parts)

    rows = init_sample_rows(n, seed)
    sample = (Xd if rows is None else Xd[rows]).compute() - mean
    m = sample.shape[0]

    def start(rng):
        return initial_parameters(sample, model.n_components, model.covariance_type, method, rng,
                                  shifted_hyper(hyper, mean), model.reg_covar, None, shift_given(given, mean))

    restarts = run_restarts(model, DaskBlocks(), hyper, mean, start, n_init, max_iter, tol, seed)
    best = best_restart(restarts)
    store = n <= STORE_MAX_ROWS
    values = Xd.compute() if store else np.empty((0, d))
    resp = None
    if store:
        from gmmflow.core.blocks import ArrayBlocks

        log_resp, _ = ArrayBlocks(values, mean, chunk_size=inner).log_resp_and_norm(
            restarts[best].params.shifted(-mean))
        resp = np.exp(log_resp)
    data = DataMatrix(values, features, np.arange(values.shape[0]))
    idata = io.em_inference_data(
        model=model, data=data, hyper=hyper, restarts=restarts, best=best, responsibilities=resp,
        seed=seed, store_observed=store,
        fit_options=fit_options(n_init, init, max_iter, tol) | dict(
            chunked=1, init_sample_rows=int(m), n_chunks=len(blocks)),
    )
    idata.attrs["n_obs"] = int(n)
    return idata

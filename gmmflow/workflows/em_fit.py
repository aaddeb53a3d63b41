"""``fit_em``: the EM estimate of a model on in-memory or chunked data, with restarts.

One body for every backend: the data become a blocks object (numpy
``ArrayBlocks`` or dask ``DaskBlocks``), the one EM driver of ``core``
runs the restarts on it, and the fit record becomes an ``InferenceData``
at the end.
"""

from __future__ import annotations

import inspect
import os
from dataclasses import replace

import arviz as az
import numpy as np

from gmmflow import defaults
from gmmflow import schema as S
from gmmflow.checks import (check_float, check_int, check_missing, check_noise_with_missing, check_sample_weight,
                            check_seed, numeric_array)
from gmmflow.core.dask_blocks import DaskBlocks, chunked_row_blocks
from gmmflow.core.em_driver import best_restart, fit_restarts
from gmmflow.core.gaussian import cholesky, covariance_shape
from gmmflow.core.initialization import INIT_METHODS, USER_START, StartingPoints
from gmmflow.core.missing_data import row_blocks
from gmmflow.core.noise import log_hypervolume, principal_axes
from gmmflow.core.row_blocks import default_chunk_size, default_n_threads
from gmmflow.exceptions import NotPositiveDefiniteError
from gmmflow.inputs.chunked import ChunkedMatrix, as_chunked_matrix, is_chunked, open_chunked
from gmmflow.inputs.fingerprint import hash_values
from gmmflow.inputs.matrix import DataMatrix, as_data_matrix
from gmmflow.models.spec import GMM
from gmmflow.resources import check_memory, chunked_em_bytes, em_bytes
from gmmflow.results.records import EMFit
from gmmflow.results.to_idata import em_inference_data

INIT_KEYS = ("weights", "means", "covariances")
HC_FIRST = "hc+"  # "hc+<method>": restart 0 from hc, the others by <method>
INIT_NAMES = INIT_METHODS + tuple(HC_FIRST + m for m in INIT_METHODS if m != "hc")
# chunked input: observed data and responsibilities are stored in the result only up to this many rows
STORE_MAX_ROWS = 1_000_000


def check_model(model) -> GMM:
    if not isinstance(model, GMM):
        raise TypeError(
            f"model must be a gmmflow.GMM, got {type(model).__name__}; e.g. gmmflow.GMM(2)."
        )
    return model


def check_rows(data_shape, model: GMM) -> None:
    n = data_shape[0]
    if n < model.n_components:
        raise ValueError(
            f"X has {n} row(s) but n_components={model.n_components}; a mixture needs at "
            "least as many rows as components. Use fewer components or more data."
        )


def restart_methods(init: str, n_init: int) -> list[str]:
    """The start method of every restart: ``"hc"`` is deterministic, so it runs once;
    ``"hc+m"`` starts restart 0 from hc and the other ``n_init - 1`` by ``m``."""
    if init == "hc":
        return ["hc"]
    if init.startswith(HC_FIRST):
        return ["hc"] + [init[len(HC_FIRST):]] * (n_init - 1)
    return [init] * n_init


def check_init(init, model: GMM, n_features: int):
    """Validate ``init``: a method name or a dict of initial values (returned as arrays).

    Returns the method (``"user"`` for a dict) and the given values (or None).
    """
    if isinstance(init, str):
        if init not in INIT_NAMES:
            raise ValueError(
                f"init must be one of {', '.join(map(repr, INIT_NAMES))} or a dict with "
                f"keys among {INIT_KEYS}; got {init!r}."
            )
        return init, None
    if not isinstance(init, dict):
        raise TypeError(f"init must be a string or a dict, got {type(init).__name__}.")
    unknown = set(init) - set(INIT_KEYS)
    if unknown:
        raise ValueError(f"init has unknown key(s) {sorted(unknown)}; allowed: {INIT_KEYS}.")
    K, d, t = model.n_components, n_features, model.covariance_type
    want = {
        "weights": (K + model.noise,),  # a noise model's K+1 weights, the noise's last
        "means": (K, d),
        "covariances": covariance_shape(t, K, d),
    }
    given = {}
    for key, value in init.items():
        arr = numeric_array(value, f"init[{key!r}]")
        if arr.shape != want[key]:
            raise ValueError(
                f"init[{key!r}] must have shape {want[key]} for n_components={K}, "
                f"{d} feature(s){' and noise=True' if model.noise and key == 'weights' else ''} and "
                f"covariance_type={t!r}; got {arr.shape}."
            )
        if not np.all(np.isfinite(arr)):
            raise ValueError(f"init[{key!r}] contains NaN or inf.")
        given[key] = arr
    if "weights" in given:
        w = given["weights"]
        if np.any(w <= 0) or abs(w.sum() - 1.0) > 1e-6:
            raise ValueError(
                f"init['weights'] must be positive and sum to 1, got {w.tolist()} (sum {w.sum():.6g})."
            )
        given["weights"] = w / w.sum()
    if "covariances" in given:
        try:
            cholesky(given["covariances"], t)
        except NotPositiveDefiniteError as err:
            raise ValueError(f"init['covariances']: {err} Give symmetric positive definite covariances.") from err
    return USER_START, given


def fit_em(
    model: GMM,
    X,
    *,
    n_init: int = defaults.N_INIT,
    init: str | dict = defaults.INIT,
    max_iter: int = defaults.MAX_ITER,
    tol: float = defaults.TOL,
    seed: int | None = None,
    sample_weight=None,
    chunk_size: int | None = None,
    missing: str = defaults.MISSING,
) -> az.InferenceData:
    """Fit a Gaussian mixture by EM: the MAP under ``model.prior``, or the MLE.

    Parameters
    ----------
    model : GMM
        The model definition (``prior=None`` for the MLE).
    X : array_like (n, d), pandas.DataFrame or xarray.DataArray
        Data; feature names flow into the result's coordinates. A dask array
        (or dask-backed DataArray, or a zarr path) runs the same EM on its
        chunks under the active dask scheduler.
    n_init : int, default 10
        Number of restarts, each from its own seeded start. All are kept; the
        one with the highest objective is the estimate.
    init : str or dict, default "hc+kmeans++"
        Start method. ``"hc"``: mclust's start, the partition cut from
        model-based hierarchical clustering (deterministic, so one restart
        whatever ``n_init``); ``"kmeans++"``, ``"random"`` (random
        responsibilities), ``"random_from_data"`` (K rows as centres);
        ``"hc+kmeans++"`` (the default), ``"hc+random"``, ``"hc+random_from_data"``:
        restart 0 from hc, the other ``n_init - 1`` by the second method
        (``em_restarts.init_method`` records each restart's). Or a dict with
        any of ``"weights"`` (K,), ``"means"`` (K, d) and ``"covariances"`` (the
        type's shape: full (K, d, d), tied (d, d), diag (K, d), spherical (K,)).
        What is not given is derived from the data's assignment to the given
        (or k-means++) means.
    max_iter : int, default 1000
        Maximum number of EM iterations per restart.
    tol : float, default 1e-8
        Stop when the relative change of the objective is at most ``tol``.
    seed : int, optional
        Seed of all randomness; ``None`` draws one, recorded in the attrs.
    sample_weight : array_like (n,), optional
        Non-negative observation weights as relative importances: only their
        ratios matter. They are rescaled to sum to the number of rows with a
        positive weight (stored so in ``constant_data``), so multiplying them
        all by a constant changes no estimate and no criterion, and BIC's
        ``n`` is that number of rows. Integer weights are not frequencies:
        repeat rows to count them twice. With chunked input a numpy or dask array, used chunk by chunk.
    chunk_size : int, optional
        Rows per E-step block (chunked input: rows per dask chunk); the
        default keeps each block's work in cache.
    missing : {"error", "marginalize"}, default "error"
        What NaN in ``X`` mean. ``"error"``: refused. ``"marginalize"``:
        missing cells (at random, MAR), fitted on each row's observed values:
        the E-step uses the marginal density of the observed coordinates, the
        M-step their conditional expectations (rows grouped by missingness
        pattern; ``core/missing_data.py``); the objective is the observed-data
        log-likelihood plus log-prior. Rows with every value missing are
        refused. In memory and on chunked data (each dask chunk's rows grouped
        by pattern; same estimate). ``observed_data`` keeps the NaN; attrs
        ``missing`` and ``n_missing`` (the count of missing cells).

    Returns
    -------
    arviz.InferenceData
        Groups ``observed_data``, ``em_estimate``, ``em_restarts``,
        ``em_trace`` (and ``constant_data`` with weights). Chunked input
        above 1,000,000 rows omits ``observed_data`` and ``responsibilities``
        (attrs: ``observed_data_stored = 0``).

    Warns
    -----
    ConvergenceWarning
        If the best restart stopped at ``max_iter``.
    """
    return em_inference_data(_fit(model, X, n_init, init, max_iter, tol, seed, sample_weight, chunk_size, missing))


def _blocks(model: GMM, X, sample_weight, chunk_size, n_init: int = 1, missing: str = defaults.MISSING):
    """(data record, blocks) for in-memory or chunked ``X``, all checked, memory included; blocks
    sized for the ``n_init`` restarts advanced together (:class:`MissingBlocks`, or
    :class:`MissingDaskBlocks` for chunked ``X``, when ``missing="marginalize"`` and ``X`` has NaN)."""
    K, t = model.n_components, model.covariance_type
    marginalize = missing == "marginalize"
    if is_chunked(X):
        source = open_chunked(X, chunk_size)
        (n, d), rows = source.shape, source.chunk_rows
        check_rows((n, d), model)
        check_memory(chunked_em_bytes(n, d, K, rows, n <= STORE_MAX_ROWS, n_init, t, marginalize),
                     f"fit_em on {n} x {d} chunked data with K={K}, {n_init} restart(s) and {rows} rows per chunk",
                     "use smaller chunks or fewer restarts")
        chunked = as_chunked_matrix(source, missing=marginalize)
        sw = _chunked_weights(sample_weight, chunked.values)
        return chunked, chunked_blocks(model, chunked, default_chunk_size(K, d, n_init), sw)
    data = as_data_matrix(X, missing=marginalize)
    n, d = data.shape
    check_rows(data.shape, model)
    sw = check_sample_weight(sample_weight, n)
    check_memory(em_bytes(n, d, K, n_init, t), f"fit_em on {n} x {d} data with K={K} and {n_init} restart(s)",
                 "use fewer restarts, or pass a dask array or a zarr store to run EM out of core")
    chunk = chunk_size or default_chunk_size(K, d, n_init)
    threads = default_n_threads(n, chunk, os.cpu_count() or 1)
    check_noise_with_missing(model.noise, marginalize and bool(np.isnan(data.values).any()))
    return data, row_blocks(data.values, sw, chunk, n_threads=threads)


def chunked_blocks(model: GMM, chunked: ChunkedMatrix, inner_chunk: int, sample_weight=None) -> DaskBlocks:
    """The blocks of checked chunked data: ``MissingDaskBlocks`` when they have missing cells (refused
    with a noise component), else ``DaskBlocks``."""
    check_noise_with_missing(model.noise, chunked.n_missing > 0)
    return chunked_row_blocks(chunked.values, inner_chunk, sample_weight=sample_weight, n_missing=chunked.n_missing)


def _chunked_weights(sample_weight, X):
    """Weights for chunked rows ``X``: a numpy or dask array (n,), checked in one pass,
    as a dask array chunked like the rows."""
    if sample_weight is None:
        return None
    import dask
    import dask.array as da

    if not isinstance(sample_weight, da.Array):
        return da.from_array(check_sample_weight(sample_weight, X.shape[0]), chunks=(X.chunks[0],))
    if sample_weight.shape != (X.shape[0],):
        raise ValueError(f"sample_weight must have shape ({X.shape[0]},) (one weight per row), "
                         f"got {sample_weight.shape}.")
    sw = sample_weight.astype(np.float64).rechunk((X.chunks[0],))
    finite, low, high, positive = dask.compute(da.isfinite(sw).all(), sw.min(), sw.max(), (sw > 0).sum())
    if not finite or low < 0:
        raise ValueError("sample_weight must be finite and >= 0.")
    if high <= 0:
        raise ValueError("sample_weight sums to 0; at least one row needs a positive weight.")
    relative = sw / high  # as checks.check_sample_weight: rescaled to sum to the positive rows' count
    return relative * (float(positive) / float(relative.sum().compute()))


def noise_log_density(model: GMM, blocks, cov: np.ndarray) -> float | None:
    """``-log V`` of the model's noise component (None without one): the given ``noise_volume``,
    else mclust's hypervolume of the rows (one pass over them; raises on a flat box)."""
    if not model.noise:
        return None
    if model.noise_volume is not None:
        return -float(np.log(model.noise_volume))
    return -log_hypervolume(blocks.extremes(principal_axes(cov)))


def n_weighted(blocks) -> float:
    """The number of rows, or the sum of the weights of a weighted fit."""
    sw = blocks.sample_weight
    return float(blocks.n_rows if sw is None else sw.sum())


def fit_em_record(model: GMM, X, **options) -> EMFit:
    """:func:`fit_em` as an in-memory record (what the other workflows build on).

    ``options`` are :func:`fit_em`'s keyword arguments, with its defaults.
    """
    unknown = sorted(set(options) - set(FIT_OPTIONS))
    if unknown:
        raise TypeError(f"fit_em() got unexpected keyword argument(s) {', '.join(map(repr, unknown))}; "
                        f"its options are {', '.join(FIT_OPTIONS)}.")
    return _fit(model, X, **(FIT_OPTIONS | options))


def _fit(model: GMM, X, n_init, init, max_iter, tol, seed, sample_weight, chunk_size, missing) -> EMFit:
    """Check everything, turn the data into blocks, run the restarts, keep the best."""
    check_model(model)
    if chunk_size is not None:
        chunk_size = check_int(chunk_size, "chunk_size", 1)
    n_init, max_iter, tol, seed = check_fit_options(n_init, max_iter, tol, seed)
    missing = check_missing(missing)
    data, blocks = _blocks(model, X, sample_weight, chunk_size, n_init, missing)
    n, d = data.shape
    method, given = check_init(init, model, d)
    methods = restart_methods(method, n_init)

    mean, cov = blocks.moments()
    hyper = model.hyperparameters(mean, cov, n_weighted(blocks))
    log_noise = noise_log_density(model, blocks, cov)
    blocks = blocks.with_shift(mean)
    starts = StartingPoints.from_blocks(blocks, seed, model.n_components, model.covariance_type,
                                        hyper, model.reg_covar, given, log_noise)
    restarts = fit_restarts(blocks, starts, hyper, model.reg_covar, methods, max_iter, tol, seed)
    best = best_restart(restarts)

    store = isinstance(data, DataMatrix) or n <= STORE_MAX_ROWS
    responsibilities = None
    if store:
        log_resp, _ = blocks.log_resp_and_norm(restarts[best].params.shifted(-mean))
        responsibilities = np.exp(log_resp, out=log_resp)
    options = fit_options(len(methods), init, max_iter, tol) | missing_attrs(missing, blocks)
    sample_weight, fingerprint = blocks.sample_weight, None  # in-memory data: fingerprint from the record
    if not isinstance(data, DataMatrix):
        values = data.values.compute() if store else np.empty((0, d))
        fingerprint = data.fingerprint
        if blocks.sample_weight is not None:  # the weights' hash, as for in-memory data (one block)
            fingerprint = replace(fingerprint, weights_hash=hash_values(blocks.sample_weight.compute()))
        data = DataMatrix(values, data.features, np.arange(values.shape[0]), named=data.named)
        sample_weight = sample_weight.compute() if store and sample_weight is not None else None
        options |= dict(chunked=1, init_sample_rows=int(starts.sample.shape[0]), n_chunks=len(blocks.chunks))
    return EMFit(model=model, data=data, hyper=hyper, restarts=restarts, best=best,
                 responsibilities=responsibilities, seed=seed, n_obs=n, sample_weight=sample_weight,
                 store_observed=store, options=options, fingerprint=fingerprint)


# fit_em's keyword arguments and their defaults: the one declaration is fit_em's signature
FIT_OPTIONS = {name: p.default for name, p in inspect.signature(fit_em).parameters.items()
               if p.kind is p.KEYWORD_ONLY}


def fit_options(n_init, init, max_iter, tol) -> dict:
    """The fit settings recorded in a result's attrs."""
    return dict(n_init=n_init, init=init if isinstance(init, str) else "user", max_iter=max_iter, tol=tol)


def missing_attrs(missing: str, blocks) -> dict:
    """The ``missing`` option and the count of missing cells, for a result's attrs."""
    return {S.MISSING_ATTR: missing, S.N_MISSING_ATTR: getattr(blocks, "n_missing", 0)}


def check_fit_options(n_init, max_iter, tol, seed):
    return (check_int(n_init, "n_init", 1), check_int(max_iter, "max_iter", 1),
            check_float(tol, "tol", 0.0), check_seed(seed))

"""EM workflow: ``fit_em`` and what users expect of a fitted mixture."""

from __future__ import annotations

import os
import warnings
from dataclasses import replace

import arviz as az
import numpy as np
from threadpoolctl import threadpool_limits

from gmmflow import io
from gmmflow._validation import (
    DataMatrix,
    as_data_matrix,
    check_float,
    check_int,
    check_sample_weight,
    check_seed,
    numeric_array,
)
from gmmflow.core.blocks import ArrayBlocks, data_moments, default_chunk_size
from gmmflow.core.em import EMResult, Params, run_em
from gmmflow.core.gaussian import NotPositiveDefiniteError, cholesky, covariance_shape, sample_mixture
from gmmflow.core.init import INIT_METHODS, init_sample_rows, initial_parameters
from gmmflow.exceptions import ConvergenceWarning
from gmmflow.models.spec import GMM
from gmmflow.resources import check_memory, em_bytes

INIT_KEYS = ("weights", "means", "covariances")


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


def check_init(init, model: GMM, n_features: int):
    """Validate ``init``: a method name or a dict of initial values (returned as arrays)."""
    if isinstance(init, str):
        if init not in INIT_METHODS:
            raise ValueError(
                f"init must be one of {', '.join(map(repr, INIT_METHODS))} or a dict with "
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
        "weights": (K,),
        "means": (K, d),
        "covariances": covariance_shape(t, K, d),
    }
    given = {}
    for key, value in init.items():
        arr = numeric_array(value, f"init[{key!r}]")
        if arr.shape != want[key]:
            raise ValueError(
                f"init[{key!r}] must have shape {want[key]} for n_components={K}, "
                f"{d} feature(s) and covariance_type={t!r}; got {arr.shape}."
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
    return "kmeans++", given


def _n_threads(n_blocks: int) -> int:
    return 1 if n_blocks < 4 else min(2, os.cpu_count() or 1)


def fit_em(
    model: GMM,
    X,
    *,
    n_init: int = 1,
    init: str | dict = "kmeans++",
    max_iter: int = 1000,
    tol: float = 1e-8,
    seed: int | None = None,
    sample_weight=None,
    chunk_size: int | None = None,
) -> az.InferenceData:
    """Fit a Gaussian mixture by EM: the MAP under ``model.prior``, or the MLE.

    Parameters
    ----------
    model : GMM
        The model definition (``prior=None`` for the MLE).
    X : array_like (n, d), pandas.DataFrame or xarray.DataArray
        Data; feature names flow into the result's coordinates. A dask array
        (or dask-backed DataArray, or a zarr path) runs the distributed EM.
    n_init : int, default 1
        Number of restarts, each from its own seeded start. All are kept; the
        one with the highest objective is the estimate.
    init : {"kmeans++", "random", "random_from_data"} or dict, default "kmeans++"
        Start method, or a dict with any of ``"weights"`` (K,), ``"means"``
        (K, d) and ``"covariances"`` (the type's shape: full (K, d, d), tied
        (d, d), diag (K, d), spherical (K,)). What is not given is derived from
        the data's assignment to the given (or k-means++) means.
    max_iter : int, default 1000
        Maximum number of EM iterations per restart.
    tol : float, default 1e-8
        Stop when the relative change of the objective is at most ``tol``.
    seed : int, optional
        Seed of all randomness; ``None`` draws one, recorded in the attrs.
    sample_weight : array_like (n,), optional
        Non-negative observation weights (as mclust's), counted as frequencies.
    chunk_size : int, optional
        Rows per E-step block; default keeps each block's work in cache.

    Returns
    -------
    arviz.InferenceData
        Groups ``observed_data``, ``em_estimate``, ``em_restarts``,
        ``em_trace`` (and ``constant_data`` with weights).

    Warns
    -----
    ConvergenceWarning
        If the best restart stopped at ``max_iter``.
    """
    from gmmflow.distributed import is_chunked, fit_em_chunked

    check_model(model)
    if is_chunked(X):
        return fit_em_chunked(model, X, n_init=n_init, init=init, max_iter=max_iter, tol=tol,
                              seed=seed, sample_weight=sample_weight, chunk_size=chunk_size)
    data = as_data_matrix(X)
    n_init, max_iter, tol, seed = check_fit_options(n_init, max_iter, tol, seed)
    n, d = data.shape
    check_rows(data.shape, model)
    method, given = check_init(init, model, d)
    sw = check_sample_weight(sample_weight, n)
    if chunk_size is not None:
        chunk_size = check_int(chunk_size, "chunk_size", 1)
    check_memory(em_bytes(n, d, model.n_components), f"fit_em on {n} x {d} data with K={model.n_components}",
                 "pass a dask array or a zarr store to run EM out of core")

    chunk = chunk_size or default_chunk_size(model.n_components, d)
    mean, cov = data_moments(data.values, sw, chunk)
    hyper = model.hyperparameters(mean, cov)
    blocks = ArrayBlocks(data.values, mean, sw, chunk, n_threads=_n_threads(-(-n // chunk)))

    rows = init_sample_rows(n, seed)
    sample = (data.values if rows is None else data.values[rows]) - mean  # EM's frame; input untouched
    sample_sw = sw if sw is None or rows is None else sw[rows]

    def start(rng):
        return initial_parameters(sample, model.n_components, model.covariance_type, method, rng,
                                  shifted_hyper(hyper, mean), model.reg_covar, sample_sw,
                                  shift_given(given, mean))

    restarts = run_restarts(model, blocks, hyper, mean, start, n_init, max_iter, tol, seed)
    best = best_restart(restarts)
    log_resp, _ = blocks.log_resp_and_norm(restarts[best].params.shifted(-mean))
    return io.em_inference_data(
        model=model, data=data, hyper=hyper, restarts=restarts, best=best,
        responsibilities=np.exp(log_resp, out=log_resp), seed=seed, sample_weight=sw,
        fit_options=fit_options(n_init, init, max_iter, tol),
    )


def fit_options(n_init, init, max_iter, tol) -> dict:
    """The fit settings recorded in a result's attrs."""
    return dict(n_init=n_init, init=init if isinstance(init, str) else "user", max_iter=max_iter, tol=tol)


def check_fit_options(n_init, max_iter, tol, seed):
    return (check_int(n_init, "n_init", 1), check_int(max_iter, "max_iter", 1),
            check_float(tol, "tol", 0.0), check_seed(seed))


def shifted_hyper(hyper, shift):
    return None if hyper is None else replace(hyper, mean=hyper.mean - shift)


def shift_given(given, shift):
    if not given:
        return given
    out = dict(given)
    if "means" in out:
        out["means"] = out["means"] - shift
    return out


def run_restarts(model, blocks, hyper, shift, start, n_init, max_iter, tol, seed) -> list[EMResult]:
    """All restarts, each from its own child seed; parameters returned unshifted.

    BLAS is held to one thread: the E-step's GEMMs are small (one row block
    each) and a multi-threaded BLAS spends more time waking its threads than
    computing (measured 4x slower here); blocks run on a thread pool instead.
    """
    results = []
    h = shifted_hyper(hyper, shift)
    with threadpool_limits(limits=1, user_api="blas"):
        for child in np.random.SeedSequence(seed).spawn(n_init):
            init_params = start(np.random.default_rng(child))
            r = run_em(blocks.e_step, init_params, h, model.reg_covar, max_iter, tol)
            r.params = r.params.shifted(shift)
            results.append(r)
    return results


def best_restart(restarts: list[EMResult]) -> int:
    best = int(np.argmax([r.objective for r in restarts]))
    if not restarts[best].converged:
        n_conv = sum(r.converged for r in restarts)
        warnings.warn(
            f"EM did not converge: the best restart stopped at max_iter={restarts[best].n_iter} "
            f"({n_conv} of {len(restarts)} restarts converged). Increase max_iter, loosen tol, "
            "or check the data; the result has converged=False.",
            ConvergenceWarning,
            stacklevel=3,
        )
    return best


# --------------------------------------------------------------------------
# A fitted mixture
# --------------------------------------------------------------------------
def _fitted(idata, X) -> tuple[GMM, Params, DataMatrix]:
    model, params, features = io.em_params(idata)
    data = as_data_matrix(X)
    if data.shape[1] != len(features):
        raise ValueError(
            f"X has {data.shape[1]} feature(s) but the mixture was fitted on {len(features)} "
            f"({', '.join(features)}). Pass data with the same columns."
        )
    return model, params, data


def _log_resp_and_norm(idata, X):
    model, params, data = _fitted(idata, X)
    blocks = ArrayBlocks(data.values, np.zeros(data.shape[1]),
                         chunk_size=default_chunk_size(model.n_components, data.shape[1]))
    return blocks.log_resp_and_norm(params)


def predict_proba(idata: az.InferenceData, X) -> np.ndarray:
    """Responsibilities P(z_i = k | x_i) under the EM estimate: (n, K)."""
    return np.exp(_log_resp_and_norm(idata, X)[0])


def predict(idata: az.InferenceData, X) -> np.ndarray:
    """Most probable component of each row under the EM estimate: (n,)."""
    return np.argmax(_log_resp_and_norm(idata, X)[0], axis=1)


def score_samples(idata: az.InferenceData, X) -> np.ndarray:
    """Log mixture density ``log sum_k w_k N(x_i | mu_k, Sigma_k)`` of each row: (n,)."""
    return _log_resp_and_norm(idata, X)[1]


def sample_em(idata: az.InferenceData, n: int, seed: int | None = None):
    """Draw ``n`` rows from the EM estimate's mixture.

    Returns
    -------
    X : ndarray (n, d)
    labels : ndarray (n,) of int
        The component each row was drawn from.
    """
    model, params, features = io.em_params(idata)
    n = check_int(n, "n", 1)
    rng = np.random.default_rng(check_seed(seed))
    return sample_mixture(rng, n, params.weights, params.means, params.chol, params.covariance_type)


def _criterion_parts(idata, X):
    model, _, features = io.em_params(idata)
    if X is None:
        est = idata["em_estimate"]
        if "responsibilities" not in est:
            raise ValueError("This result stores no responsibilities; pass X explicitly.")
        ll = float(est["log_likelihood"])
        resp = est["responsibilities"].values
        sw = idata["constant_data"]["sample_weight"].values if "constant_data" in idata.groups() else None
        n = resp.shape[0] if sw is None else sw.sum()
    else:
        log_resp, log_norm = _log_resp_and_norm(idata, X)
        ll, resp, sw, n = float(log_norm.sum()), np.exp(log_resp), None, log_norm.shape[0]
    return model.n_parameters(len(features)), ll, resp, sw, n


def bic(idata: az.InferenceData, X=None) -> float:
    """Bayesian information criterion ``-2 log L + p log n``; lower is better.

    sklearn's sign (mclust reports the negative). ``log L`` is the
    log-likelihood at the EM estimate on ``X`` (default: the fitted data).
    """
    p, ll, _, _, n = _criterion_parts(idata, X)
    return -2.0 * ll + p * np.log(n)


def aic(idata: az.InferenceData, X=None) -> float:
    """Akaike information criterion ``-2 log L + 2 p``; lower is better."""
    p, ll, _, _, _ = _criterion_parts(idata, X)
    return -2.0 * ll + 2.0 * p


def icl(idata: az.InferenceData, X=None) -> float:
    """Integrated completed likelihood (Biernacki et al. 2000); lower is better.

    ``BIC - 2 sum_i log r_{i, c_i}`` with ``c_i`` the hard assignment: BIC
    penalised by the entropy of the classification, so ``ICL >= BIC``.
    """
    p, ll, resp, sw, n = _criterion_parts(idata, X)
    with np.errstate(divide="ignore"):
        log_hard = np.log(resp.max(axis=1))
    ent = log_hard.sum() if sw is None else sw @ log_hard
    return -2.0 * ll + p * np.log(n) - 2.0 * ent

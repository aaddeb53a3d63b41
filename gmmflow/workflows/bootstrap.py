"""``bootstrap``: the sampling uncertainty of the EM estimate, by refitting (mclust's ``MclustBootstrap``).

Every replicate refits the model warm-started from the EM estimate, with the
prior pinned to the fit's resolved hyper-parameters (a refit must not move
data-dependent defaults such as the prior mean), and is relabelled to the
estimate by the assignment solver the posterior uses (``core.relabel``).

``"nonparametric"``
    Resample the n rows with replacement: multinomial counts as observation
    weights (mclust's ``"bs"``), never a copy of the data.
``"weighted"``
    The weighted likelihood bootstrap: ``n * Dirichlet(1, ..., 1)`` weights
    (mclust's ``"wlbs"``).
``"parametric"``
    Simulate n rows from the estimate and refit (mclust's ``"pb"``); in-memory
    data only.

For the first two, B replicates advance together as one batch of EM runs
(one row of weights each: ``core.row_blocks``), in groups that keep the
weights held at once below ``GROUP_ELEMENTS``. On dask input the weights are
drawn chunk by chunk inside the tasks (``core.resampling``), so neither the
data nor the weights ever reach the client.
"""

from __future__ import annotations

import os
import warnings

import arviz as az
import numpy as np

from gmmflow import defaults
from gmmflow import schema as S
from gmmflow.checks import check_float, check_int, check_seed
from gmmflow.core.dask_blocks import chunked_row_blocks
from gmmflow.core.em_driver import EMResult, fit_replicates
from gmmflow.core.em_steps import Params
from gmmflow.core.gaussian import full_covariances, sample_mixture
from gmmflow.core.relabel import AMBIGUITY_RATIO, ambiguous_labellings, relabel_to_pivot
from gmmflow.core.resampling import (
    chunk_totals,
    exponential_chunk,
    multinomial_chunk,
    replicate_stream,
    resampling_weights,
)
from gmmflow.core.missing_data import row_blocks
from gmmflow.core.row_blocks import default_chunk_size, default_n_threads
from gmmflow.exceptions import AmbiguousLabellingWarning
from gmmflow.inputs.chunked import as_chunked_matrix, is_chunked
from gmmflow.inputs.matrix import as_data_matrix
from gmmflow.models.spec import GMM
from gmmflow.results.from_idata import (
    em_params,
    hyperparameters_from_idata,
    observed_values,
    sample_weights,
)
from gmmflow.results.records import BootstrapSample
from gmmflow.results.to_idata import with_bootstrap

KINDS = ("nonparametric", "parametric", "weighted")
AMBIGUOUS_WARN_SHARE = 0.1  # warn when more than this share of replicates had an ambiguous labelling
GROUP_ELEMENTS = 1 << 24  # bootstrap weights held at once: replicates per group x rows (x chunk rows on dask)


def bootstrap(
    idata: az.InferenceData,
    X,
    *,
    n_boot: int = defaults.N_BOOT,
    kind: str = "nonparametric",
    seed: int | None = None,
    max_iter: int = defaults.MAX_ITER,
    tol: float = defaults.TOL,
) -> az.InferenceData:
    """Bootstrap the EM estimate of a result: ``n_boot`` refits on resampled data.

    Parameters
    ----------
    idata : arviz.InferenceData
        A :func:`gmmflow.fit_em` or :func:`gmmflow.sample_posterior` result.
    X : array_like (n, d), DataFrame, DataArray, dask array or zarr path
        The data the result was fitted on (checked against the stored data
        when the result holds them, else by shape). For a fit made with
        ``missing="marginalize"`` it keeps its NaN cells: every replicate is a
        missing-data fit, and a parametric replicate deletes the same cells
        from its simulated set (the missingness pattern held fixed).
    n_boot : int, default 999
        Number of replicates (mclust's default).
    kind : {"nonparametric", "parametric", "weighted"}, default "nonparametric"
        Resample rows (multinomial weights), simulate from the estimate, or
        weight rows by ``n * Dirichlet(1, ..., 1)`` (the weighted likelihood
        bootstrap). ``"parametric"`` needs in-memory data and an unweighted fit.
    seed : int, optional
        Seed of the resampling; ``None`` draws one (recorded in the group's attrs).
    max_iter, tol : optional
        EM settings of each refit (the warm start converges in a few iterations).

    Returns
    -------
    arviz.InferenceData
        A copy of ``idata`` with an ``em_bootstrap`` group: ``w``, ``mu``, ``cov``
        along ``replicate``, relabelled to the EM estimate, with
        ``relabel_permutation``, ``relabel_ambiguous`` (the second-best
        assignment cost at most ``ambiguity_ratio`` = 2 times the best),
        ``objective``, ``log_likelihood``, ``converged``, ``n_iter`` and ``failed``
        per replicate. :func:`gmmflow.compare` adds the bootstrap sd and
        percentile interval beside the posterior's when the group is present.

    Warns
    -----
    AmbiguousLabellingWarning
        If more than 10% of the replicates had an ambiguous labelling (their
        component-wise intervals mix components).
    """
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {', '.join(map(repr, KINDS))}; got {kind!r}.")
    n_boot = check_int(n_boot, "n_boot", 2)
    seed = check_seed(seed)
    max_iter = check_int(max_iter, "max_iter", 1)
    tol = check_float(tol, "tol", 0.0)
    model, pivot, _ = em_params(idata)
    if model.noise:
        raise ValueError("bootstrap does not refit noise models (GMM(noise=True)) yet: its replicates would need "
                         "the noise weight relabelled and, for kind='parametric', the noise's region simulated. "
                         "Use sample_posterior for the uncertainty of a noise model.")
    hyper = hyperparameters_from_idata(idata)
    weights = sample_weights(idata)
    data = _matching_data(idata, X, kind, weights, idata.attrs.get(S.MISSING_ATTR) == "marginalize")
    shift = pivot.weights @ pivot.means  # the mixture mean: the frame the refits run in
    refit = dict(model=model, pivot=pivot, hyper=hyper, max_iter=max_iter, tol=tol, shift=shift)
    if kind == "parametric":
        results = _parametric(data, n_boot, seed, **refit)
    elif is_chunked(X):
        results = _chunked(data, weights, kind, n_boot, seed, **refit)
    else:
        results = _in_memory(data, weights, kind, n_boot, seed, **refit)
    boot = _relabelled(results, pivot, kind, seed)
    if boot.ambiguous_share > AMBIGUOUS_WARN_SHARE:
        warnings.warn(
            f"{boot.ambiguous_share:.0%} of the {n_boot} bootstrap replicates had an ambiguous labelling "
            f"(a second assignment to the EM components cost at most {AMBIGUITY_RATIO:g} times the best): "
            "their intervals mix components. The components may not be identified at this sample size; "
            "consider fewer components (em_bootstrap.relabel_ambiguous marks the replicates).",
            AmbiguousLabellingWarning, stacklevel=2)
    return with_bootstrap(idata, boot)


# --------------------------------------------------------------------------
# the data
# --------------------------------------------------------------------------
def _matching_data(idata, X, kind: str, weights, missing: bool):
    """``X`` as a data record, checked to be the data ``idata`` was fitted on (NaN cells accepted
    when it was fitted with ``missing="marginalize"``)."""
    n_obs = int(idata.attrs.get("n_obs", -1))
    d = idata[S.EM_ESTIMATE].sizes[S.FEATURE]
    chunked = is_chunked(X)
    data = as_chunked_matrix(X, missing=True) if chunked else as_data_matrix(X, missing=True)
    if not missing and (data.n_missing if chunked else np.isnan(data.values).any()):
        raise ValueError("X has missing values (NaN) but the result was fitted on complete data; pass the data "
                         "the fit was made on (to bootstrap a fit with missing cells, fit it with "
                         "missing='marginalize' first).")
    if data.shape != (n_obs, d):
        raise ValueError(f"X has shape {data.shape} but the result was fitted on {n_obs} rows of {d} "
                         "feature(s); pass the data the fit was made on.")
    if kind == "parametric" and (chunked or weights is not None):
        raise ValueError("kind='parametric' simulates new in-memory data sets from an unweighted fit; "
                         "use kind='nonparametric' or 'weighted' for chunked input or a weighted fit.")
    if not chunked and S.has_groups(idata, S.OBSERVED_DATA):
        stored = observed_values(idata)
        differ = np.flatnonzero(np.any((data.values != stored) & ~(np.isnan(data.values) & np.isnan(stored)), axis=1))
        if differ.size:
            raise ValueError(f"X is not the data this result was fitted on (row {int(differ[0])} differs "
                             f"from the stored observed_data, {differ.size} row(s) in all); pass the same data.")
    return data


# --------------------------------------------------------------------------
# the refits
# --------------------------------------------------------------------------
def _groups(n_boot: int, rows: int):
    """Replicate indices in groups of at most ``GROUP_ELEMENTS // rows``."""
    size = max(1, min(n_boot, GROUP_ELEMENTS // max(rows, 1)))
    return [np.arange(a, min(a + size, n_boot)) for a in range(0, n_boot, size)]


def _in_memory(data, weights, kind, n_boot, seed, **refit):
    def replicate_weights(reps):
        W = resampling_weights(kind, seed, reps, data.values.shape[0])
        return W if weights is None else W * weights

    return weighted_refits(data.values, replicate_weights, n_boot, **refit)


def weighted_refits(X: np.ndarray, replicate_weights, n_replicates: int, *, model: GMM, pivot: Params, hyper,
                    max_iter: int, tol: float, shift: np.ndarray) -> list[EMResult | None]:
    """EM refits of in-memory rows ``X`` (NaN cells marginalised) from ``pivot``, replicate r with
    its own row of weights: ``replicate_weights(reps)`` gives the (len(reps), n) weights of the
    replicates ``reps``. Replicates advance together, in groups of at most ``GROUP_ELEMENTS``
    weights; a replicate whose fit fails is None."""
    n, d = X.shape
    results = []
    for reps in _groups(n_replicates, n):
        chunk = default_chunk_size(model.n_components, d, reps.size)
        blocks = row_blocks(X, replicate_weights(reps), chunk, shift, default_n_threads(n, chunk, os.cpu_count() or 1))
        results += fit_replicates(blocks, pivot, reps.size, hyper, model.reg_covar, max_iter, tol)
    return results


def _chunked(data, weights, kind, n_boot, seed, *, model: GMM, pivot, hyper, max_iter, tol, shift):
    import dask
    import dask.array as da

    X = data.values
    sizes = np.asarray(X.chunks[0])
    n, d = X.shape
    results = []
    for reps in _groups(n_boot, int(sizes.max())):
        if kind == "nonparametric":
            totals = chunk_totals(seed, reps, sizes)
            parts = [dask.delayed(multinomial_chunk)(seed, reps, c, totals[:, c], int(m))
                     for c, m in enumerate(sizes)]
        else:
            parts = [dask.delayed(exponential_chunk)(seed, reps, c, int(m)) for c, m in enumerate(sizes)]
        W = da.concatenate([da.from_delayed(p, shape=(reps.size, int(m)), dtype=np.float64)
                            for p, m in zip(parts, sizes)], axis=1)
        if kind == "weighted":
            W = W * (n / W.sum(axis=1, keepdims=True).compute())
        if weights is not None:
            W = W * da.from_array(weights, chunks=(tuple(sizes),))
        blocks = chunked_row_blocks(X, default_chunk_size(model.n_components, d, reps.size), shift, W,
                                    data.n_missing)
        results += fit_replicates(blocks, pivot, reps.size, hyper, model.reg_covar, max_iter, tol)
    return results


def _parametric(data, n_boot, seed, *, model: GMM, pivot: Params, hyper, max_iter, tol, shift):
    n = data.values.shape[0]
    missing = np.isnan(data.values)
    results = []
    for b in range(n_boot):
        Xb, _ = sample_mixture(replicate_stream(seed, b), n, pivot.weights, pivot.means, pivot.chol,
                               pivot.covariance_type)
        Xb[missing] = np.nan  # the data's own cells go missing (the pattern held fixed)
        blocks = row_blocks(Xb, shift=shift)
        results += fit_replicates(blocks, pivot, 1, hyper, model.reg_covar, max_iter, tol)
    return results


# --------------------------------------------------------------------------
# relabelling
# --------------------------------------------------------------------------
def _relabelled(results: list[EMResult | None], pivot: Params, kind: str, seed: int) -> BootstrapSample:
    """The replicates relabelled to the pivot; failed ones NaN."""
    K, d = pivot.means.shape
    B = len(results)
    failed = np.array([r is None for r in results])
    ok = [r for r in results if r is not None]
    w = np.full((B, K), np.nan)
    mu = np.full((B, K, d), np.nan)
    cov = np.full((B, K, d, d), np.nan)
    perm = np.full((B, K), -1, dtype=np.int64)
    ambiguous = np.zeros(B, dtype=bool)
    if ok:
        good = np.flatnonzero(~failed)
        raw = (np.stack([r.params.weights for r in ok]), np.stack([r.params.means for r in ok]),
               full_covariances(np.stack([r.params.cov for r in ok]), pivot.covariance_type, K, d))
        w[good], mu[good], cov[good], perm[good], costs = relabel_to_pivot(pivot, *raw)
        ambiguous[good] = ambiguous_labellings(costs, perm[good])

    def per_replicate(f, fill, dtype):
        return np.array([fill if r is None else f(r) for r in results], dtype=dtype)

    return BootstrapSample(
        kind=kind, seed=seed, w=w, mu=mu, cov=cov, permutation=perm, ambiguous=ambiguous, failed=failed,
        objective=per_replicate(lambda r: r.objective, np.nan, np.float64),
        log_likelihood=per_replicate(lambda r: r.log_likelihood, np.nan, np.float64),
        converged=per_replicate(lambda r: r.converged, False, bool),
        n_iter=per_replicate(lambda r: r.n_iter, 0, np.int64),
        ambiguity_ratio=AMBIGUITY_RATIO,
    )

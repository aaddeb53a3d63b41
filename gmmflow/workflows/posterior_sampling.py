"""Posterior sampling: NUTS or Gibbs from the EM estimate, relabelled, in one InferenceData.

The walk of a call: check everything (model, data, options, memory) ->
the EM estimate (fitted here as a record, or read once from ``em``) -> raw
draws, from a NUTS backend on the PyMC model with EM's exact
hyper-parameters (``nuts_backends``) or from the conjugate Gibbs sampler on
the EM kernels (``gibbs_sampling``) -> relabel every draw to the EM
estimate -> pointwise log-likelihood and assignment probabilities per draw
(``core``) -> one ``InferenceData`` (``results``) -> ``diagnose``.
"""

from __future__ import annotations

from collections.abc import Callable

import arviz as az
import numpy as np
from threadpoolctl import threadpool_limits

from gmmflow import defaults
from gmmflow import schema as S
from gmmflow.checks import check_int, check_missing, check_seed
from gmmflow.core.em_steps import Params, log_resp_and_norm
from gmmflow.core.gaussian import compact_covariances, full_covariances, sample_mixture
from gmmflow.core.missing_data import row_blocks
from gmmflow.core.relabel import relabel_to_pivot
from gmmflow.core.row_blocks import default_chunk_size
from gmmflow.defaults import N_INIT
from gmmflow.exceptions import SamplingError
from gmmflow.inputs.alignment import align_to_features
from gmmflow.inputs.chunked import is_chunked
from gmmflow.inputs.matrix import DataMatrix, as_data_matrix
from gmmflow.models.pymc_model import covariance_value_name
from gmmflow.models.spec import GMM
from gmmflow.resources import check_memory, posterior_bytes
from gmmflow.results.from_idata import (
    check_fingerprint,
    check_fitted_on,
    dataset_params,
    em_params,
    fitted_features,
    hyperparameters_from_idata,
    model_from_idata,
    recorded_fingerprint,
)
from gmmflow.results.records import PosteriorSample
from gmmflow.results.to_idata import em_groups, em_inference_data, posterior_inference_data
from gmmflow.workflows import gibbs_sampling, nuts_backends
from gmmflow.workflows.diagnostics import diagnose, sampling_status, warn_failed_checks
from gmmflow.workflows.em_fit import check_model, check_rows, fit_em_record
from gmmflow.workflows.gibbs_sampling import GIBBS, gibbs_bytes, gibbs_data, pointwise_draws, stored_data, stored_rows
from gmmflow.workflows.modes import distinct_optima
from gmmflow.workflows.sampler_options import INITS, SamplerOptions


def _start_values(params: Params, model: GMM) -> dict:
    """EM estimate as constrained values of the PyMC model's free variables."""
    return {"w": params.weights, "mu": params.means, covariance_value_name(model.covariance_type): params.cov}


def _check_init(init, backend: str) -> str:
    """``init`` checked, and against the backend (the ones that take a start point per chain)."""
    if init not in INITS:
        raise ValueError(f"init must be 'em' (every chain starts at the EM estimate) or 'restarts' (chains start "
                         f"from the distinct EM restart optima, best first); got {init!r}.")
    if init == "restarts" and backend in (GIBBS, "nutpie"):
        raise ValueError(f"init='restarts' needs a sampler that starts each chain at its own point: "
                         f"sampler='numpyro' or 'pymc' (NUTS), not {backend!r}.")
    return init


def restart_starts(restarts, model: GMM, chains: int, log_noise_density: float | None = None):
    """Chain c's start under ``init="restarts"``: the (c mod m)-th of the m distinct optima of the EM
    restarts (``em_restarts``, grouped by objective as :func:`~gmmflow.workflows.modes.find_modes`
    groups them, best first; restarts with a non-finite objective skipped), each represented by its
    best restart. Returns the per-chain start values and the restart index of each chain."""
    objective = restarts["objective"].values.astype(float)
    optima = distinct_optima([r for r in range(objective.size) if np.isfinite(objective[r])], objective)
    chosen = [optima[c % len(optima)][0] for c in range(chains)]
    params = {r: dataset_params(restarts.isel({S.RESTART: r}), model, log_noise_density) for r in set(chosen)}
    return [_start_values(params[r], model) for r in chosen], chosen


def _check_em(em, model: GMM, X, gibbs: bool, missing: bool = False):
    """``(data record, blocks or None)`` of ``X`` matched to ``em``'s features, once ``em`` is checked to
    be an unweighted EM fit of ``model`` on these data (chunked data: by their fingerprint, hashed
    in the fit's blocks)."""
    if not isinstance(em, az.InferenceData) or not S.has_groups(em, S.EM_ESTIMATE):
        raise TypeError("em must be the InferenceData returned by gmmflow.fit_em.")
    if model_from_idata(em) != model:
        raise ValueError("em was fitted with a different model spec; refit EM with this model or pass em=None.")
    if hyperparameters_from_idata(em) is None:
        raise ValueError("em has no prior (an MLE fit): sampling needs the prior; fit EM with a prior.")
    fix = "pass the X em was fitted on (unweighted), or em=None to fit EM on X here"
    if gibbs and is_chunked(X):
        data, blocks = gibbs_data(model, X, recorded_fingerprint(em, "em", fix).block_rows, missing)
        check_fingerprint(em, data.fingerprint, "em", fix)
        return data, blocks
    data = align_to_features(_in_memory_data(X, missing), *fitted_features(em), missing=missing)
    check_fitted_on(em, data.values, data.features, data.named, "em", fix)
    return (data, None) if not gibbs else gibbs_data(model, data, missing=missing)


def _draw_arrays(raw: az.InferenceData, model: GMM, n_features: int):
    """(S, K), (S, K, d), (S, K, d, d) arrays of the raw draws, chains stacked (weights (S, K+1) for a
    noise model)."""
    post = raw[S.POSTERIOR]
    C, D = post.sizes[S.CHAIN], post.sizes[S.DRAW]
    K, t = model.n_components, model.covariance_type
    w = post["w"].values.reshape(C * D, K + model.noise)
    mu = post["mu"].values.reshape(C * D, K, n_features)
    c = post[covariance_value_name(t)].values
    c = c.reshape(C * D, *c.shape[2:])
    cov = np.stack([full_covariances(ci, t, K, n_features) for ci in c])
    return (C, D), w, mu, cov


def _draw_params(w, mu, cov, t, log_noise_density=None) -> Params:
    """The draws as core parameters stacked on a leading axis (Cholesky factors computed once, batched)."""
    return Params.from_cov(w, mu, compact_covariances(cov, t), t, log_noise_density=log_noise_density)


# draws per batched call of the pointwise densities: the whitened differences (draws, K, d, rows), the
# largest work array, hold about 2^18 numbers (2 MiB), small beside what resources.posterior_bytes counts
_POINTWISE_ELEMENTS = 1 << 18


def _pointwise(X, draws: Params):
    """Per draw: pointwise log-likelihood (S, n) and mean responsibilities (n, K); rows with
    missing cells contribute the density of their observed coordinates.

    Complete rows are evaluated for many draws in one batched call
    (:func:`~gmmflow.core.em_steps.log_resp_and_norm` with the draws on the
    leading axis); rows with missing cells draw by draw through their blocks.
    """
    n_draws, n = draws.weights.shape[0], X.shape[0]
    loglik = np.empty((n_draws, n))
    resp_sum = np.zeros((n, draws.weights.shape[1]))
    if np.isnan(X).any():
        blocks = row_blocks(X, chunk_size=default_chunk_size(*draws.means.shape[1:]))
        for s in range(n_draws):
            log_resp, loglik[s] = blocks.log_resp_and_norm(draws.take(s))
            resp_sum += np.exp(log_resp)
        return loglik, resp_sum / n_draws
    XT = np.ascontiguousarray(X.T)
    step = max(1, _POINTWISE_ELEMENTS // (draws.weights.shape[1] * X.shape[1] * n))
    for a in range(0, n_draws, step):
        part = draws.take(slice(a, a + step))
        log_resp, loglik[a:a + step] = log_resp_and_norm(XT, np.log(part.weights), part.means, part.precision,
                                                         part.covariance_type, part.log_noise_density)
        resp_sum += np.exp(log_resp).sum(axis=0).T
    return loglik, resp_sum / n_draws


def _relabelled(w, mu, cov, pivot: Params, relabel: bool):
    """Draws relabelled to the pivot (or not), and the permutation applied to each; a noise
    model's noise weight (last) keeps its place."""
    S_, K, d = mu.shape
    if not relabel:
        return w, mu, cov, np.broadcast_to(np.arange(K), (S_, K)).copy()
    w_gauss, mu, cov, perm = relabel_to_pivot(pivot, w[:, :K], mu, cov)[:4]
    return np.concatenate([w_gauss, w[:, K:]], axis=1), mu, cov, perm


NO_PRIOR = ("sample_posterior needs a prior; GMM(..., prior=None) is for the MLE only. Without a prior the "
            "posterior is improper (a component with few or no rows has an unbounded mean and covariance), so "
            "no sampler can draw from it: use GMM(..., prior='default').")


def sample_posterior(
    model: GMM,
    X,
    *,
    em: az.InferenceData | None = None,
    seed: int | None = None,
    relabel: bool = True,
    posterior_predictive: bool = False,
    em_kwargs: dict | None = None,
    missing: str = defaults.MISSING,
    init: str = "em",
    **sampling,
) -> az.InferenceData:
    """Sample the exact posterior of ``model`` given ``X``, with NUTS or a conjugate Gibbs sampler.

    Runs EM first (unless ``em`` is given), starts every chain at the EM
    estimate (NUTS: plus a small seeded jitter), samples, and relabels every
    draw to the EM estimate (label switching).

    Parameters
    ----------
    model : GMM
        Must have a prior.
    X : array_like (n, d), DataFrame or DataArray
        With ``sampler="gibbs"`` also a dask array, a dask-backed DataArray
        or a zarr store path (as :func:`gmmflow.fit_em` takes), sampled
        chunk by chunk under the active dask scheduler.
    em : InferenceData, optional
        An unweighted ``fit_em`` result of the same model on the same data
        (its hyper-parameters and estimate are used). Checked against ``X``
        by the fingerprint it records: other data (other values, rows or
        names) or a weighted fit are refused. ``X`` is matched to its
        features by name when both carry names.
    seed : int, optional
        Same seed and sampler, same draws (Gibbs: whatever the chunking or scheduler).
    relabel : bool, default True
        False keeps the raw draws (``relabel_permutation`` is then the identity).
    posterior_predictive : bool, default False
        Add ``posterior_predictive.x`` (one replicate data set per draw).
    em_kwargs : dict, optional
        Passed to ``fit_em`` when ``em`` is None (default ``n_init=10``).
    missing : {"error", "marginalize"}, default "error"
        As ``fit_em``'s: with ``"marginalize"`` the PyMC model's likelihood is
        the density of each row's observed coordinates (rows grouped by
        missingness pattern, :mod:`gmmflow.models.pymc_missing`), so NUTS
        samples the posterior given the observed values; ``log_likelihood`` is
        that density per row. ``em`` must then be fitted with it too. In-memory
        data only; ``sampler="gibbs"`` draws the missing cells from their
        conditional given the row's observed values and component in every sweep.
    init : {"em", "restarts"}, default "em"
        Where the chains start. ``"em"``: every chain at the EM estimate.
        ``"restarts"``: chain c at the (c mod m)-th best of the m distinct
        optima the EM restarts reached (restarts grouped by objective, as
        :func:`gmmflow.find_modes` groups them), so that chains explore the
        modes EM found; with one distinct optimum it is ``"em"``. NUTS
        backends ``"numpyro"`` and ``"pymc"`` only (``"auto"`` resolves to
        numpyro when installed). Either way a small seeded jitter is added, draws
        are relabelled to the EM estimate, and ``attrs["chain_init"]`` records
        the choice (``attrs["chain_init_restarts"]``: the restart each chain started from).
    **sampling
        The sampling options of :class:`~gmmflow.workflows.sampler_options.SamplerOptions`:
        ``draws`` (1000), ``tune`` (1000), ``chains`` (4), ``sampler``
        (``"auto"``: the fastest installed NUTS backend, see
        :mod:`~gmmflow.workflows.nuts_backends`; or ``"gibbs"``), ``progressbar`` (True).

    Returns
    -------
    arviz.InferenceData
        ``posterior`` (w, mu, cov; relabelled), ``sample_stats`` (with
        ``relabel_permutation``), ``log_likelihood``, ``observed_data``,
        ``posterior_assignment``, the EM groups, and ``posterior_predictive`` if asked.
        With ``sampler="gibbs"`` the groups that grow with rows x draws
        (``log_likelihood``, ``posterior_assignment``, ``posterior_predictive``)
        are computed on the draws numbered in their ``draw`` coordinate, evenly
        thinned when rows x draws exceed 5e7 values, and left out (with
        ``observed_data``) for chunked data above 1,000,000 rows; attrs
        ``pointwise_draws`` and ``observed_data_stored`` say which.

    Warns
    -----
    SamplingWarning
        Divergences, r_hat > 1.01, bulk/tail ESS < 400, tree depth saturation,
        fewer than 4 chains. The result is still returned, with
        ``attrs["sampling_status"]`` = ``"warnings: <failed checks>"`` (else ``"ok"``).

    Raises
    ------
    SamplingError
        The sampler failed (e.g. could not initialise); ``err.partial`` is the
        EM result, marked ``attrs["sampling_status"] = "failed: ..."``.
    MemoryError
        The draws would not fit in memory (estimated before any work).
    """
    check_model(model)
    options = SamplerOptions.from_kwargs("sample_posterior", sampling)
    if model.prior is None:
        raise ValueError(NO_PRIOR)
    gibbs = options.sampler == GIBBS
    marginalize = check_missing(missing) == "marginalize"
    _check_noise_options(model, posterior_predictive)
    # NaN rejected here unless marginalized, before any PyMC model (which would impute)
    if em is not None:  # X is matched to em's features
        data, blocks = _check_em(em, model, X, gibbs, marginalize)
    else:
        data, blocks = gibbs_data(model, X, missing=marginalize) if gibbs else (_in_memory_data(X, marginalize), None)
    check_rows(data.shape, model)
    seed = check_seed(seed)
    backend = nuts_backends.available_sampler(options.sampler)
    init = _check_init(init, backend)
    n_init = 0 if em is not None else check_int((em_kwargs or {}).get("n_init", N_INIT), "em_kwargs['n_init']", 1)
    kept = _check_memory(data, model, options, posterior_predictive, gibbs, n_init)
    em_seed, sampler_seed, pp_seed = np.random.SeedSequence(seed).spawn(3)
    if em is None:
        fit = fit_em_record(model, data if isinstance(data, DataMatrix) else X,
                            seed=int(em_seed.generate_state(1)[0]),
                            **({"n_init": N_INIT, "missing": missing} | (em_kwargs or {})))
        pivot, hyper, start_groups, start_seed = fit.params, fit.hyper, em_groups(fit), fit.seed
        partial_result = lambda: em_inference_data(fit)  # noqa: E731 - built only if sampling fails
    else:
        pivot, hyper = em_params(em)[1], hyperparameters_from_idata(em)
        start_groups, start_seed = {g: em[g] for g in S.EM_GROUPS}, int(em.attrs.get("seed", -1))
        partial_result = em.copy

    extra = {"chain_init": init}
    start = _start_values(pivot, model)
    if init == "restarts":
        start, extra["chain_init_restarts"] = restart_starts(start_groups[S.EM_RESTARTS], model, options.chains,
                                                       pivot.log_noise_density)
    if gibbs:
        def draw():
            return gibbs_sampling.run(blocks, pivot, hyper, options.draws, options.tune, options.chains,
                                      sampler_seed, options.progressbar)
    else:
        def draw():
            return nuts_backends.run(backend, model, data.values, hyper, start, options.draws,
                                     options.tune, options.chains, seed, np.random.default_rng(sampler_seed),
                                     options.progressbar, pivot.log_noise_density)

    raw = _run_sampler(backend, draw, partial_result)
    record = stored_data(data) if gibbs else data
    shape, w, mu, cov = _draw_arrays(raw, model, data.shape[1])
    w, mu, cov, perm = _relabelled(w, mu, cov, pivot, relabel)
    loglik, assignment, predictive = _pointwise_groups(record, w, mu, cov, model.covariance_type, shape, kept,
                                                       posterior_predictive, pp_seed, pivot.log_noise_density)
    if gibbs:
        extra |= dict(pointwise_draws=len(kept), observed_data_stored=int(record.values.shape[0] > 0))
    if not isinstance(data, DataMatrix):  # chunked: the fingerprint of the scan, not of the rows kept
        extra[S.FINGERPRINT_ATTR] = data.fingerprint.to_json()
    sample = PosteriorSample(shape=shape, w=w, mu=mu, cov=cov, permutation=perm, log_likelihood=loglik,
                             assignment=assignment, sample_stats=raw[S.SAMPLE_STATS], predictive=predictive,
                             sampler=backend, draws=options.draws, tune=options.tune, relabelled=relabel,
                             seed=seed, method=GIBBS if gibbs else "nuts", pointwise_draws=kept,
                             n_obs=data.shape[0], attrs=extra)
    idata = posterior_inference_data(model, record, hyper, start_groups, start_seed, sample, pivot)
    idata.attrs |= {S.MISSING_ATTR: missing, S.N_MISSING_ATTR: int(np.isnan(record.values).sum())}
    checks = diagnose(idata)
    idata.attrs[S.SAMPLING_STATUS_ATTR] = sampling_status(checks)
    warn_failed_checks(checks)
    return idata


def _check_noise_options(model: GMM, posterior_predictive: bool) -> None:
    """Refuse what a noise model cannot do, before any work."""
    if model.noise and posterior_predictive:
        raise ValueError("posterior_predictive=True cannot draw a noise model's rows: the uniform component's "
                         "region is not modelled, only its volume. Sample with posterior_predictive=False.")


def _in_memory_data(X, missing: bool = False) -> DataMatrix:
    if is_chunked(X):
        raise TypeError("NUTS needs in-memory data, and X is chunked (a dask array or zarr store): use "
                        "sampler='gibbs', which samples chunked data chunk by chunk, or load X into memory.")
    return as_data_matrix(X, missing=missing)


def _check_memory(data, model: GMM, options: SamplerOptions, predictive: bool, gibbs: bool, n_init: int):
    """Refuse a run whose arrays would not fit, before any work; the Gibbs pointwise draws (else None)."""
    n, d = data.shape
    n_components = model.n_components
    C, D = options.chains, options.draws
    what = f"sample_posterior with {C} chains x {D} draws on {n} rows"
    if not gibbs:
        check_memory(posterior_bytes(n, d, n_components, C, D, predictive, model.covariance_type, n_init), what,
                     "draw fewer samples, use fewer chains, or thin the data")
        return None
    n_stored = stored_rows(data)
    kept = pointwise_draws(n_stored, d, C, D, predictive)
    check_memory(gibbs_bytes(n if isinstance(data, DataMatrix) else 0, n_stored, d, n_components, C, D,
                             len(kept), predictive),
                 what, "draw fewer samples or use fewer chains, or pass the data as a dask array or zarr store")
    return kept


def _pointwise_groups(record: DataMatrix, w, mu, cov, covariance_type: str, shape, kept, predictive: bool,
                      pp_seed, log_noise_density=None):
    """Pointwise log-likelihood (S', n), assignment probabilities (n, K) and, if asked, predictive
    replicates (S', n, d), on the draws numbered ``kept`` in every chain (all when None); Nones when
    the rows are not stored."""
    if record.values.shape[0] == 0:
        return None, None, None
    C, D = shape
    index = slice(None) if kept is None else (np.arange(C)[:, None] * D + kept).ravel()
    with threadpool_limits(limits=1, user_api="blas"):  # small batched d x d products: see core.em_driver
        draw_params = _draw_params(w[index], mu[index], cov[index], covariance_type, log_noise_density)
        loglik, assignment = _pointwise(record.values, draw_params)
    replicates = None
    if predictive:
        rng = np.random.default_rng(pp_seed)
        n = record.values.shape[0]
        replicates = np.stack([sample_mixture(rng, n, p.weights, p.means, p.chol, covariance_type)[0]
                               for p in map(draw_params.take, range(draw_params.weights.shape[0]))])
    return loglik, assignment, replicates


def _run_sampler(backend: str, draw: Callable[[], az.InferenceData], partial_result):
    """Raw draws from ``draw()``; a failure becomes a SamplingError carrying the EM start."""
    try:
        return draw()
    except Exception as err:  # the sampler's own errors vary by backend and version
        reason = " ".join(str(err).split()) or type(err).__name__
        partial = partial_result()
        partial.attrs[S.SAMPLING_STATUS_ATTR] = f"failed: {reason}"
        name, other = ("The Gibbs sampler", "nutpie") if backend == GIBBS else (f"NUTS ({backend})", "pymc")
        raise SamplingError(
            f"{name} failed: {reason}. The EM estimate it was to start from is in "
            "err.partial (attrs['sampling_status'] marks it); check the model and data, or try "
            f"sampler={other!r}.", partial=partial) from err

"""Posterior sampling: NUTS from the EM estimate, relabelled, in one InferenceData.

The walk of a call: check everything (model, data, options, memory) ->
the EM estimate (fitted here as a record, or read once from ``em``) -> the
PyMC model with EM's exact hyper-parameters -> a NUTS backend -> relabel
every draw to the EM estimate -> pointwise log-likelihood and assignment
probabilities per draw (``core``) -> one ``InferenceData`` (``results``).
"""

from __future__ import annotations

import arviz as az
import numpy as np

from gmmflow import schema as S
from gmmflow.checks import check_int, check_seed
from gmmflow.core.em_steps import Params
from gmmflow.core.gaussian import compact_covariances, full_covariances, sample_mixture
from gmmflow.core.hyperparameters import Hyperparameters
from gmmflow.core.relabel import relabel_to_pivot
from gmmflow.core.row_blocks import ArrayBlocks
from gmmflow.defaults import N_INIT
from gmmflow.exceptions import SamplingError
from gmmflow.inputs.alignment import align_to_features
from gmmflow.inputs.matrix import DataMatrix, as_data_matrix
from gmmflow.models.pymc_model import covariance_value_name
from gmmflow.models.spec import GMM
from gmmflow.resources import check_memory, posterior_bytes
from gmmflow.results.from_idata import (
    check_fitted_on,
    em_params,
    fitted_features,
    hyperparameters_from_idata,
    model_from_idata,
)
from gmmflow.results.records import PosteriorSample
from gmmflow.results.to_idata import em_groups, em_inference_data, posterior_inference_data
from gmmflow.workflows import nuts_backends
from gmmflow.workflows.diagnostics import diagnose, sampling_status, warn_failed_checks
from gmmflow.workflows.em_fit import check_model, check_rows, fit_em_record
from gmmflow.workflows.sampler_options import SamplerOptions


def _start_values(params: Params, model: GMM) -> dict:
    """EM estimate as constrained values of the PyMC model's free variables."""
    return {"w": params.weights, "mu": params.means, covariance_value_name(model.covariance_type): params.cov}


def _check_em(em, model: GMM, X) -> DataMatrix:
    """``X`` matched to ``em``'s features, once ``em`` is checked to be an EM fit of ``model`` on these data."""
    if not isinstance(em, az.InferenceData) or not S.has_groups(em, S.EM_ESTIMATE):
        raise TypeError("em must be the InferenceData returned by gmmflow.fit_em.")
    if model_from_idata(em) != model:
        raise ValueError("em was fitted with a different model spec; refit EM with this model or pass em=None.")
    if hyperparameters_from_idata(em) is None:
        raise ValueError("em has no prior (an MLE fit): NUTS needs the prior; fit EM with a prior.")
    data = align_to_features(X, *fitted_features(em))
    check_fitted_on(em, data.values, data.features, data.named, "em",
                    "pass the X em was fitted on (unweighted), or em=None to fit EM on X here")
    return data


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


def _draw_params(w, mu, cov, t, log_noise_density=None) -> list[Params]:
    """Each draw as core parameters (its Cholesky factors computed once)."""
    return [Params.from_cov(w[s], mu[s], compact_covariances(cov[s], t), t, log_noise_density=log_noise_density)
            for s in range(w.shape[0])]


def _pointwise(X, draws: list[Params]):
    """Per draw: pointwise log-likelihood (S, n) and mean responsibilities (n, K)."""
    blocks = ArrayBlocks(X)
    loglik = np.empty((len(draws), X.shape[0]))
    resp_sum = np.zeros((X.shape[0], draws[0].weights.shape[0]))
    for s, p in enumerate(draws):
        log_resp, loglik[s] = blocks.log_resp_and_norm(p)
        resp_sum += np.exp(log_resp)
    return loglik, resp_sum / len(draws)


def _relabelled(w, mu, cov, pivot: Params, relabel: bool):
    """Draws relabelled to the pivot (or not), and the permutation applied to each; a noise
    model's noise weight (last) keeps its place."""
    S_, K, d = mu.shape
    if not relabel:
        return w, mu, cov, np.broadcast_to(np.arange(K), (S_, K)).copy()
    w_gauss, mu, cov, perm = relabel_to_pivot(pivot, w[:, :K], mu, cov)[:4]
    return np.concatenate([w_gauss, w[:, K:]], axis=1), mu, cov, perm


def sample_posterior(
    model: GMM,
    X,
    *,
    em: az.InferenceData | None = None,
    seed: int | None = None,
    relabel: bool = True,
    posterior_predictive: bool = False,
    em_kwargs: dict | None = None,
    **sampling,
) -> az.InferenceData:
    """Sample the exact posterior of ``model`` given ``X`` with NUTS.

    Runs EM first (unless ``em`` is given), starts every chain at the EM
    estimate plus a small seeded jitter, samples the marginalised model, and
    relabels every draw to the EM estimate (label switching).

    Parameters
    ----------
    model : GMM
        Must have a prior.
    X : array_like (n, d), DataFrame or DataArray
    em : InferenceData, optional
        An unweighted ``fit_em`` result of the same model on the same data
        (its hyper-parameters and estimate are used). Checked against ``X``
        by the fingerprint it records: other data (other values, rows or
        names) or a weighted fit are refused. ``X`` is matched to its
        features by name when both carry names.
    seed : int, optional
        Same seed and backend, same draws.
    relabel : bool, default True
        False keeps the raw draws (``relabel_permutation`` is then the identity).
    posterior_predictive : bool, default False
        Add ``posterior_predictive.x`` (one replicate data set per draw).
    em_kwargs : dict, optional
        Passed to ``fit_em`` when ``em`` is None (default ``n_init=10``).
    **sampling
        The sampling options of :class:`~gmmflow.workflows.sampler_options.SamplerOptions`:
        ``draws`` (1000), ``tune`` (1000), ``chains`` (4), ``sampler``
        (``"auto"``: nutpie when installed, else ``"pymc"``), ``progressbar`` (True).

    Returns
    -------
    arviz.InferenceData
        ``posterior`` (w, mu, cov; relabelled), ``sample_stats`` (with
        ``relabel_permutation``), ``log_likelihood``, ``observed_data``,
        ``posterior_assignment``, the EM groups, and ``posterior_predictive`` if asked.

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
    if model.prior is None:
        raise ValueError("sample_posterior needs a prior; GMM(..., prior=None) is for the MLE only.")
    if model.noise and posterior_predictive:
        raise ValueError("posterior_predictive=True cannot draw a noise model's rows: the uniform component's "
                         "region is not modelled, only its volume. Sample with posterior_predictive=False.")
    # NaN rejected here, before any PyMC model (which would impute); with em, X is matched to its features
    data = as_data_matrix(X) if em is None else _check_em(em, model, X)
    check_rows(data.shape, model)
    options = SamplerOptions.from_kwargs("sample_posterior", sampling)
    seed = check_seed(seed)
    backend = nuts_backends.available_sampler(options.sampler)
    n_init = 0 if em is not None else check_int((em_kwargs or {}).get("n_init", N_INIT), "em_kwargs['n_init']", 1)
    check_memory(posterior_bytes(*data.shape, model.n_components, options.chains, options.draws,
                                 posterior_predictive, model.covariance_type, n_init),
                 f"sample_posterior with {options.chains} chains x {options.draws} draws on {data.shape[0]} rows",
                 "draw fewer samples, use fewer chains, or thin the data")
    em_seed, jitter_seed, pp_seed = np.random.SeedSequence(seed).spawn(3)
    if em is None:
        fit = fit_em_record(model, data, seed=int(em_seed.generate_state(1)[0]),
                            **({"n_init": N_INIT} | (em_kwargs or {})))
        pivot, hyper, start_groups, start_seed = fit.params, fit.hyper, em_groups(fit), fit.seed
        partial_result = lambda: em_inference_data(fit)  # noqa: E731 - built only if sampling fails
    else:
        pivot, hyper = em_params(em)[1], hyperparameters_from_idata(em)
        start_groups, start_seed = {g: em[g] for g in S.EM_GROUPS}, int(em.attrs.get("seed", -1))
        partial_result = em.copy

    raw = _run_sampler(backend, model, data, hyper, pivot, options, seed, jitter_seed, partial_result)
    d, t = data.shape[1], model.covariance_type
    shape, w, mu, cov = _draw_arrays(raw, model, d)
    w, mu, cov, perm = _relabelled(w, mu, cov, pivot, relabel)
    draw_params = _draw_params(w, mu, cov, t, pivot.log_noise_density)
    loglik, assignment = _pointwise(data.values, draw_params)
    predictive = None
    if posterior_predictive:
        rng = np.random.default_rng(pp_seed)
        predictive = np.stack([
            sample_mixture(rng, data.shape[0], p.weights, p.means, p.chol, t)[0] for p in draw_params
        ])
    sample = PosteriorSample(shape=shape, w=w, mu=mu, cov=cov, permutation=perm, log_likelihood=loglik,
                             assignment=assignment, sample_stats=raw[S.SAMPLE_STATS], predictive=predictive,
                             sampler=backend, draws=options.draws, tune=options.tune, relabelled=relabel,
                             seed=seed)
    idata = posterior_inference_data(model, data, hyper, start_groups, start_seed, sample, pivot)
    checks = diagnose(idata)
    idata.attrs[S.SAMPLING_STATUS_ATTR] = sampling_status(checks)
    warn_failed_checks(checks)
    return idata


def _run_sampler(backend: str, model: GMM, data, hyper: Hyperparameters, pivot: Params,
                 options: SamplerOptions, seed: int, jitter_seed, partial_result):
    """Raw NUTS draws of the PyMC model started at ``pivot``; a failure becomes a SamplingError."""
    log_volume = None if pivot.log_noise_density is None else -pivot.log_noise_density
    pm_model = model.pymc_model(data, hyperparameters=hyper, noise_log_volume=log_volume)
    try:
        return nuts_backends.run(backend, pm_model, _start_values(pivot, model), options.draws, options.tune,
                                 options.chains, seed, np.random.default_rng(jitter_seed), options.progressbar)
    except Exception as err:  # the sampler's own errors vary by backend and version
        reason = " ".join(str(err).split()) or type(err).__name__
        partial = partial_result()
        partial.attrs[S.SAMPLING_STATUS_ATTR] = f"failed: {reason}"
        raise SamplingError(
            f"NUTS ({backend}) failed: {reason}. The EM estimate it was to start from is in "
            "err.partial (attrs['sampling_status'] marks it); check the model and data, or try "
            "sampler='pymc'.", partial=partial) from err

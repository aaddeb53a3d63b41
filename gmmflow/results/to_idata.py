"""Records to ``InferenceData``: the one place result groups are built.

Layout and names are those of :mod:`gmmflow.schema`. Root attrs hold only
netCDF-storable types (str, int, float): the package version, the model spec
and the resolved prior as JSON, the seed, the covariance type, the
creation time as ISO text, and the fingerprint of the data fitted
(``data_fingerprint``, JSON of :class:`~gmmflow.inputs.fingerprint.DataFingerprint`).
"""

from __future__ import annotations

import json
from datetime import datetime, timezone

import arviz as az
import numpy as np
import pandas as pd
import xarray as xr

from gmmflow import schema as S
from gmmflow._version import __version__
from gmmflow.core.em_driver import EMResult
from gmmflow.core.em_steps import Params
from gmmflow.core.gaussian import full_covariances
from gmmflow.core.hyperparameters import Hyperparameters
from gmmflow.inputs.fingerprint import DataFingerprint
from gmmflow.models.spec import GMM
from gmmflow.results.records import BootstrapSample, CalibrationRecord, EMFit, PosteriorSample


def _coords(features, n_components, **extra) -> dict:
    return {S.COMPONENT: np.arange(n_components), S.FEATURE: list(features), S.FEATURE2: list(features)} | extra


def _dataset(variables: dict, coords: dict | xr.Coordinates) -> xr.Dataset:
    """A Dataset of ``{name: (dims, values)}`` with only the coordinates its dims use.

    ``coords`` as ``xr.Coordinates`` lends its indexes to each dataset instead of
    building a pandas index per coordinate and dataset again (most of the cost of
    a small fit's result groups).
    """
    used = {dim for dims, _ in variables.values() for dim in dims}
    if isinstance(coords, xr.Coordinates):
        coords = xr.Coordinates({k: coords.variables[k] for k in coords if k in used},
                                indexes={k: index for k, index in coords.xindexes.items() if k in used})
    else:
        coords = {k: v for k, v in coords.items() if k in used}
    return xr.Dataset(variables, coords=coords)


def parameter_variables(params: Params, n_features: int, lead: tuple = ()) -> dict:
    """``w``, ``mu`` and full ``cov`` of one parameter set as ``{name: (dims, values)}``;
    a noise model's last weight as ``noise_weight``."""
    K = params.means.shape[-2]
    cov = full_covariances(params.cov, params.covariance_type, K, n_features)
    variables = {
        "w": (lead + (S.COMPONENT,), params.weights[..., :K]),
        "mu": (lead + (S.COMPONENT, S.FEATURE), params.means),
        "cov": (lead + (S.COMPONENT, S.FEATURE, S.FEATURE2), cov),
    }
    if params.has_noise:
        variables[S.NOISE_WEIGHT] = (lead, params.weights[..., K])
    return variables


def per_row_variables(values: np.ndarray, n_components: int, name: str, noise_name: str) -> dict:
    """Per-row probabilities (n, K) as ``name (obs_id, component)``; a noise model's (n, K+1) also
    give their last column as ``noise_name (obs_id)``."""
    variables = {name: ((S.OBS, S.COMPONENT), values[:, :n_components])}
    if values.shape[1] > n_components:
        variables[noise_name] = ((S.OBS,), values[:, n_components])
    return variables


def _stacked_parameters(results: list[EMResult], n_features: int) -> dict:
    per_restart = [parameter_variables(r.params, n_features) for r in results]
    return {name: ((S.RESTART,) + dims, np.stack([p[name][1] for p in per_restart]))
            for name, (dims, _) in per_restart[0].items()}


def _scalars(results: list[EMResult], lead: tuple = ()) -> dict:
    pick = (lambda f: np.array([f(r) for r in results])) if lead else (lambda f: f(results[0]))
    return {
        "objective": (lead, pick(lambda r: float(r.objective))),
        "log_likelihood": (lead, pick(lambda r: float(r.log_likelihood))),
        "log_prior": (lead, pick(lambda r: float(r.log_prior))),
        "converged": (lead, pick(lambda r: bool(r.converged))),
        "n_iter": (lead, pick(lambda r: int(r.n_iter))),
    }


def root_attrs(model: GMM, hyper: Hyperparameters | None, seed: int, **extra) -> dict:
    """The root attrs every result carries, plus ``extra`` (JSON-encoded if not a str/int/float)."""
    attrs = {
        S.VERSION_ATTR: __version__,
        "inference_library": "gmmflow",
        "arviz_version": az.__version__,
        "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        S.MODEL_ATTR: model.to_json(),
        S.HYPERPARAMETERS_ATTR: "null" if hyper is None else hyper.to_json(),
        "covariance_type": model.covariance_type,
        "n_components": model.n_components,
        "seed": int(seed),
    }
    for key, value in extra.items():
        if value is None or isinstance(value, (bool, dict, list, tuple)):
            value = json.dumps(value)
        attrs[key] = value
    return attrs


def noise_attrs(params: Params | None) -> dict:
    """``{noise_log_volume: log V}`` for a noise model's parameters, else nothing."""
    return {S.NOISE_LOG_VOLUME_ATTR: -float(params.log_noise_density)} if params and params.has_noise else {}


def em_groups(fit: EMFit) -> dict[str, xr.Dataset]:
    """``em_estimate``, ``em_restarts``, ``em_trace`` (and the data groups when stored)."""
    restarts, d = fit.restarts, len(fit.data.features)
    n_trace = max(r.trace.shape[0] for r in restarts)
    coords = xr.Coordinates(_coords(fit.data.features, fit.model.n_components,
                                    **{S.OBS: fit.data.obs_id, S.RESTART: np.arange(len(restarts)),
                                       S.ITERATION: np.arange(n_trace)}))
    estimate = parameter_variables(fit.params, d) | _scalars([fit.estimate])
    estimate["best_restart"] = ((), int(fit.best))
    if fit.responsibilities is not None:
        estimate |= per_row_variables(fit.responsibilities, fit.model.n_components, S.RESPONSIBILITIES,
                                      S.NOISE_RESPONSIBILITY)
    trace = np.full((len(restarts), n_trace), np.nan)
    for i, r in enumerate(restarts):
        trace[i, : r.trace.shape[0]] = r.trace
    starts = {S.INIT_METHOD: ((S.RESTART,), np.array([r.start for r in restarts], dtype=str))}
    groups = {
        S.EM_ESTIMATE: _dataset(estimate, coords),
        S.EM_RESTARTS: _dataset(_stacked_parameters(restarts, d) | _scalars(restarts, (S.RESTART,)) | starts,
                                coords),
        S.EM_TRACE: _dataset({"objective": ((S.RESTART, S.ITERATION), trace)}, coords),
    }
    if fit.store_observed:
        groups[S.OBSERVED_DATA] = _dataset({S.X: ((S.OBS, S.FEATURE), fit.data.values)}, coords)
        if fit.sample_weight is not None:
            groups[S.CONSTANT_DATA] = _dataset({S.SAMPLE_WEIGHT: ((S.OBS,), fit.sample_weight)}, coords)
    return groups


def em_inference_data(fit: EMFit) -> az.InferenceData:
    """A ``fit_em`` result: ``observed_data``, ``em_estimate``, ``em_restarts``, ``em_trace``."""
    attrs = root_attrs(fit.model, fit.hyper, fit.seed, method="em", n_obs=int(fit.n_obs),
                       observed_data_stored=int(fit.store_observed),
                       **{S.FINGERPRINT_ATTR: fit.fingerprint.to_json()}, **noise_attrs(fit.params), **fit.options)
    return az.InferenceData(attrs=attrs, **em_groups(fit))


def posterior_inference_data(model: GMM, data, hyper: Hyperparameters, em: dict[str, xr.Dataset],
                             em_seed: int, sample: PosteriorSample, pivot: Params | None = None) -> az.InferenceData:
    """One InferenceData for a sampling run: the posterior groups plus the EM groups ``em`` of its start
    (``pivot``, its estimate: a noise model's attrs record its volume).

    Draw arrays come with chains stacked (S = chains * draws, ...) and are
    reshaped to (chain, draw, ...).
    """
    C, D = sample.shape
    K = model.n_components
    cd = S.SAMPLE_DIMS
    coords = _coords(data.features, K, **{S.OBS: data.obs_id, S.CHAIN: np.arange(C), S.DRAW: np.arange(D)})
    pointwise = np.arange(D) if sample.pointwise_draws is None else np.asarray(sample.pointwise_draws)

    def ds(variables, draw=np.arange(D)):
        return _dataset({k: (dims, v.reshape(C, len(draw), *v.shape[1:]) if dims[:2] == cd else v)
                         for k, (dims, v) in variables.items()}, coords | {S.DRAW: draw})

    stats = sample.sample_stats
    stats = stats.drop_vars([v for v in stats.data_vars if stats[v].dims[:2] != cd], errors="ignore")
    stats = stats.assign_coords({S.CHAIN: np.arange(C), S.DRAW: np.arange(D)})
    stats = stats.assign({S.RELABEL_PERMUTATION: (cd + (S.COMPONENT,), sample.permutation.reshape(C, D, K))})
    stats = stats.assign_coords({S.COMPONENT: np.arange(K)})
    noise = {}
    if model.noise:  # the K+1st weight and assignment column are the noise's
        noise = {S.NOISE_WEIGHT: (cd, sample.w[:, K])}
    groups = {
        S.POSTERIOR: ds({
            "w": (cd + (S.COMPONENT,), sample.w[:, :K]),
            "mu": (cd + (S.COMPONENT, S.FEATURE), sample.mu),
            "cov": (cd + (S.COMPONENT, S.FEATURE, S.FEATURE2), sample.cov),
        } | noise),
        S.SAMPLE_STATS: stats,
    }
    if data.values.shape[0]:
        groups[S.OBSERVED_DATA] = ds({S.X: ((S.OBS, S.FEATURE), data.values)})
    if sample.log_likelihood is not None:
        groups[S.LOG_LIKELIHOOD] = ds({S.X: (cd + (S.OBS,), sample.log_likelihood)}, pointwise)
    if sample.assignment is not None:
        groups[S.POSTERIOR_ASSIGNMENT] = ds(per_row_variables(sample.assignment, K, S.POSTERIOR_ASSIGNMENT,
                                                              S.NOISE_ASSIGNMENT))
    if sample.predictive is not None:
        groups[S.POSTERIOR_PREDICTIVE] = ds({S.X: (cd + (S.OBS, S.FEATURE), sample.predictive)}, pointwise)
    groups |= {name: em[name] for name in S.EM_GROUPS}
    n_obs = data.values.shape[0] if sample.n_obs is None else sample.n_obs
    attrs = root_attrs(model, hyper, sample.seed, method=sample.method, sampler=sample.sampler, chains=C,
                       draws=sample.draws, tune=sample.tune, relabelled=int(sample.relabelled),
                       n_obs=int(n_obs), em_seed=int(em_seed), **noise_attrs(pivot),
                       **({S.FINGERPRINT_ATTR: DataFingerprint.of_values(data.values, data.features,
                                                                         data.named).to_json()} | sample.attrs))
    return az.InferenceData(attrs=attrs, **groups)


def with_selection(idata: az.InferenceData, table: pd.DataFrame) -> az.InferenceData:
    """A copy of ``idata`` with a ``model_selection`` group: the table of ``select_components``.

    One entry per table row along the ``candidate`` dim; booleans are kept as
    0/1 integers and text as strings, which netCDF stores.
    """
    columns = {}
    for name in table.columns:
        values = table[name].to_numpy()
        if values.dtype == bool:
            values = values.astype(np.int8)
        elif values.dtype.kind not in "iuf":
            values = np.array(["" if v is None or (isinstance(v, float) and np.isnan(v)) else str(v)
                               for v in values], dtype=object).astype(str)
        columns[name] = ((S.CANDIDATE,), values)
    out = idata.copy()
    out.add_groups({S.MODEL_SELECTION: xr.Dataset(columns, coords={S.CANDIDATE: np.arange(len(table))})})
    return out


def with_bootstrap(idata: az.InferenceData, boot: BootstrapSample) -> az.InferenceData:
    """A copy of ``idata`` with an ``em_bootstrap`` group (replacing any earlier one).

    Dims ``replicate``, ``component``, ``feature``, ``feature2``; group attrs
    ``kind``, ``seed``, ``n_boot``, ``n_failed``, ``ambiguous_share`` and
    ``ambiguity_ratio``.
    """
    est = idata[S.EM_ESTIMATE]
    B, K = boot.w.shape
    coords = {S.REPLICATE: np.arange(B), S.COMPONENT: est[S.COMPONENT].values,
              S.FEATURE: est[S.FEATURE].values, S.FEATURE2: est[S.FEATURE2].values}
    rep = (S.REPLICATE,)
    ds = _dataset({
        "w": (rep + (S.COMPONENT,), boot.w),
        "mu": (rep + (S.COMPONENT, S.FEATURE), boot.mu),
        "cov": (rep + (S.COMPONENT, S.FEATURE, S.FEATURE2), boot.cov),
        S.RELABEL_PERMUTATION: (rep + (S.COMPONENT,), boot.permutation),
        S.RELABEL_AMBIGUOUS: (rep, boot.ambiguous),
        S.FAILED: (rep, boot.failed),
        "objective": (rep, boot.objective),
        "log_likelihood": (rep, boot.log_likelihood),
        "converged": (rep, boot.converged),
        "n_iter": (rep, boot.n_iter),
    }, coords)
    ds.attrs = {"kind": boot.kind, "seed": int(boot.seed), "n_boot": int(B), "n_failed": int(boot.failed.sum()),
                "ambiguous_share": boot.ambiguous_share, "ambiguity_ratio": float(boot.ambiguity_ratio)}
    out = idata.copy()
    if S.EM_BOOTSTRAP in out.groups():
        del out[S.EM_BOOTSTRAP]
    out.add_groups({S.EM_BOOTSTRAP: ds})
    return out


def calibration_inference_data(rec: CalibrationRecord) -> az.InferenceData:
    """A ``calibration`` result: one group along ``simulation``, ``quantity``, ``point``, ``ecdf_point``.

    Group attrs ``n_values`` (L + 1), ``n_bins``, ``alpha``, ``n_null`` (null replicates of the
    ECDF test); root attrs as every result, with ``method="calibration"``, the sampling model and
    prior (``sampling_model``, ``sampling_hyperparameters``), ``sampler``, ``n_obs``, ``n_sims``.
    """
    sims, quantity = (S.SIMULATION,), (S.QUANTITY,)
    coords = {S.SIMULATION: np.arange(rec.ranks.shape[0]), S.QUANTITY: list(rec.quantities),
              S.POINT: np.arange(rec.points.shape[0]), S.FEATURE: list(rec.features),
              S.ECDF_POINT: np.arange(1, rec.n_values) / rec.n_values}
    ds = _dataset({
        S.RANK: (sims + quantity, rec.ranks.astype(np.int64)),
        "true_value": (sims + quantity, rec.true_values),
        S.P_VALUE: (quantity, rec.p_value),
        S.P_VALUE_CHI2: (quantity, rec.p_value_chi2),
        S.SAMPLING_STATUS_ATTR: (sims, np.array(rec.sampling_status, dtype=str)),
        "min_ess_bulk": (sims, rec.min_ess_bulk),
        "fixed_point": ((S.POINT, S.FEATURE), rec.points),
        "band_lower": ((S.ECDF_POINT,), rec.band_lower),
        "band_upper": ((S.ECDF_POINT,), rec.band_upper),
    }, coords)
    ds.attrs = {"n_values": int(rec.n_values), "n_bins": int(rec.n_bins), "alpha": float(rec.alpha),
                "n_null": int(rec.n_null)}
    attrs = root_attrs(rec.model, rec.hyper, rec.seed, **{
        S.METHOD_ATTR: "calibration", S.SAMPLING_MODEL_ATTR: rec.sampling_model.to_json(),
        S.SAMPLING_HYPERPARAMETERS_ATTR: rec.sampling_hyper.to_json(), "sampler": rec.sampler,
        "n_obs": int(rec.n_obs), "n_sims": int(rec.ranks.shape[0])} | rec.options)
    return az.InferenceData(attrs=attrs, **{S.CALIBRATION: ds})

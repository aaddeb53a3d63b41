"""Reading results: the numbers a workflow, plot or report needs from an ``InferenceData``.

Every reader checks that the result holds what it reads and says what to do
when it does not (names and hints from :mod:`gmmflow.schema`).
"""

from __future__ import annotations

import json

import arviz as az
import numpy as np
import pandas as pd
import xarray as xr

from gmmflow import schema as S
from gmmflow.core.em_steps import Params
from gmmflow.core.gaussian import compact_covariances
from gmmflow.core.hyperparameters import Hyperparameters
from gmmflow.exceptions import NotAGmmflowFileError
from gmmflow.inputs.fingerprint import DataFingerprint
from gmmflow.inputs.matrix import default_feature_names
from gmmflow.models.spec import GMM


def model_from_idata(idata: az.InferenceData) -> GMM:
    """The :class:`GMM` spec a result was made with."""
    if not isinstance(idata, az.InferenceData):
        raise TypeError(f"expected a gmmflow result (arviz.InferenceData from fit_em or sample_posterior), "
                        f"got {type(idata).__name__}.")
    try:
        return GMM.from_json(idata.attrs[S.MODEL_ATTR])
    except (KeyError, AttributeError, TypeError) as err:
        raise NotAGmmflowFileError(
            "This InferenceData has no gmmflow model spec in its attrs; it was not "
            "made by gmmflow (fit_em / sample_posterior)."
        ) from err


def hyperparameters_from_idata(idata: az.InferenceData) -> Hyperparameters | None:
    """The resolved prior a result was made with; None for an MLE fit."""
    text = idata.attrs.get(S.HYPERPARAMETERS_ATTR, "null")
    return None if text == "null" else Hyperparameters.from_dict(json.loads(text))


def feature_names(idata: az.InferenceData) -> list[str]:
    S.require_groups(idata, S.EM_ESTIMATE)
    return [str(f) for f in idata[S.EM_ESTIMATE][S.FEATURE].values]


def check_schema(idata: az.InferenceData) -> None:
    """Raise naming the first damage: a group its method needs is missing, a variable is missing or has
    other dims than ``schema.VARIABLES`` says, a dim has different lengths in two groups (or ``component``
    another length than ``n_components``), or the fingerprint attr does not parse.

    Raises
    ------
    ValueError
        ``"group 'posterior' has no variable 'cov'"`` and the like (``files.load`` says which file).
    """
    present = S.groups(idata)
    needed = S.METHOD_GROUPS.get(str(idata.attrs.get(S.METHOD_ATTR)), (S.EM_ESTIMATE,))
    missing = [g for g in needed if g not in present]
    if missing:
        raise ValueError(f"it has no {', '.join(missing)} group(s), which a {idata.attrs.get(S.METHOD_ATTR)!r} result has")
    sizes = {S.COMPONENT: ("the n_components attr", idata.attrs.get("n_components"))}
    for group in [g for g in S.VARIABLES if g in present]:
        ds = idata[group]
        optional = S.OPTIONAL_VARIABLES.get(group, {})
        for name, dims in list(S.VARIABLES[group].items()) + list(optional.items()):
            if name not in ds:
                if name in optional:
                    continue
                raise ValueError(f"group {group!r} has no variable {name!r}")
            if ds[name].dims != dims:
                raise ValueError(f"variable {group}.{name} has dims {ds[name].dims}, not {dims}")
            for dim, size in ds[name].sizes.items():
                where, seen = sizes.setdefault(S.FEATURE if dim == S.FEATURE2 else dim, (f"{group}.{name}", size))
                if seen is not None and seen != size:
                    raise ValueError(f"dim {dim!r} has length {size} in {group}.{name} but {seen} in {where}")
    data_fingerprint(idata)


def data_fingerprint(idata: az.InferenceData) -> DataFingerprint | None:
    """The fingerprint of the data a result was fitted on; None for files written before gmmflow recorded it.

    Raises
    ------
    NotAGmmflowFileError
        The attr is there but is not a fingerprint (a damaged file).
    """
    text = idata.attrs.get(S.FINGERPRINT_ATTR)
    if text is None:
        return None
    try:
        return DataFingerprint.from_json(text)
    except (ValueError, KeyError, TypeError) as err:
        raise NotAGmmflowFileError(f"its {S.FINGERPRINT_ATTR!r} attr is damaged ({err}); re-create the result.") \
            from err


def fitted_features(idata: az.InferenceData) -> tuple[list[str], bool]:
    """(feature names, whether they came from the data) of a result.

    Results without a fingerprint count their names as given unless they
    are gmmflow's own ``x0, x1, ...``.
    """
    features = feature_names(idata)
    fingerprint = data_fingerprint(idata)
    named = fingerprint.named if fingerprint is not None else features != default_feature_names(len(features))
    return features, named


def check_fitted_on(idata: az.InferenceData, values: np.ndarray, features, named: bool, what: str,
                    fix: str) -> None:
    """Raise unless ``idata`` is an unweighted fit of exactly these data.

    ``values`` (n, d) in the fit's feature order. Compares the recorded
    fingerprint (or, for files without one, that of the stored data) with
    the data's: shape, names when both are named, the hash of the values
    (re-hashed in the fit's blocks); a weighted fit is refused. ``what``
    names the result in the message, ``fix`` says what to do.
    """
    recorded = recorded_fingerprint(idata, what, fix)
    check_fingerprint(idata, DataFingerprint.of_values(values, features, named, block_rows=recorded.block_rows),
                      what, fix)


def recorded_fingerprint(idata: az.InferenceData, what: str, fix: str) -> DataFingerprint:
    """The fingerprint of the data ``idata`` was fitted on: recorded, or (older files) of its stored data."""
    recorded = data_fingerprint(idata)
    if recorded is None:
        if not S.has_groups(idata, S.OBSERVED_DATA):
            raise ValueError(f"{what} records neither a fingerprint of its data nor the data (an older gmmflow "
                             f"result), so it cannot be checked against X; {fix}.")
        recorded = DataFingerprint.of_values(observed_values(idata), *fitted_features(idata), sample_weights(idata))
    return recorded


def check_fingerprint(idata: az.InferenceData, given: DataFingerprint, what: str, fix: str) -> None:
    """Raise unless ``given`` (hashed in the recorded fingerprint's blocks) is the unweighted data of ``idata``."""
    recorded = recorded_fingerprint(idata, what, fix)
    if recorded.weights_hash is not None:
        raise ValueError(f"{what} is a weighted fit (sample_weight) and X comes without weights: its estimate and "
                         f"data-based prior are of other data; {fix}.")
    differences = recorded.differences(given)
    if differences:
        raise ValueError(
            f"{what} was fitted on other data than X ({'; '.join(differences)}: {what} {recorded.describe()}; "
            f"X {given.describe()}), so its estimate and data-based prior are not X's; {fix}."
        )


def em_params(idata: az.InferenceData) -> tuple[GMM, Params, list]:
    """(model, EM estimate as core parameters, feature names) of a result.

    A noise model's parameters have K+1 weights (``w`` then ``noise_weight``)
    and the fitted ``-log V``.
    """
    model = model_from_idata(idata)
    S.require_groups(idata, S.EM_ESTIMATE, hint="run gmmflow.fit_em first")
    log_noise_density = -noise_log_volume(idata) if model.noise else None
    return model, dataset_params(idata[S.EM_ESTIMATE], model, log_noise_density), feature_names(idata)


def dataset_params(ds: xr.Dataset, model: GMM, log_noise_density: float | None = None) -> Params:
    """One parameter set stored as ``w``, ``mu``, ``cov`` (and a noise model's ``noise_weight``) in
    ``ds`` (``em_estimate``, or one restart of ``em_restarts``) as core parameters."""
    t = model.covariance_type
    weights = ds["w"].transpose(S.COMPONENT).values
    if model.noise:
        weights = np.append(weights, float(ds[S.NOISE_WEIGHT]))
    return Params.from_cov(weights, ds["mu"].transpose(S.COMPONENT, S.FEATURE).values,
                           compact_covariances(ds["cov"].transpose(S.COMPONENT, S.FEATURE, S.FEATURE2).values, t),
                           t, log_noise_density=log_noise_density)


def noise_log_volume(idata: az.InferenceData) -> float:
    """``log V`` of a noise model's region, as fitted.

    Raises
    ------
    NotAGmmflowFileError
        A noise model's result without the attr (a damaged file).
    """
    try:
        return float(idata.attrs[S.NOISE_LOG_VOLUME_ATTR])
    except (KeyError, TypeError, ValueError) as err:
        raise NotAGmmflowFileError(f"it is a noise model's result without a valid {S.NOISE_LOG_VOLUME_ATTR!r} "
                                   "attr; re-create the result.") from err


def em_arrays(idata: az.InferenceData):
    """(weights (K,), means (K, d), full covariances (K, d, d), feature names) of the EM estimate."""
    S.require_groups(idata, S.EM_ESTIMATE)
    est = idata[S.EM_ESTIMATE]
    return est["w"].values, est["mu"].values, est["cov"].values, feature_names(idata)


def observed_values(idata: az.InferenceData) -> np.ndarray:
    """The data a result was fitted on, (n, d)."""
    S.require_groups(idata, S.OBSERVED_DATA)
    return idata[S.OBSERVED_DATA][S.X].values


def stored_responsibilities(idata: az.InferenceData) -> np.ndarray | None:
    """EM responsibilities (n, K) when the result stores them, else None; a noise model's
    are (n, K+1), the noise column last (as ``predict_proba``)."""
    S.require_groups(idata, S.EM_ESTIMATE)
    est = idata[S.EM_ESTIMATE]
    if S.RESPONSIBILITIES not in est:
        return None
    return _with_noise_column(est, S.RESPONSIBILITIES, S.NOISE_RESPONSIBILITY)


def sample_weights(idata: az.InferenceData) -> np.ndarray | None:
    """The fit's observation weights, or None when it was unweighted."""
    return idata[S.CONSTANT_DATA][S.SAMPLE_WEIGHT].values if S.has_groups(idata, S.CONSTANT_DATA) else None


def posterior_assignment(idata: az.InferenceData) -> np.ndarray:
    """P(z_i = k | data), (n, K), averaged over draws; a noise model's (n, K+1), the noise column last."""
    S.require_groups(idata, S.POSTERIOR_ASSIGNMENT)
    return _with_noise_column(idata[S.POSTERIOR_ASSIGNMENT], S.POSTERIOR_ASSIGNMENT, S.NOISE_ASSIGNMENT)


def _with_noise_column(ds, name: str, noise_name: str) -> np.ndarray:
    """``ds[name]`` (n, K), with ``ds[noise_name]`` (n,) appended as column K+1 when the result has it."""
    if noise_name in ds:
        return np.column_stack([ds[name].values, ds[noise_name].values])
    return ds[name].values


def posterior_arrays(idata: az.InferenceData, n_draws: int | None = None):
    """Stacked posterior draws (S, K), (S, K, d), (S, K, d, d), thinned evenly to ``n_draws``."""
    S.require_groups(idata, S.POSTERIOR)
    post = idata[S.POSTERIOR].stack(sample=S.SAMPLE_DIMS)
    w, mu, cov = (post[name].transpose("sample", ...).values for name in S.PARAMETERS)
    if n_draws is not None and n_draws < w.shape[0]:
        keep = np.unique(np.linspace(0, w.shape[0] - 1, n_draws).round().astype(int))
        w, mu, cov = w[keep], mu[keep], cov[keep]
    return w, mu, cov


def pointwise_log_likelihood(idata: az.InferenceData) -> np.ndarray:
    """(S, n) pointwise log-likelihood of every draw, chains stacked."""
    S.require_groups(idata, S.LOG_LIKELIHOOD)
    ll = idata[S.LOG_LIKELIHOOD][S.X]
    return ll.stack(s=S.SAMPLE_DIMS).transpose("s", S.OBS).values


def selection_from_idata(idata: az.InferenceData) -> pd.DataFrame | None:
    """The ``select_components`` table stored by ``with_selection``, or None."""
    if not S.has_groups(idata, S.MODEL_SELECTION):
        return None
    table = idata[S.MODEL_SELECTION].to_dataframe().reset_index(drop=True)
    for name in [c for c in table.columns if c.startswith("best_") or c == "converged"]:
        table[name] = table[name].astype(bool)
    return table


def bootstrap_draws(idata: az.InferenceData):
    """The successful bootstrap replicates as a Dataset of ``w``, ``mu``, ``cov`` along ``replicate``."""
    S.require_groups(idata, S.EM_BOOTSTRAP)
    boot = idata[S.EM_BOOTSTRAP]
    ok = ~boot[S.FAILED].values.astype(bool)
    return boot[list(S.PARAMETERS)].isel({S.REPLICATE: np.flatnonzero(ok)})


def calibration_group(idata: az.InferenceData):
    """The ``calibration`` group of a :func:`gmmflow.calibrate` result (ranks, p-values, ECDF band)."""
    S.require_groups(idata, S.CALIBRATION)
    return idata[S.CALIBRATION]

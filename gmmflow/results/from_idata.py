"""Reading results: the numbers a workflow, plot or report needs from an ``InferenceData``.

Every reader checks that the result holds what it reads and says what to do
when it does not (names and hints from :mod:`gmmflow.schema`).
"""

from __future__ import annotations

import json

import arviz as az
import numpy as np
import pandas as pd

from gmmflow import schema as S
from gmmflow.core.em_steps import Params
from gmmflow.core.gaussian import compact_covariances
from gmmflow.core.hyperparameters import Hyperparameters
from gmmflow.exceptions import NotAGmmflowFileError
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


def em_params(idata: az.InferenceData) -> tuple[GMM, Params, list]:
    """(model, EM estimate as core parameters, feature names) of a result."""
    model = model_from_idata(idata)
    S.require_groups(idata, S.EM_ESTIMATE, hint="run gmmflow.fit_em first")
    est = idata[S.EM_ESTIMATE]
    t = model.covariance_type
    params = Params.from_cov(est["w"].values, est["mu"].values, compact_covariances(est["cov"].values, t), t)
    return model, params, feature_names(idata)


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
    """EM responsibilities (n, K) when the result stores them, else None."""
    S.require_groups(idata, S.EM_ESTIMATE)
    est = idata[S.EM_ESTIMATE]
    return est[S.RESPONSIBILITIES].values if S.RESPONSIBILITIES in est else None


def sample_weights(idata: az.InferenceData) -> np.ndarray | None:
    """The fit's observation weights, or None when it was unweighted."""
    return idata[S.CONSTANT_DATA][S.SAMPLE_WEIGHT].values if S.has_groups(idata, S.CONSTANT_DATA) else None


def posterior_assignment(idata: az.InferenceData) -> np.ndarray:
    """P(z_i = k | data), (n, K), averaged over draws."""
    S.require_groups(idata, S.POSTERIOR_ASSIGNMENT)
    return idata[S.POSTERIOR_ASSIGNMENT][S.POSTERIOR_ASSIGNMENT].values


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

"""What users expect of a fitted mixture: labels, probabilities, densities, new draws.

Every function reads the EM estimate of a result (``fit_em`` or
``sample_posterior``) and applies it to data. Data are matched to the fit
by feature name when both carry names (DataFrame columns, a DataArray
``feature`` coordinate): columns in another order are reordered, unknown or
missing names refused. Plain arrays are taken by position, and only when
the number of columns agrees (``inputs.alignment``).
"""

from __future__ import annotations

import arviz as az
import numpy as np

from gmmflow import defaults
from gmmflow import schema as S
from gmmflow.checks import check_int, check_missing, check_noise_with_missing, check_seed
from gmmflow.core.em_steps import Params
from gmmflow.core.gaussian import sample_mixture
from gmmflow.core.missing_data import MissingBlocks
from gmmflow.core.row_blocks import ArrayBlocks, default_chunk_size
from gmmflow.inputs.alignment import align_to_features
from gmmflow.resources import check_memory, sample_bytes
from gmmflow.models.spec import GMM
from gmmflow.results.from_idata import em_params, fitted_features, model_from_idata


def log_resp_and_norm(params: Params, X: np.ndarray):
    """(n, K) log-responsibilities and (n,) log mixture densities of the rows of ``X`` under ``params``
    ((n, K+1), the noise's column last, for a noise model); a row with NaN gets those of its observed
    coordinates."""
    K, d = params.means.shape
    if np.isnan(X).any():
        return MissingBlocks(X).log_resp_and_norm(params)
    return ArrayBlocks(X, chunk_size=default_chunk_size(K, d)).log_resp_and_norm(params)


def fitted_log_resp_and_norm(idata: az.InferenceData, X, missing: str = defaults.MISSING):
    """:func:`log_resp_and_norm` of the EM estimate of ``idata`` on data ``X``, matched by name (checked).

    Raises
    ------
    ValueError
        Bad data, unknown or missing feature names, another number of columns
        (unnamed data), or a row so far from every component that its squared
        distance overflows float64 (its probabilities would be NaN).
    """
    _, params, _ = em_params(idata)
    data = align_to_features(X, *fitted_features(idata), missing=check_missing(missing) == "marginalize")
    check_noise_with_missing(params.has_noise, bool(np.isnan(data.values).any()), "predict on")
    log_resp, log_norm = log_resp_and_norm(params, data.values)
    bad = ~np.isfinite(log_norm)
    if bad.any():
        i = int(np.argmax(bad))
        raise ValueError(
            f"X row {i} ({', '.join(f'{f}={v:.3g}' for f, v in zip(data.features, data.values[i]))}) lies so "
            f"far from every component that its squared distance overflows float64 ({int(bad.sum())} such "
            "row(s)); its probabilities would be NaN. Check the row's units, or rescale X as the fitted data were."
        )
    return log_resp, log_norm


def predict_proba(idata: az.InferenceData, X, *, missing: str = defaults.MISSING) -> np.ndarray:
    """Responsibilities P(z_i = k | x_i) under the EM estimate: (n, K).

    A noise model's are (n, K+1): the last column is the probability that
    the row is noise (mclust's ``z`` has the same layout).

    ``X`` is matched to the fitted features by name when both have names,
    else by position (same number of columns); see the module docstring.
    ``missing="marginalize"`` accepts NaN: a row is judged on its observed
    coordinates (their marginal mixture).
    """
    return np.exp(fitted_log_resp_and_norm(idata, X, missing)[0])


def predict(idata: az.InferenceData, X, *, missing: str = defaults.MISSING) -> np.ndarray:
    """Most probable component of each row under the EM estimate: (n,).

    A noise model labels the rows most probably noise ``-1``.
    ``X`` is matched to the fitted features by name when both have names,
    else by position (same number of columns); see the module docstring.
    ``missing="marginalize"`` accepts NaN: a row is judged on its observed
    coordinates (their marginal mixture).
    """
    return noise_labelled(np.argmax(fitted_log_resp_and_norm(idata, X, missing)[0], axis=1), model_from_idata(idata))


def noise_labelled(labels: np.ndarray, model: GMM) -> np.ndarray:
    """Component labels (argmax over responsibilities) with a noise model's noise column,
    label K, as ``-1``; other models' labels unchanged."""
    return np.where(labels == model.n_components, S.NOISE_LABEL, labels) if model.noise else labels


def score_samples(idata: az.InferenceData, X, *, missing: str = defaults.MISSING) -> np.ndarray:
    """Log mixture density ``log sum_k w_k N(x_i | mu_k, Sigma_k)`` of each row: (n,).

    A noise model's density has the uniform term: ``log(sum_k w_k N(x_i | k) + w_0 / V)``.

    ``X`` is matched to the fitted features by name when both have names,
    else by position (same number of columns); see the module docstring.
    ``missing="marginalize"`` accepts NaN: a row is judged on its observed
    coordinates (their marginal mixture).
    """
    return fitted_log_resp_and_norm(idata, X, missing)[1]


def sample_em(idata: az.InferenceData, n: int, seed: int | None = None):
    """Draw ``n`` rows from the EM estimate's mixture.

    Returns
    -------
    X : ndarray (n, d)
    labels : ndarray (n,) of int
        The component each row was drawn from.
    """
    model, params, _ = em_params(idata)
    if model.noise:
        raise ValueError("sample_em does not draw from a noise model: a result records the volume of the noise's "
                         "region, not its shape. Draw the Gaussian rows from a model fitted without noise, or "
                         "add uniform rows over a region of your choice.")
    n = check_int(n, "n", 1)
    check_memory(sample_bytes(n, params.means.shape[1]), f"sample_em of {n} rows", "draw fewer rows")
    rng = np.random.default_rng(check_seed(seed))
    return sample_mixture(rng, n, params.weights, params.means, params.chol, params.covariance_type)

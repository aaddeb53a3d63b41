"""What users expect of a fitted mixture: labels, probabilities, densities, new draws.

Every function reads the EM estimate of a result (``fit_em`` or
``sample_posterior``) and applies it to data.
"""

from __future__ import annotations

import arviz as az
import numpy as np

from gmmflow.checks import check_int, check_seed
from gmmflow.core.em_steps import Params
from gmmflow.core.gaussian import sample_mixture
from gmmflow.core.row_blocks import ArrayBlocks, default_chunk_size
from gmmflow.inputs.matrix import as_data_matrix
from gmmflow.results.from_idata import em_params


def log_resp_and_norm(params: Params, X: np.ndarray):
    """(n, K) log-responsibilities and (n,) log mixture densities of the rows of ``X`` under ``params``."""
    K, d = params.means.shape
    return ArrayBlocks(X, chunk_size=default_chunk_size(K, d)).log_resp_and_norm(params)


def fitted_log_resp_and_norm(idata: az.InferenceData, X):
    """:func:`log_resp_and_norm` of the EM estimate of ``idata`` on data ``X`` (checked)."""
    _, params, features = em_params(idata)
    data = as_data_matrix(X)
    if data.shape[1] != len(features):
        raise ValueError(
            f"X has {data.shape[1]} feature(s) but the mixture was fitted on {len(features)} "
            f"({', '.join(features)}). Pass data with the same columns."
        )
    return log_resp_and_norm(params, data.values)


def predict_proba(idata: az.InferenceData, X) -> np.ndarray:
    """Responsibilities P(z_i = k | x_i) under the EM estimate: (n, K)."""
    return np.exp(fitted_log_resp_and_norm(idata, X)[0])


def predict(idata: az.InferenceData, X) -> np.ndarray:
    """Most probable component of each row under the EM estimate: (n,)."""
    return np.argmax(fitted_log_resp_and_norm(idata, X)[0], axis=1)


def score_samples(idata: az.InferenceData, X) -> np.ndarray:
    """Log mixture density ``log sum_k w_k N(x_i | mu_k, Sigma_k)`` of each row: (n,)."""
    return fitted_log_resp_and_norm(idata, X)[1]


def sample_em(idata: az.InferenceData, n: int, seed: int | None = None):
    """Draw ``n`` rows from the EM estimate's mixture.

    Returns
    -------
    X : ndarray (n, d)
    labels : ndarray (n,) of int
        The component each row was drawn from.
    """
    _, params, _ = em_params(idata)
    n = check_int(n, "n", 1)
    rng = np.random.default_rng(check_seed(seed))
    return sample_mixture(rng, n, params.weights, params.means, params.chol, params.covariance_type)

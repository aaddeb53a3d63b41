"""What the plots read from a result: data, EM estimate, posterior draws, labels.

Thin wrappers over ``results.from_idata`` that say, when a group is
missing, which plot needs it and how to get it.
"""

from __future__ import annotations

import numpy as np

from gmmflow import schema as S
from gmmflow.core.gaussian import cholesky, log_mixture_density
from gmmflow.results.from_idata import (
    calibration_group,
    em_arrays,
    em_params,
    model_from_idata,
    observed_values,
    posterior_arrays,
    posterior_assignment,
    stored_responsibilities,
)
from gmmflow.workflows.prediction import log_resp_and_norm, noise_labelled

OBSERVED_HINT = ("the plot draws the data, and this result did not store them "
                 "(fit_em stores them unless the data exceeded its storage limit)")


def observed(idata) -> np.ndarray:
    """The fitted data (n, d)."""
    S.require_groups(idata, S.OBSERVED_DATA, hint=OBSERVED_HINT)
    return observed_values(idata)


def em_estimate(idata):
    """(weights (K,), means (K, d), full covariances (K, d, d), feature names) of the EM estimate."""
    S.require_groups(idata, S.EM_ESTIMATE)
    return em_arrays(idata)


def calibration(idata):
    """The ``calibration`` group of a :func:`gmmflow.calibrate` result."""
    return calibration_group(idata)


def posterior_draws(idata, n_draws: int | None = None):
    """Stacked posterior draws (S, K), (S, K, d), (S, K, d, d), thinned evenly to ``n_draws``."""
    return posterior_arrays(idata, n_draws)


def hard_labels(idata) -> np.ndarray:
    """Each observation's most probable component: posterior if sampled, else EM; ``-1`` for a
    noise model's noise rows."""
    if S.has_groups(idata, S.POSTERIOR_ASSIGNMENT):
        probabilities = posterior_assignment(idata)
    else:
        probabilities = stored_responsibilities(idata)
        if probabilities is None:
            probabilities = log_resp_and_norm(em_params(idata)[1], observed(idata))[0]
    return noise_labelled(probabilities.argmax(1), model_from_idata(idata))


def mixture_density(points: np.ndarray, w, mu, cov) -> np.ndarray:
    """Mixture density at ``points`` (m, d) for full covariances (K, d, d)."""
    return np.exp(log_mixture_density(points, w, mu, cholesky(cov, "full"), "full"))

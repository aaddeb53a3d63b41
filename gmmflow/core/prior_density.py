"""Log-densities of the conjugate prior, with every normalising constant (numpy).

``log p(theta) = log Dirichlet(w) + log p(Sigma) + sum_k log N(mu_k | m, Sigma_k / kappa)``
for the hyper-parameters of :class:`~gmmflow.core.hyperparameters.Hyperparameters`.
Densities are evaluated on Cholesky factors; nothing is inverted.
"""

from __future__ import annotations

import numpy as np
from scipy import linalg
from scipy.special import gammaln, multigammaln

from gmmflow.core.gaussian import LOG_2PI, log_det_cholesky
from gmmflow.core.hyperparameters import Hyperparameters


def log_dirichlet(weights: np.ndarray, alpha: float) -> float:
    """log Dirichlet(w | alpha 1_K), density on the simplex."""
    K = weights.shape[-1]
    return float(gammaln(K * alpha) - K * gammaln(alpha) + (alpha - 1.0) * np.sum(np.log(weights)))


def log_inverse_wishart(chol: np.ndarray, dof: float, scale_chol: np.ndarray) -> np.ndarray:
    """log InverseWishart(Sigma | nu, Lambda) from Cholesky factors of both.

    ``chol`` may be (d, d) or a stack (K, d, d). ``tr(Lambda Sigma^{-1}) =
    ||L_Sigma^{-1} L_Lambda||_F^2`` by a triangular solve.
    """
    d = scale_chol.shape[-1]
    chol = np.asarray(chol)
    stack = chol.reshape(-1, d, d)
    tr = np.array([
        np.sum(np.square(linalg.solve_triangular(c, scale_chol, lower=True, check_finite=False)))
        for c in stack
    ])
    log_det_sigma = log_det_cholesky(stack, "full", d)
    log_det_scale = log_det_cholesky(scale_chol, "tied", d)
    out = (
        0.5 * dof * log_det_scale
        - 0.5 * dof * d * np.log(2.0)
        - multigammaln(0.5 * dof, d)
        - 0.5 * (dof + d + 1) * log_det_sigma
        - 0.5 * tr
    )
    return out.reshape(chol.shape[:-2])


def log_inverse_gamma(var: np.ndarray, shape: float, rate: np.ndarray) -> np.ndarray:
    """log InverseGamma(var | a, b) = a log b - lgamma(a) - (a+1) log var - b / var."""
    return shape * np.log(rate) - gammaln(shape) - (shape + 1.0) * np.log(var) - rate / var


def log_mean_prior(means: np.ndarray, chol: np.ndarray, hyper: Hyperparameters) -> float:
    """sum_k log N(mu_k | mu_P, Sigma_k / kappa_P)."""
    t, d, kappa = hyper.covariance_type, hyper.n_features, hyper.shrinkage
    diff = means - hyper.mean
    if t in ("full", "tied"):
        chols = chol if t == "full" else np.broadcast_to(chol, (means.shape[0], d, d))
        maha = np.array([
            np.sum(np.square(linalg.solve_triangular(c, r, lower=True, check_finite=False)))
            for c, r in zip(chols, diff)
        ])
        log_det = log_det_cholesky(chols, "full", d)
    elif t == "diag":
        maha = np.sum(np.square(diff / chol), axis=1)
        log_det = log_det_cholesky(chol, "diag", d)
    else:
        maha = np.sum(np.square(diff), axis=1) / np.square(chol)
        log_det = log_det_cholesky(chol, "spherical", d)
    return float(np.sum(-0.5 * d * LOG_2PI + 0.5 * d * np.log(kappa) - 0.5 * log_det - 0.5 * kappa * maha))


def log_covariance_prior(cov: np.ndarray, chol: np.ndarray, hyper: Hyperparameters) -> float:
    """log p(Sigma): InverseWishart (full, tied) or InverseGamma per variance (diag, spherical)."""
    if hyper.covariance_type in ("full", "tied"):
        return float(np.sum(log_inverse_wishart(chol, hyper.dof, hyper.scale_chol)))
    # diag: scale (d,) broadcasts over (K, d); spherical: scalar over (K,)
    return float(np.sum(log_inverse_gamma(cov, 0.5 * hyper.dof, 0.5 * hyper.scale)))


def log_prior(
    weights: np.ndarray,
    means: np.ndarray,
    cov: np.ndarray,
    chol: np.ndarray,
    hyper: Hyperparameters | None,
) -> float:
    """Full log prior density log p(w) + log p(Sigma) + log p(mu | Sigma); 0 if no prior."""
    if hyper is None:
        return 0.0
    return (
        log_dirichlet(weights, hyper.alpha)
        + log_covariance_prior(cov, chol, hyper)
        + log_mean_prior(means, chol, hyper)
    )

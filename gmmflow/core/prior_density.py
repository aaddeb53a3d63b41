"""Log-densities of the conjugate prior, with every normalising constant (numpy).

``log p(theta) = log Dirichlet(w) + log p(Sigma) + sum_k log N(mu_k | m, Sigma_k / kappa)``
for the hyper-parameters of :class:`~gmmflow.core.hyperparameters.Hyperparameters`.
Densities are evaluated on Cholesky factors; nothing is inverted. Parameters may
carry leading batch axes (restarts, replicates); the result then has the batch
shape (a float without them).
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from scipy.special import gammaln

from gmmflow.core.gaussian import LOG_2PI, log_det_cholesky, solve_lower
from gmmflow.core.hyperparameters import Hyperparameters


def _result(value):
    """A float for unbatched parameters, else the array of the batch shape."""
    return value if isinstance(value, np.ndarray) and value.ndim else float(value)


@lru_cache(maxsize=256)
def _log_dirichlet_norm(K: int, alpha: float) -> float:
    """``log Gamma(K alpha) - K log Gamma(alpha)``, the same on every EM iteration of a fit (cached)."""
    return float(gammaln(K * alpha) - K * gammaln(alpha))


def log_dirichlet(weights: np.ndarray, alpha: float):
    """log Dirichlet(w | alpha 1_K), density on the simplex."""
    return _result(_log_dirichlet_norm(weights.shape[-1], float(alpha))
                   + (alpha - 1.0) * np.log(weights).sum(axis=-1))


@lru_cache(maxsize=256)
def log_multigamma(a: float, d: int) -> float:
    """``log Gamma_d(a) = d(d-1)/4 log(pi) + sum_{j=1..d} log Gamma(a + (1-j)/2)`` (cached: EM asks
    for the same value on every iteration)."""
    return float(0.25 * d * (d - 1) * np.log(np.pi) + np.sum(gammaln(a + 0.5 * (1 - np.arange(1, d + 1)))))


def _whitened(chol: np.ndarray, B: np.ndarray, prec: np.ndarray | None) -> np.ndarray:
    """``L^{-1} B`` for lower ``chol`` = L: by the precision factor ``P = L^{-T}`` when given
    (``P^T B``, a product), else by a triangular solve."""
    return solve_lower(chol, B) if prec is None else prec.swapaxes(-1, -2) @ B


def log_inverse_wishart(chol: np.ndarray, dof: float, scale_chol: np.ndarray,
                        prec: np.ndarray | None = None) -> np.ndarray:
    """log InverseWishart(Sigma | nu, Lambda) from Cholesky factors of both.

    ``chol`` is (..., d, d); the result has its leading shape. ``tr(Lambda
    Sigma^{-1}) = ||L_Sigma^{-1} L_Lambda||_F^2`` by a triangular solve (or by the
    precision factor ``prec`` of ``chol`` when the caller has it).
    """
    d = scale_chol.shape[-1]
    chol = np.asarray(chol)
    tr = np.square(_whitened(chol, scale_chol, prec)).sum(axis=(-2, -1))
    log_det_sigma = log_det_cholesky(chol, "full", d)
    return _log_inverse_wishart_norm(dof, scale_chol) - 0.5 * (dof + d + 1) * log_det_sigma - 0.5 * tr


def _log_inverse_wishart_norm(dof: float, scale_chol: np.ndarray) -> float:
    """The inverse Wishart's normalising constant ``nu/2 log|Lambda| - nu d/2 log 2 - log Gamma_d(nu/2)``."""
    d = scale_chol.shape[-1]
    log_det_scale = log_det_cholesky(scale_chol, "tied", d)
    return 0.5 * dof * log_det_scale - 0.5 * dof * d * np.log(2.0) - log_multigamma(0.5 * dof, d)


def log_inverse_gamma(var: np.ndarray, shape: float, rate: np.ndarray) -> np.ndarray:
    """log InverseGamma(var | a, b) = a log b - lgamma(a) - (a+1) log var - b / var."""
    return _log_inverse_gamma_norm(shape, rate) - (shape + 1.0) * np.log(var) - rate / var


def _log_inverse_gamma_norm(shape: float, rate):
    """The inverse gamma's normalising constant ``a log b - lgamma(a)``."""
    return shape * np.log(rate) - gammaln(shape)


def log_mean_prior(means: np.ndarray, chol: np.ndarray, hyper: Hyperparameters, prec: np.ndarray | None = None):
    """sum_k log N(mu_k | mu_P, Sigma_k / kappa_P)."""
    t, d, kappa = hyper.covariance_type, hyper.n_features, hyper.shrinkage
    diff = means - hyper.mean
    if t in ("full", "tied"):
        chols = chol if t == "full" else chol[..., None, :, :]
        precs = prec if prec is None or t == "full" else prec[..., None, :, :]
        maha = np.square(_whitened(chols, diff[..., None], precs)).sum(axis=(-2, -1))
        log_det = log_det_cholesky(chols, "full", d)
    elif t == "diag":
        maha = np.square(diff / chol).sum(axis=-1)
        log_det = log_det_cholesky(chol, "diag", d)
    else:
        maha = np.square(diff).sum(axis=-1) / np.square(chol)
        log_det = log_det_cholesky(chol, "spherical", d)
    terms = _log_mean_prior_norm(d, kappa) - 0.5 * log_det - 0.5 * kappa * maha
    return _result(terms.sum(axis=-1))


def _log_mean_prior_norm(d: int, kappa: float) -> float:
    """One mean's normal prior's constant ``-d/2 log(2 pi) + d/2 log(kappa)`` (the covariance's
    determinant aside)."""
    return -0.5 * d * LOG_2PI + 0.5 * d * np.log(kappa)


def log_covariance_prior(cov: np.ndarray, chol: np.ndarray, hyper: Hyperparameters, prec: np.ndarray | None = None):
    """log p(Sigma): InverseWishart (full, tied) or InverseGamma per variance (diag, spherical)."""
    t = hyper.covariance_type
    if t == "full":
        return _result(log_inverse_wishart(chol, hyper.dof, hyper.scale_chol, prec).sum(axis=-1))
    if t == "tied":
        return _result(log_inverse_wishart(chol, hyper.dof, hyper.scale_chol, prec))
    # diag: scale (d,) broadcasts over (..., K, d); spherical: scalar over (..., K)
    axes = (-2, -1) if t == "diag" else -1
    return _result(log_inverse_gamma(cov, 0.5 * hyper.dof, 0.5 * hyper.scale).sum(axis=axes))


def log_prior(
    weights: np.ndarray,
    means: np.ndarray,
    cov: np.ndarray,
    chol: np.ndarray,
    hyper: Hyperparameters | None,
    prec: np.ndarray | None = None,
):
    """Full log prior density log p(w) + log p(Sigma) + log p(mu | Sigma); 0 if no prior.

    A float for one parameter set, an array of the batch shape for a batch.
    ``prec``, the precision factor of ``chol`` (full, tied), saves the
    triangular solves when the caller has it.
    """
    if hyper is None:
        return _result(np.zeros(np.shape(weights)[:-1]))
    if hyper.covariance_type not in ("full", "tied"):
        prec = None
    return _result(
        log_dirichlet(weights, hyper.alpha)
        + log_covariance_prior(cov, chol, hyper, prec)
        + log_mean_prior(means, chol, hyper, prec)
    )


def log_prior_constant(hyper: Hyperparameters, n_components: int, n_weights: int) -> float:
    """The terms of :func:`log_prior` that do not depend on the parameters: the normalising
    constants of the Dirichlet (``n_weights`` entries), of the covariances' inverse Wishart
    (one per component for full, one for tied) or inverse gammas (diag, spherical), and of
    the ``n_components`` means' normals. What a compiled loop adds to the varying terms
    (:mod:`gmmflow.kernels.em_loop`).
    """
    t, d, nu = hyper.covariance_type, hyper.n_features, hyper.dof
    out = _log_dirichlet_norm(n_weights, float(hyper.alpha))
    out += n_components * _log_mean_prior_norm(d, hyper.shrinkage)
    if t in ("full", "tied"):
        return float(out + (n_components if t == "full" else 1) * _log_inverse_wishart_norm(nu, hyper.scale_chol))
    # diag: one inverse gamma per feature (scale (d,)), spherical one (a scalar scale)
    return float(out + n_components * np.sum(_log_inverse_gamma_norm(0.5 * nu, 0.5 * hyper.scale)))

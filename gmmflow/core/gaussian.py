"""Gaussian log-densities on Cholesky factors, for the four covariance types.

Pure numpy. Covariances are never inverted and no determinant is formed:
every covariance is factored ``Sigma = L L^T`` (``L`` lower triangular), the
whitening factor ``P = L^{-T}`` comes from a triangular solve, and
``log|Sigma| = 2 sum(log diag L)``.

Shapes by covariance type (K components, d features):

=========== ============== ==================== ==================
type        covariance     cholesky factor      precision factor
=========== ============== ==================== ==================
full        (K, d, d)      (K, d, d) lower      (K, d, d) upper
tied        (d, d)         (d, d) lower         (d, d) upper
diag        (K, d)         (K, d) = sqrt(var)   (K, d) = 1/sqrt
spherical   (K,)           (K,) = sqrt(var)     (K,) = 1/sqrt
=========== ============== ==================== ==================
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from scipy import linalg
from scipy.special import logsumexp

from gmmflow.exceptions import NotPositiveDefiniteError

COVARIANCE_TYPES = ("full", "tied", "diag", "spherical")
LOG_2PI = np.log(2.0 * np.pi)


# --------------------------------------------------------------------------
# Cholesky factors
# --------------------------------------------------------------------------
def _cholesky_matrix(cov: np.ndarray, what: str) -> np.ndarray:
    if not np.allclose(cov, cov.T, rtol=1e-10, atol=0.0):
        raise NotPositiveDefiniteError(f"{what} is not symmetric.")
    try:
        return linalg.cholesky(cov, lower=True, check_finite=True)
    except (linalg.LinAlgError, ValueError) as err:
        raise NotPositiveDefiniteError(f"{what} is not positive definite.") from err


def _cholesky_full(cov):
    return np.stack(
        [_cholesky_matrix(c, f"covariance of component {k}") for k, c in enumerate(cov)]
    )


def _cholesky_tied(cov):
    return _cholesky_matrix(cov, "tied covariance")


def _cholesky_variances(var):
    bad = ~(np.isfinite(var) & (var > 0))
    if np.any(bad):
        where = np.argwhere(bad)[0]
        raise NotPositiveDefiniteError(
            f"variance at index {tuple(int(i) for i in where)} is {var[tuple(where)]!r}; "
            "variances must be finite and > 0."
        )
    return np.sqrt(var)


_CHOLESKY: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "full": _cholesky_full,
    "tied": _cholesky_tied,
    "diag": _cholesky_variances,
    "spherical": _cholesky_variances,
}


def cholesky(cov: np.ndarray, covariance_type: str) -> np.ndarray:
    """Cholesky factor of the covariance parameter (lower; sqrt for variances).

    Raises
    ------
    NotPositiveDefiniteError
        Naming the component whose covariance is not SPD.
    """
    return _CHOLESKY[covariance_type](np.asarray(cov, dtype=np.float64))


def precision_cholesky(chol: np.ndarray, covariance_type: str) -> np.ndarray:
    """Whitening factor ``P`` with ``P P^T = Sigma^{-1}``, by triangular solve.

    For full/tied, ``P = L^{-T}`` (upper triangular), so that
    ``(x - mu) @ P`` has identity covariance. For diag/spherical, ``1/sqrt(var)``.
    """
    if covariance_type == "full":
        d = chol.shape[-1]
        eye = np.eye(d)
        return np.stack(
            [linalg.solve_triangular(c, eye, lower=True, check_finite=False).T for c in chol]
        )
    if covariance_type == "tied":
        eye = np.eye(chol.shape[-1])
        return linalg.solve_triangular(chol, eye, lower=True, check_finite=False).T
    return 1.0 / chol


def log_det_cholesky(chol: np.ndarray, covariance_type: str, n_features: int) -> np.ndarray:
    """``log|Sigma_k|`` from the Cholesky factor: (K,) (or a scalar for tied)."""
    if covariance_type in ("full", "tied"):
        return 2.0 * np.sum(np.log(np.diagonal(chol, axis1=-2, axis2=-1)), axis=-1)
    if covariance_type == "diag":
        return 2.0 * np.sum(np.log(chol), axis=-1)
    return 2.0 * n_features * np.log(chol)


# --------------------------------------------------------------------------
# Log-densities
#
# Kernels take the data transposed, ``XT`` (d, m), and return (K, m): every
# reduction then runs over a short middle axis with the long row axis inner
# (vectorised), or inside a GEMM. Reducing over a trailing axis of length d
# or K is several times slower in numpy.
# --------------------------------------------------------------------------
def _mahalanobis_full(XT, means, prec):
    d, m = XT.shape
    K = means.shape[0]
    # One GEMM for all components: Y[k] = P_k^T (x - mu_k), the offset folded in
    # as an extra column against a row of ones.
    lhs = np.empty((K * d, d + 1))
    lhs[:, :d] = prec.transpose(0, 2, 1).reshape(K * d, d)
    lhs[:, d] = -np.einsum("kd,kde->ke", means, prec).reshape(K * d)
    rhs = np.empty((d + 1, m))
    rhs[:d] = XT
    rhs[d] = 1.0
    Y = lhs @ rhs
    np.square(Y, out=Y)
    return Y.reshape(K, d, m).sum(axis=1)


def _mahalanobis_tied(XT, means, prec):
    Y = (prec.T @ XT)[None] - (means @ prec)[:, :, None]
    np.square(Y, out=Y)
    return Y.sum(axis=1)


def _mahalanobis_diag(XT, means, prec):
    Y = XT[None] - means[:, :, None]
    Y *= prec[:, :, None]
    np.square(Y, out=Y)
    return Y.sum(axis=1)


def _mahalanobis_spherical(XT, means, prec):
    Y = XT[None] - means[:, :, None]
    np.square(Y, out=Y)
    return Y.sum(axis=1) * np.square(prec)[:, None]


_MAHALANOBIS = {
    "full": _mahalanobis_full,
    "tied": _mahalanobis_tied,
    "diag": _mahalanobis_diag,
    "spherical": _mahalanobis_spherical,
}


def log_gaussian_prob(
    X: np.ndarray, means: np.ndarray, chol: np.ndarray, covariance_type: str
) -> np.ndarray:
    """``log N(x_i | mu_k, Sigma_k)`` for every row and component: (n, K).

    Data and means are first shifted by the centroid of the means, so the
    whitened differences are computed on numbers of the data's spread, not of
    its offset (features at 1e6 lose no digits).
    """
    prec = precision_cholesky(chol, covariance_type)
    centre = means.mean(axis=0)
    XT = np.ascontiguousarray((X - centre).T)
    return log_gaussian_prob_T(XT, means - centre, prec, covariance_type).T


def log_gaussian_prob_T(
    XT: np.ndarray, means: np.ndarray, prec: np.ndarray, covariance_type: str
) -> np.ndarray:
    """Kernel of :func:`log_gaussian_prob` on transposed, pre-centred data: (K, m).

    ``XT`` (d, m) and ``means`` must be in the same frame, near the data's
    centre (the EM loop shifts both by the data mean).
    """
    d = XT.shape[0]
    maha = _MAHALANOBIS[covariance_type](XT, means, prec)
    log_det = np.broadcast_to(log_det_precision(prec, covariance_type, d), (means.shape[0],))
    return -0.5 * (d * LOG_2PI + maha) + log_det[:, None]


def log_mixture_density(
    X: np.ndarray, weights: np.ndarray, means: np.ndarray, chol: np.ndarray, covariance_type: str
) -> np.ndarray:
    """``log sum_k w_k N(x_i | mu_k, Sigma_k)`` of every row: (n,), by logsumexp."""
    with np.errstate(divide="ignore"):
        log_w = np.log(weights)
    return logsumexp(log_gaussian_prob(X, means, chol, covariance_type) + log_w, axis=1)


def log_det_precision(prec: np.ndarray, covariance_type: str, n_features: int) -> np.ndarray:
    """``log|P| = -0.5 log|Sigma_k|`` from the precision factor: (K,) or scalar (tied).

    ``P`` is triangular (or diagonal) like a Cholesky factor, so this is half
    :func:`log_det_cholesky` applied to it.
    """
    return 0.5 * log_det_cholesky(prec, covariance_type, n_features)


# --------------------------------------------------------------------------
# Conversions between the compact and the full covariance representation
# --------------------------------------------------------------------------
def full_covariances(
    cov: np.ndarray, covariance_type: str, n_components: int, n_features: int
) -> np.ndarray:
    """Covariance parameter as K full (d, d) matrices (the stored form)."""
    cov = np.asarray(cov, dtype=np.float64)
    if covariance_type == "full":
        return cov.copy()
    if covariance_type == "tied":
        return np.broadcast_to(cov, (n_components, n_features, n_features)).copy()
    if covariance_type == "diag":
        return cov[:, :, None] * np.eye(n_features)[None]
    return cov[:, None, None] * np.eye(n_features)[None]


def compact_covariances(full: np.ndarray, covariance_type: str) -> np.ndarray:
    """Inverse of :func:`full_covariances`: (K, d, d) -> the type's own shape."""
    full = np.asarray(full, dtype=np.float64)
    if covariance_type == "full":
        return full.copy()
    if covariance_type == "tied":
        return full[0].copy()
    variances = np.diagonal(full, axis1=-2, axis2=-1)
    if covariance_type == "diag":
        return variances.copy()
    return variances.mean(axis=-1)


def covariance_shape(covariance_type: str, n_components: int, n_features: int) -> tuple:
    """Shape of the compact covariance parameter."""
    return {
        "full": (n_components, n_features, n_features),
        "tied": (n_features, n_features),
        "diag": (n_components, n_features),
        "spherical": (n_components,),
    }[covariance_type]


def sample_mixture(rng: np.random.Generator, n: int, weights: np.ndarray, means: np.ndarray,
                   chol: np.ndarray, covariance_type: str) -> tuple[np.ndarray, np.ndarray]:
    """``n`` rows from the mixture and the component of each: ((n, d), (n,))."""
    labels = rng.choice(weights.shape[0], size=n, p=weights / weights.sum())
    z = rng.standard_normal((n, means.shape[1]))
    if covariance_type == "full":
        X = np.einsum("nij,nj->ni", chol[labels], z)
    elif covariance_type == "tied":
        X = z @ chol.T
    elif covariance_type == "diag":
        X = z * chol[labels]
    else:
        X = z * chol[labels][:, None]
    return X + means[labels], labels

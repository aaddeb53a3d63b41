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

Any of these may carry leading batch axes, e.g. (R, K, d, d) for R restarts
advanced together: the factorisations, solves and densities below are
vectorised over them, so a batch costs one set of numpy calls, not R.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from scipy.special import logsumexp

from gmmflow.exceptions import NotPositiveDefiniteError

COVARIANCE_TYPES = ("full", "tied", "diag", "spherical")
LOG_2PI = np.log(2.0 * np.pi)


# --------------------------------------------------------------------------
# Cholesky factors
#
# Every function below takes parameters with any number of leading batch axes
# (restarts, bootstrap replicates) before the type's own shape, e.g. full
# covariances (..., K, d, d); the per-matrix work runs inside numpy's stacked
# LAPACK calls, not a Python loop.
# --------------------------------------------------------------------------
def _cholesky_matrices(cov: np.ndarray, what, check_symmetric: bool = True) -> np.ndarray:
    """Lower Cholesky factors of a stack (..., d, d); ``what(index)`` names a failing matrix."""
    if check_symmetric:
        other = np.swapaxes(cov, -1, -2)
        asymmetric = ~np.all(np.abs(cov - other) <= 1e-10 * np.abs(other), axis=(-2, -1))
        if np.any(asymmetric):
            raise NotPositiveDefiniteError(f"{what(np.argwhere(asymmetric)[0])} is not symmetric.")
    if np.isfinite(cov).all():
        try:
            return np.linalg.cholesky(cov)
        except np.linalg.LinAlgError:
            pass
    for index in np.ndindex(cov.shape[:-2]):  # only on failure: find the first bad matrix
        try:
            if not np.isfinite(cov[index]).all():
                raise np.linalg.LinAlgError
            np.linalg.cholesky(cov[index])
        except np.linalg.LinAlgError:
            raise NotPositiveDefiniteError(f"{what(np.asarray(index))} is not positive definite.") from None
    raise AssertionError("unreachable: the stacked Cholesky failed but no single matrix did")


def _cholesky_full(cov, check_symmetric=True):
    return _cholesky_matrices(cov, lambda index: f"covariance of component {int(index[-1])}", check_symmetric)


def _cholesky_tied(cov, check_symmetric=True):
    return _cholesky_matrices(cov, lambda index: "tied covariance", check_symmetric)


def _cholesky_variances(var, check_symmetric=True):
    bad = ~(np.isfinite(var) & (var > 0))
    if np.any(bad):
        where = np.argwhere(bad)[0]
        raise NotPositiveDefiniteError(
            f"variance at index {tuple(int(i) for i in where)} is {var[tuple(where)]!r}; "
            "variances must be finite and > 0."
        )
    return np.sqrt(var)


_CHOLESKY: dict[str, Callable[..., np.ndarray]] = {
    "full": _cholesky_full,
    "tied": _cholesky_tied,
    "diag": _cholesky_variances,
    "spherical": _cholesky_variances,
}


def cholesky(cov: np.ndarray, covariance_type: str, check_symmetric: bool = True) -> np.ndarray:
    """Cholesky factor of the covariance parameter (lower; sqrt for variances).

    ``cov`` has the type's shape, optionally after leading batch axes.
    ``check_symmetric=False`` skips the symmetry check for matrices symmetric
    by construction (the M-step's).

    Raises
    ------
    NotPositiveDefiniteError
        Naming the component whose covariance is not SPD.
    """
    return _CHOLESKY[covariance_type](np.asarray(cov, dtype=np.float64), check_symmetric)


def solve_lower(L: np.ndarray, B: np.ndarray) -> np.ndarray:
    """``X`` with ``L X = B`` for lower-triangular ``L`` (..., d, d) and ``B`` (..., d, m).

    Forward substitution row by row, vectorised over the (broadcast) leading
    axes: ``X_i = (B_i - L_{i,<i} X_{<i}) / L_ii``, the algorithm of LAPACK's
    ``trsm``, in d numpy steps whatever the number of matrices.
    """
    d = L.shape[-1]
    X = np.empty(np.broadcast_shapes(L.shape[:-2], B.shape[:-2]) + B.shape[-2:])
    for i in range(d):
        row = B[..., i, :] - (L[..., i:i + 1, :i] @ X[..., :i, :])[..., 0, :]
        X[..., i, :] = row / L[..., i, i, None]
    return X


def precision_cholesky(chol: np.ndarray, covariance_type: str) -> np.ndarray:
    """Whitening factor ``P`` with ``P P^T = Sigma^{-1}``, by triangular solve.

    For full/tied, ``P = L^{-T}`` (upper triangular), so that
    ``(x - mu) @ P`` has identity covariance. For diag/spherical, ``1/sqrt(var)``.
    """
    if covariance_type in ("full", "tied"):
        return solve_lower(chol, np.eye(chol.shape[-1])).swapaxes(-1, -2)
    return 1.0 / chol


def log_det_cholesky(chol: np.ndarray, covariance_type: str, n_features: int) -> np.ndarray:
    """``log|Sigma_k|`` from the Cholesky factor: (K,) (or a scalar for tied)."""
    if covariance_type in ("full", "tied"):
        return 2.0 * np.log(chol.diagonal(axis1=-2, axis2=-1)).sum(axis=-1)
    if covariance_type == "diag":
        return 2.0 * np.log(chol).sum(axis=-1)
    return 2.0 * n_features * np.log(chol)


# --------------------------------------------------------------------------
# Log-densities
#
# Kernels take the data transposed, ``XT`` (d, m), and return (..., K, m): every
# reduction then runs over a short middle axis with the long row axis inner
# (vectorised), or inside a GEMM. Reducing over a trailing axis of length d
# or K is several times slower in numpy. Parameters may carry leading batch
# axes (restarts, replicates): they all share one pass over the rows.
# --------------------------------------------------------------------------
def _mahalanobis_full(XT, means, prec):
    d, m = XT.shape
    lead = means.shape[:-1]  # (..., K)
    # One GEMM for all components (and batch entries): Y[k] = P_k^T (x - mu_k), the
    # offset folded in as an extra column against a row of ones.
    lhs = np.empty(lead + (d, d + 1))
    lhs[..., :d] = prec.swapaxes(-1, -2)
    lhs[..., d] = -np.einsum("...d,...de->...e", means, prec)
    rhs = np.empty((d + 1, m))
    rhs[:d] = XT
    rhs[d] = 1.0
    Y = lhs.reshape(-1, d + 1) @ rhs
    np.square(Y, out=Y)
    return Y.reshape(lead + (d, m)).sum(axis=-2)


def _mahalanobis_tied(XT, means, prec):
    Y = (prec.swapaxes(-1, -2) @ XT)[..., None, :, :] - (means @ prec)[..., :, :, None]
    np.square(Y, out=Y)
    return Y.sum(axis=-2)


def _mahalanobis_diag(XT, means, prec):
    Y = XT - means[..., :, :, None]
    Y *= prec[..., :, :, None]
    np.square(Y, out=Y)
    return Y.sum(axis=-2)


def _mahalanobis_spherical(XT, means, prec):
    Y = XT - means[..., :, :, None]
    np.square(Y, out=Y)
    return Y.sum(axis=-2) * np.square(prec)[..., None]


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
    XT: np.ndarray, means: np.ndarray, prec: np.ndarray, covariance_type: str, offset=0.0
) -> np.ndarray:
    """Kernel of :func:`log_gaussian_prob` on transposed, pre-centred data: (..., K, m).

    ``XT`` (d, m) and ``means`` (..., K, d) must be in the same frame, near the
    data's centre (the EM loop shifts both by the data mean). ``offset``
    (scalar or (..., K), e.g. the log-weights) is added to component k's row:
    ``log N(x_i | k) = -maha_ik / 2 + (log|P_k| - d/2 log 2 pi + offset_k)``, the
    per-component constants summed first so the (..., K, m) array takes two
    in-place passes.
    """
    d = XT.shape[0]
    log_prob = _MAHALANOBIS[covariance_type](XT, means, prec)
    log_det = log_det_precision(prec, covariance_type, d)
    if covariance_type == "tied":  # one log-det per batch entry, shared by its components
        log_det = log_det[..., None]
    constant = log_det - 0.5 * d * LOG_2PI + offset  # (..., K), or (..., 1) for tied without offset
    log_prob *= -0.5
    log_prob += constant[..., None]
    return log_prob


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
    """Covariance parameter as K full (d, d) matrices (the stored form), after any leading axes."""
    cov = np.asarray(cov, dtype=np.float64)
    if covariance_type == "full":
        return cov.copy()
    if covariance_type == "tied":
        return np.broadcast_to(cov[..., None, :, :], cov.shape[:-2] + (n_components, n_features, n_features)).copy()
    if covariance_type == "diag":
        return cov[..., :, :, None] * np.eye(n_features)
    return cov[..., :, None, None] * np.eye(n_features)


def compact_covariances(full: np.ndarray, covariance_type: str) -> np.ndarray:
    """Inverse of :func:`full_covariances`: (..., K, d, d) -> the type's own shape."""
    full = np.asarray(full, dtype=np.float64)
    if covariance_type == "full":
        return full.copy()
    if covariance_type == "tied":
        return full[..., 0, :, :].copy()
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

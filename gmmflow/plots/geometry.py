"""Geometry of the drawings: covariance ellipses, projections, feature pairs, colours."""

from __future__ import annotations

import numpy as np
from scipy.stats import chi2

LEVEL = 0.95  # probability mass inside a drawn covariance ellipse


def ellipse_geometry(cov2: np.ndarray, level: float = LEVEL) -> tuple[float, float, float]:
    """(width, height, angle in degrees) of the ``level`` contour of a 2-D Gaussian.

    From the eigendecomposition ``cov2 = V diag(l) V^T``: the contour
    ``(x - mu)^T cov2^{-1} (x - mu) = chi2_2(level)`` has semi-axes
    ``sqrt(chi2_2(level) * l_i)`` along the eigenvectors.
    """
    eigval, eigvec = np.linalg.eigh(cov2)
    radius = np.sqrt(chi2.ppf(level, df=2) * np.clip(eigval, 0.0, None))
    angle = np.degrees(np.arctan2(eigvec[1, 1], eigvec[0, 1]))  # direction of the largest axis
    return 2.0 * radius[1], 2.0 * radius[0], float(angle)


def principal_axes(X: np.ndarray, n: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """(centre (d,), basis (d, n)): the first ``n`` principal directions, from the SVD of centred X
    (its complete rows, when some have missing cells)."""
    X = X[~np.isnan(X).any(axis=1)]
    centre = X.mean(axis=0)
    _, _, vt = np.linalg.svd(X - centre, full_matrices=False)
    return centre, vt[:n].T


def project_rows(X: np.ndarray, basis: np.ndarray, centre=0.0) -> np.ndarray:
    """``(X - centre) @ basis`` on the features the basis uses: a row missing one of those is NaN
    (not drawn), one missing only other features is drawn."""
    used = np.any(basis != 0, axis=1)
    centre = np.broadcast_to(centre, X.shape[1:])
    return (X[:, used] - centre[used]) @ basis[used]


def feature_pairs(d: int) -> list[tuple[int, int, np.ndarray]]:
    """(row feature i, column feature j, basis (d, 2) selecting [j, i]) for every pair j < i."""
    eye = np.eye(d)
    return [(i, j, eye[:, [j, i]]) for i in range(1, d) for j in range(i)]


def component_colours(K: int) -> list[str]:
    return [f"C{k % 10}" for k in range(K)]


def project_parameters(mu: np.ndarray, cov: np.ndarray, basis: np.ndarray, centre=0.0):
    """Means (..., K, d) and full covariances (..., K, d, d) in the plane of ``basis`` (d, 2):
    ``(mu - centre) @ B`` and ``B^T Sigma B`` (the covariance of the projected Gaussian)."""
    return (mu - centre) @ basis, np.einsum("di,...kde,ej->...kij", basis, cov, basis)

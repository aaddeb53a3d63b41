"""Label switching: match every posterior draw's components to a pivot.

The posterior of a mixture is invariant under permuting components, so
draws carry arbitrary labellings. Each draw is relabelled to the pivot (the
EM estimate) by solving an assignment problem
(``scipy.optimize.linear_sum_assignment``) on the cost

    C[k, j] = (mu_j - mu*_k)^T Sigma*_k^{-1} (mu_j - mu*_k),

the squared Mahalanobis distance of the draw's component j from the
pivot's component k, measured in the pivot's own metric (by triangular
solves with its Cholesky factor).
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import linear_sum_assignment

from gmmflow.core.gaussian import precision_cholesky


def relabel_costs(means: np.ndarray, pivot_means: np.ndarray, pivot_chol: np.ndarray) -> np.ndarray:
    """Costs (S, K, K): ``[s, k, j]`` = distance of draw s's component j from pivot k.

    ``means`` (S, K, d); ``pivot_chol`` (K, d, d) lower Cholesky factors.
    """
    prec = precision_cholesky(pivot_chol, "full")  # (K, d, d): P_k P_k^T = Sigma_k^{-1}
    diff = means[:, None, :, :] - pivot_means[None, :, None, :]  # (S, k, j, d)
    z = np.einsum("skjd,kde->skje", diff, prec)
    return np.sum(z * z, axis=-1)


def relabel_permutations(costs: np.ndarray) -> np.ndarray:
    """Optimal assignment per draw: ``perm[s, k]`` = draw component given label k. (S, K)."""
    S, K, _ = costs.shape
    perm = np.empty((S, K), dtype=np.int64)
    for s in range(S):
        rows, cols = linear_sum_assignment(costs[s])
        perm[s, rows] = cols
    return perm


def apply_permutation(values: np.ndarray, perm: np.ndarray) -> np.ndarray:
    """Reorder the component axis (axis 1) of ``values`` (S, K, ...) by ``perm`` (S, K)."""
    index = perm.reshape(perm.shape + (1,) * (values.ndim - 2))
    return np.take_along_axis(values, index, axis=1)

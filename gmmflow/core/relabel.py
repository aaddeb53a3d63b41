"""Label switching: match every posterior draw's components to a pivot.

The posterior of a mixture is invariant under permuting components, so
draws carry arbitrary labellings. Each draw is relabelled to the pivot (the
EM estimate) by solving an assignment problem
(``scipy.optimize.linear_sum_assignment``) on the cost

    C[k, j] = (mu_j - mu*_k)^T Sigma*_k^{-1} (mu_j - mu*_k),

the squared Mahalanobis distance of the draw's component j from the
pivot's component k, measured in the pivot's own metric (by triangular
solves with its Cholesky factor).

A labelling is *ambiguous* when another assignment is nearly as good: when
the second-best assignment costs at most ``AMBIGUITY_RATIO`` times the best.
The second-best assignment differs from the best in at least one pair
(k, perm[k]); forbidding each pair in turn and solving again gives it exactly
(the first step of Murty's ranking), K solves per draw. A well-identified
draw sits near its own pivot component, at a squared distance of the order of
its sampling noise, d / n_k, and far from the others (the squared separation
of the pivot's components), so the ratio is large; a draw whose components sit
between the pivot's, or that merged two of them, has a ratio near 1.
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import linear_sum_assignment

from gmmflow.core.em_steps import Params
from gmmflow.core.gaussian import cholesky, full_covariances, precision_cholesky

AMBIGUITY_RATIO = 2.0


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


def assignment_cost(costs: np.ndarray, perm: np.ndarray) -> np.ndarray:
    """Total cost (S,) of assignments ``perm`` (S, K) under ``costs`` (S, K, K)."""
    return np.take_along_axis(costs, perm[:, :, None], axis=2)[:, :, 0].sum(axis=1)


def second_best_costs(costs: np.ndarray, perm: np.ndarray) -> np.ndarray:
    """Cost (S,) of the second-best assignment of every draw (inf when K = 1).

    ``perm`` is each draw's best assignment (:func:`relabel_permutations`).
    """
    S, K, _ = costs.shape
    out = np.full(S, np.inf)
    for s in range(S):
        for k in range(K):
            c = costs[s].copy()
            c[k, perm[s, k]] = np.inf
            try:
                rows, cols = linear_sum_assignment(c)
            except ValueError:  # no assignment avoids the pair (K = 1)
                continue
            out[s] = min(out[s], c[rows, cols].sum())
    return out


def ambiguous_labellings(costs: np.ndarray, perm: np.ndarray, ratio: float = AMBIGUITY_RATIO) -> np.ndarray:
    """True (S,) where the second-best assignment costs at most ``ratio`` times the best."""
    return second_best_costs(costs, perm) <= ratio * assignment_cost(costs, perm)


def apply_permutation(values: np.ndarray, perm: np.ndarray) -> np.ndarray:
    """Reorder the component axis (axis 1) of ``values`` (S, K, ...) by ``perm`` (S, K)."""
    index = perm.reshape(perm.shape + (1,) * (values.ndim - 2))
    return np.take_along_axis(values, index, axis=1)


def relabel_to_pivot(pivot: Params, w: np.ndarray, mu: np.ndarray, cov: np.ndarray):
    """Draws ``w`` (S, K), ``mu`` (S, K, d), full ``cov`` (S, K, d, d) relabelled to ``pivot``.

    Returns the relabelled arrays, the permutations (S, K) and the cost
    matrices (S, K, K) they were solved on.
    """
    K, d = pivot.means.shape
    pivot_chol = cholesky(full_covariances(pivot.cov, pivot.covariance_type, K, d), "full")
    costs = relabel_costs(mu, pivot.means, pivot_chol)
    perm = relabel_permutations(costs)
    return (*(apply_permutation(a, perm) for a in (w, mu, cov)), perm, costs)

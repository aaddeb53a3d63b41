"""The vectorised hc agglomeration against a brute-force replay of mclust's algorithm.

``gmmflow.core.hierarchical.agglomerate`` keeps cluster statistics updated by
rank-one formulas, recomputes only the costs of the new cluster, and keeps column
minima. The reference here recomputes, at every step, the cost of EVERY pair of
current clusters from the clusters' rows (means and scatters from scratch, the
log-determinant by LAPACK's Cholesky through ``np.linalg.cholesky``), picks the
minimum with mclust's tie rule (the last pair in packed order, ``j`` major) and
moves clusters as mclust's ``wardsw`` does. Exact ties come from duplicated rows
(their costs are exact in both routes: a union of equal rows has mean the row and
scatter exactly zero); the test checks that ties did occur.
"""

from __future__ import annotations

import numpy as np
import pytest

from gmmflow.core.hierarchical import EPS, RTHALF, agglomerate


def cluster_term(rows: np.ndarray, alpha: float, beta: float) -> float:
    """mclust's T(C) = n log(|W/n| + beta (tr W + alpha) / n), the determinant only for
    n > d, tr W != 0 and a successful Cholesky factorisation, from the rows directly."""
    n, d = rows.shape
    centred = rows - rows.mean(axis=0)
    W = centred.T @ centred
    tr = float(np.trace(W))
    out = np.log(beta * (tr + alpha) / n)
    if n > d and tr != 0.0:
        try:
            L = np.linalg.cholesky(W / n)
        except np.linalg.LinAlgError:
            return n * out
        out = np.logaddexp(2.0 * np.sum(np.log(np.diag(L))), out)
    return n * out


def pair_cost(Z, ci, cj, model, alpha, beta, terms) -> float:
    if model == "EII":  # Ward: the increase of the within sum of squares, n_i n_j / n_ij |mean_i - mean_j|^2
        delta = Z[ci].mean(axis=0) - Z[cj].mean(axis=0)
        return len(ci) * len(cj) / (len(ci) + len(cj)) * float(delta @ delta)
    if len(ci) == len(cj) == 1:  # mclust's rule for two singletons (no determinant, even for d = 1)
        v = (Z[ci[0]] - Z[cj[0]]) * RTHALF
        return 2.0 * np.log(beta * (v @ v + alpha) / 2.0) - 2.0 * np.log(beta * alpha)

    def term(rows):
        key = tuple(sorted(rows))
        if key not in terms:  # rows sorted by value: equal multisets of rows, bitwise equal terms
            terms[key] = cluster_term(Z[sorted(key, key=lambda r: tuple(Z[r]))], alpha, beta)
        return terms[key]
    return term(ci + cj) - (term(ci) + term(cj))  # symmetric in i, j to the last bit


def brute_force_tree(Z: np.ndarray, model: str, alpha0: float = 1.0, beta: float = 1.0):
    """Labels at every level (consecutive, in order of first appearance) and the number
    of steps at which two or more pairs tied for the minimum cost."""
    n, d = Z.shape
    alpha = max(alpha0 * float(np.sum((Z - Z.mean(axis=0)) ** 2)) / (n * d), EPS)
    clusters = [[i] for i in range(n)]  # by position
    terms: dict = {}
    levels, ties = {}, 0
    while True:
        labels = np.empty(n, dtype=int)
        for pos, rows in enumerate(sorted(clusters, key=min)):
            labels[rows] = pos
        levels[len(clusters)] = labels
        if len(clusters) == 1:
            return levels, ties
        G = len(clusters)
        packed = [(pair_cost(Z, clusters[i], clusters[j], model, alpha, beta, terms), i, j)
                  for j in range(1, G) for i in range(j)]  # mclust's packed order: j major
        best = min(c for c, _, _ in packed)
        chosen = [(i, j) for c, i, j in packed if c == best]
        ties += len(chosen) > 1
        i, j = chosen[-1]  # mclust's scan uses <=: the last pair wins
        clusters[i] = clusters[i] + clusters[j]
        clusters[j] = clusters[G - 1]  # wardsw: the last cluster takes position j
        clusters.pop()


def data_with_duplicates(rng, n: int, d: int) -> np.ndarray:
    """n normal rows and 2n copies of rows drawn among them (exact ties, many clusters
    of equal rows), in shuffled order."""
    X = rng.normal(size=(n, d)) * rng.uniform(0.5, 3.0, size=d)
    X = np.vstack([X, X[rng.integers(0, n, size=n)], X[rng.integers(0, n, size=n)]])
    return X[rng.permutation(X.shape[0])]


@pytest.mark.parametrize("model", ["VVV", "EII"])
@pytest.mark.parametrize("d", [1, 2, 3, 4])
def test_agglomerate_equals_brute_force_replay(d, model):
    rng = np.random.default_rng(100 * d + (model == "EII"))
    total_ties = 0
    for n in (6, 11):
        Z = data_with_duplicates(rng, n, d)
        ref, ties = brute_force_tree(Z, model)
        total_ties += ties
        ours = agglomerate(Z, range(1, Z.shape[0] + 1), model)
        for G in range(1, Z.shape[0] + 1):
            np.testing.assert_array_equal(ours[G], ref[G], err_msg=f"n={Z.shape[0]}, d={d}, {G} clusters")
    assert total_ties > 0  # the tie rule was exercised


def test_agglomerate_collinear_clusters_fall_back_to_the_trace_term():
    """Rows on a line in 3-d (every scatter singular): the factorisation fails for
    every cluster of more than d rows, and the costs use the trace term alone."""
    rng = np.random.default_rng(5)
    t = rng.normal(size=18)
    Z = np.column_stack([t, 2.0 * t, -t]) + np.array([1.0, 0.0, 3.0])
    ref, _ = brute_force_tree(Z, "VVV")
    ours = agglomerate(Z, range(1, 19), "VVV")
    for G in range(1, 19):
        np.testing.assert_array_equal(ours[G], ref[G], err_msg=f"{G} clusters")

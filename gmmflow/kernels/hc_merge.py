r"""The merge loop of mclust's hierarchical clustering, compiled by numba.

The same algorithm, formulas and order of floating-point operations as the
numpy reference :func:`gmmflow.core.hierarchical.merge_pairs` (whose module
docstring derives the criterion and the bookkeeping): every cluster's size,
scatter trace, criterion term, mean and (VVV) scatter matrix; mclust's packed
array of pair costs; the pair merged is the LAST minimum in packed order; the
union takes the lower position and the last cluster moves to the higher one.
What the numpy code does with one vectorised call per quantity (the costs of
the new cluster against all others), this loop does pair by pair, in the
order numpy's kernels add (sums over features as numpy's pairwise summation,
the Cholesky factor column by column as ``_log_det_or_nan``, ``logaddexp``
as numpy's ``npy_logaddexp``), so both give the same costs; the only
operation that can differ is ``log`` (numpy may use a vector library, e.g.
SVML on AVX-512, where this loop calls the C library), by one unit in the last
place, which can decide only between two costs within one rounding of each
other.

The one change of algorithm is the search for the minimum: instead of
scanning the ``G (G - 1) / 2`` packed costs at each merge (O(n^3 / 6) reads
in all), the loop keeps each column's minimum and its last row; the last
minimum in packed order (column major) is the last column whose minimum is
the least, at that column's last minimal row, the same pair as the scan. A
merge changes two columns (rescanned) and two rows (one comparison per
column, or a rescan of the column whose minimum it held).

``numba`` is imported at module import: :mod:`gmmflow.core.hierarchical`
imports this module only when it clusters, and falls back to the numpy loop
when the import fails (no numba). The compiled code is cached on disk
(``cache=True``) where numba caches (see :func:`merge_pairs`).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

LOGE2 = math.log(2.0)


@njit(cache=True, nogil=True)
def _numpy_sum(x, start, n):  # pragma: no cover - compiled
    """``np.add.reduce`` of ``x[start:start + n]`` (1-D, contiguous): numpy's pairwise summation."""
    if n < 8:
        res = 0.0
        for i in range(n):
            res += x[start + i]
        return res
    if n <= 128:
        r0, r1, r2, r3 = x[start], x[start + 1], x[start + 2], x[start + 3]
        r4, r5, r6, r7 = x[start + 4], x[start + 5], x[start + 6], x[start + 7]
        i = 8
        while i < n - n % 8:
            r0 += x[start + i]
            r1 += x[start + i + 1]
            r2 += x[start + i + 2]
            r3 += x[start + i + 3]
            r4 += x[start + i + 4]
            r5 += x[start + i + 5]
            r6 += x[start + i + 6]
            r7 += x[start + i + 7]
            i += 8
        res = ((r0 + r1) + (r2 + r3)) + ((r4 + r5) + (r6 + r7))
        while i < n:
            res += x[start + i]
            i += 1
        return res
    half = n // 2
    half -= half % 8
    return _numpy_sum(x, start, half) + _numpy_sum(x, start + half, n - half)


@njit(cache=True, nogil=True)
def _logaddexp(x, y):  # pragma: no cover - compiled
    """numpy's ``npy_logaddexp``."""
    if x == y:
        return x + LOGE2
    tmp = x - y
    if tmp > 0:
        return x + math.log1p(math.exp(-tmp))
    if tmp <= 0:
        return y + math.log1p(math.exp(tmp))
    return tmp


@njit(cache=True, nogil=True)
def _log_det_or_nan(W, L, d):  # pragma: no cover - compiled
    """``log|W|`` by the column Cholesky loop of ``core.hierarchical._log_det_or_nan``
    (not finite where the factorisation fails); ``L`` is scratch (d + 1, d), its
    last row the logs of the pivots, summed as numpy sums them."""
    for j in range(d):
        root = math.sqrt(W[j, j] - _row_dot(L, j, j, j))
        for i in range(j + 1, d):
            L[i, j] = (W[i, j] - _row_dot(L, i, j, j)) / root
        L[d, j] = math.log(root)
    return 2.0 * _numpy_sum(L[d], 0, d)


@njit(cache=True, nogil=True)
def _row_dot(L, i, j, m):  # pragma: no cover - compiled
    """``sum_{k<m} L[i, k] L[j, k]`` added in order (numpy's reduction over a middle axis); 0 for m = 0."""
    s = 0.0
    for k in range(m):
        s += L[i, k] * L[j, k]
    return s


@njit(cache=True, nogil=True)
def _vvv_term(size, trace, W, L, d, alpha, beta):  # pragma: no cover - compiled
    """mclust's ``vvvtij`` for one cluster, as ``core.hierarchical.vvv_terms``; ``W`` is
    the scatter divided by the size (used only when the determinant counts)."""
    out = math.log(beta * (trace + alpha) / size)
    if size > d and trace != 0.0:
        log_det = _log_det_or_nan(W, L, d)
        if math.isfinite(log_det):
            out = _logaddexp(log_det, out)
    return size * out


@njit(cache=True, nogil=True)
def _pair(a, j, size, trace, term, mean, scatter, vvv, alpha, beta, diff, W, L):  # pragma: no cover
    """Merge cost of clusters ``a`` and ``j`` and the union's term (as ``_Clusters.costs``)."""
    d = mean.shape[1]
    n_ij = size[a] + size[j]
    w = (size[a] * size[j]) / n_ij
    spread = 0.0
    for k in range(d):
        diff[k] = mean[a, k] - mean[j, k]
        spread += diff[k] * diff[k]
    if not vvv:
        cost = w * spread
        return cost, cost
    tr = (trace[a] + trace[j]) + w * spread
    if n_ij > d and tr != 0.0:
        for k in range(d):
            for m in range(d):
                W[k, m] = ((scatter[a, k, m] + scatter[j, k, m]) + w * (diff[k] * diff[m])) / n_ij
    union = _vvv_term(n_ij, tr, W, L, d, alpha, beta)
    return union - (term[a] + term[j]), union


@njit(cache=True, nogil=True)
def _merge_stats(a, b, t, size, trace, term, mean, scatter, vvv, alpha, beta, diff, W, L):  # pragma: no cover
    """Cluster ``b`` joins ``a`` (as ``_Clusters.merge``); ``t`` the union's term or NaN."""
    d = mean.shape[1]
    na, nb = size[a], size[b]
    for k in range(d):
        diff[k] = mean[a, k] - mean[b, k]
        W[0, k] = diff[k] * diff[k]
    w = (na * nb) / (na + nb)
    n_ab = na + nb
    tr = (trace[a] + trace[b]) + w * _numpy_sum(W[0], 0, d)
    for k in range(d):
        mean[a, k] = (na * mean[a, k] + nb * mean[b, k]) / n_ab
    if vvv:
        for k in range(d):
            for m in range(d):
                scatter[a, k, m] = (scatter[a, k, m] + scatter[b, k, m]) + w * (diff[k] * diff[m])
        if math.isnan(t):
            for k in range(d):
                for m in range(d):
                    W[k, m] = scatter[a, k, m] / n_ab
            t = _vvv_term(n_ab, tr, W, L, d, alpha, beta)
    size[a], trace[a], term[a] = n_ab, tr, t


@njit(cache=True, nogil=True)
def _rescan(P, start, j, col_min, col_arg):  # pragma: no cover - compiled
    """Minimum of column ``j`` (entries ``P[start + i]``, i < j) and its last row."""
    best, arg = P[start], 0
    for i in range(1, j):
        if P[start + i] <= best:
            best, arg = P[start + i], i
    col_min[j], col_arg[j] = best, arg


@njit(cache=True, nogil=True)
def merge_pairs(Z, P, vvv, alpha, beta, stop):  # pragma: no cover - compiled
    """Merge the rows of ``Z`` down to ``stop`` clusters; the merged positions at each step.

    Parameters
    ----------
    Z : ndarray (n, d), C-contiguous float64
    P : ndarray (q, n (n - 1) / 2), C-contiguous float64
        The singletons' costs in packed order (``core.hierarchical._initial_costs``,
        in logical order), for VVV with the row of union terms (NaN); updated in place.
    vvv : bool
        VVV, else EII (Ward).
    alpha, beta : float
        ``alpha`` already scaled by the data's mean variance.
    stop : int

    Returns
    -------
    ndarray of int64, shape (n - stop, 2)
        The positions ``a < b`` merged at each step.
    """
    n, d = Z.shape
    size = np.ones(n)
    trace = np.zeros(n)
    term = np.full(n, math.log(beta * alpha) if vvv else 0.0)
    mean = Z.copy()
    scatter = np.zeros((n, d, d) if vvv else (n, 0, 0))
    diff, W, L = np.empty(d), np.empty((d, d)), np.empty((d + 1, d))
    col_min, col_arg = np.empty(n), np.zeros(n, dtype=np.int64)
    tri = np.empty(n + 1, dtype=np.int64)
    for j in range(n + 1):
        tri[j] = j * (j - 1) // 2
    for j in range(1, n):
        _rescan(P[0], tri[j], j, col_min, col_arg)
    out = np.empty((n - stop, 2), dtype=np.int64)
    q = P.shape[0] - 1  # the row holding the union's term (the cost itself for EII)
    for step in range(n - stop):
        G = n - step
        b = 1
        for j in range(2, G):  # the last column holding the least cost
            if col_min[j] <= col_min[b]:
                b = j
        a = col_arg[b]
        out[step, 0], out[step, 1] = a, b
        last = G - 1
        _merge_stats(a, b, P[q, tri[b] + a], size, trace, term, mean, scatter, vvv, alpha, beta, diff, W, L)
        if b != last:  # mclust's wardsw: the last cluster moves to b
            for r in range(P.shape[0]):
                for i in range(b):
                    P[r, tri[b] + i] = P[r, tri[last] + i]
                for j in range(b + 1, last):
                    P[r, tri[j] + b] = P[r, tri[last] + j]
            size[b], trace[b], term[b] = size[last], trace[last], term[last]
            mean[b] = mean[last]
            if vvv:
                scatter[b] = scatter[last]
        for j in range(last):  # the union against every other cluster
            if j != a:
                k = tri[a] + j if j < a else tri[j] + a
                P[0, k], P[q, k] = _pair(a, j, size, trace, term, mean, scatter, vvv, alpha, beta, diff, W, L)
        for j in range(1, last):
            if j == a or j == b or col_arg[j] == a or col_arg[j] == b:
                _rescan(P[0], tri[j], j, col_min, col_arg)
                continue
            for r in (a, b):
                if r < j and P[0, tri[j] + r] <= col_min[j]:
                    if P[0, tri[j] + r] < col_min[j] or r > col_arg[j]:
                        col_min[j], col_arg[j] = P[0, tri[j] + r], r
    return out

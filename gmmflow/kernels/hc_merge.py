r"""The merge loop of mclust's hierarchical clustering, compiled by numba.

The same algorithm, formulas and order of floating-point operations as the
numpy reference :func:`gmmflow.core.hierarchical.merge_pairs` (whose module
docstring derives the criterion and the bookkeeping): every cluster's size,
scatter trace, criterion term, mean and (VVV) scatter matrix; mclust's packed
array of pair costs; the pair merged is the LAST minimum in packed order; the
union takes the lower position and the last cluster moves to the higher one.
What the numpy code does with one vectorised call per quantity (the
singletons' costs, then the costs of each new cluster against all others),
this module does pair by pair, in the order numpy's kernels add (sums over
features in order, or as numpy's pairwise summation where numpy sums a
contiguous row, the Cholesky factor column by column as ``_log_det_or_nan``,
``logaddexp`` as numpy's ``npy_logaddexp``), so both give the same costs bit
for bit, but where numpy's ``log`` (a vector library, e.g. SVML on AVX-512,
where this loop calls the C library) or, above four features, its LAPACK
Cholesky rounds differently. Measured: of the singletons' costs (Faithful,
geyser, iris, wine, random 5- and 9-dimensional data; 11,000 to 45,000 pairs
each) 2 to 22 per data set differed, by at most 2 units in the last place of
their log terms (Ward's costs, without a logarithm, all equal); of the costs
computed in the merges, 0 to 4 of about 11,000 live costs, by at most 2 units
in the last place (5.7e-16 relative). Exact ties (duplicated rows, lattices) are
computed identically in each loop; a rounding difference can decide only
between two costs within two units in the last place of each other, and the
tests find the same merges at every step on every data set tried.

Two changes of algorithm, neither of which changes a merge:

- The search for the minimum: instead of scanning the ``G (G - 1) / 2``
  packed costs at each merge (O(n^3 / 6) reads in all), the loop keeps each
  column's minimum and its last row; the last minimum in packed order (column
  major) is the last column whose minimum is the least, at that column's last
  minimal row, the same pair as the scan. A merge changes two columns
  (rescanned) and two rows (one comparison per column, or a rescan of the
  column whose minimum it held when its new value is larger).
- Costs on demand (VVV): a merge stores the costs of the new cluster against
  the others without the determinant, ``n log(beta (tr W + alpha) / n) - T(a)
  - T(j)``, one logarithm per pair, a lower bound of the cost (in floating
  point too, :func:`_pair_bound`); a bound is replaced by the exact cost (the
  Cholesky factor, d logarithms, ``logaddexp``) only when the search finds it
  least (:func:`_least_exact`), and a pair found exact is the pair the scan of
  exact costs picks. Most bounds are overwritten before that: on Faithful 280
  of 36,585 costs of merged clusters were completed, on iris 66 of 11,026, on
  wine 29 of 15,576, on geyser 306 of 44,253.

``numba`` is imported at module import: :mod:`gmmflow.core.hierarchical`
imports this module only when it clusters, and falls back to the numpy loop
when the import fails (no numba). The compiled code is cached on disk
(``cache=True``) where numba caches compiled code: ``__pycache__`` beside
this file when that is writable (as Python's bytecode), else the user's cache
directory (``~/.cache/numba``), or ``NUMBA_CACHE_DIR`` when set. Compiling
takes seconds once; a later process loads it in milliseconds
(``bench/hc_kernel.py``).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

LOGE2 = math.log(2.0)
RTHALF = 0.7071067811865476  # the constant of mclust's Fortran (core.hierarchical.RTHALF)
# numpy's floating-point semantics (x / 0 is inf or NaN, not ZeroDivisionError: a zero
# Cholesky pivot must give a non-finite log-determinant, as in the numpy loop)
_compiled = njit(cache=True, nogil=True, error_model="numpy")


MAX_D = 128  # numpy's pairwise summation adds up to 128 numbers in one block; above, it recurses


@_compiled
def _numpy_sum(x, n):  # pragma: no cover - compiled
    """``np.add.reduce(x[:n])`` for contiguous 1-D ``x`` and ``n <= MAX_D``: numpy's pairwise
    summation (sequential below 8 numbers, else eight interleaved partial sums); above
    ``MAX_D`` numpy recurses, which cached numba code cannot, so callers stay below."""
    if n < 8:
        res = 0.0
        for i in range(n):
            res += x[i]
        return res
    r0, r1, r2, r3, r4, r5, r6, r7 = x[0], x[1], x[2], x[3], x[4], x[5], x[6], x[7]
    i = 8
    while i < n - n % 8:
        r0 += x[i]
        r1 += x[i + 1]
        r2 += x[i + 2]
        r3 += x[i + 3]
        r4 += x[i + 4]
        r5 += x[i + 5]
        r6 += x[i + 6]
        r7 += x[i + 7]
        i += 8
    res = ((r0 + r1) + (r2 + r3)) + ((r4 + r5) + (r6 + r7))
    while i < n:
        res += x[i]
        i += 1
    return res


@_compiled
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


@_compiled
def _log_det_or_nan(W, L, d):  # pragma: no cover - compiled
    """``log|W|`` by the column Cholesky loop of ``core.hierarchical._log_det_or_nan``
    (not finite where the factorisation fails); ``L`` is scratch (d + 1, d), its
    last row the logs of the pivots, summed as numpy sums them."""
    for j in range(d):
        root = math.sqrt(W[j, j] - _row_dot(L, j, j, j))
        for i in range(j + 1, d):
            L[i, j] = (W[i, j] - _row_dot(L, i, j, j)) / root
        L[d, j] = math.log(root)
    return 2.0 * _numpy_sum(L[d], d)


@_compiled
def _row_dot(L, i, j, m):  # pragma: no cover - compiled
    """``sum_{k<m} L[i, k] L[j, k]`` added in order (numpy's reduction over a middle axis); 0 for m = 0."""
    s = 0.0
    for k in range(m):
        s += L[i, k] * L[j, k]
    return s


@_compiled
def _vvv_term(size, trace, W, L, d, alpha, beta):  # pragma: no cover - compiled
    """mclust's ``vvvtij`` for one cluster, as ``core.hierarchical.vvv_terms``; ``W`` is
    the scatter divided by the size (used only when the determinant counts)."""
    out = math.log(beta * (trace + alpha) / size)
    if size > d and trace != 0.0:
        log_det = _log_det_or_nan(W, L, d)
        if math.isfinite(log_det):
            out = _logaddexp(log_det, out)
    return size * out


@_compiled
def _pair_bound(a, j, size, trace, term, mean, vvv, alpha, beta, d):  # pragma: no cover - compiled
    """Merge cost of clusters ``a`` and ``j`` without the determinant (as ``_Clusters.costs``
    up to ``vvv_terms``' ``logaddexp``): ``(cost, second, exact)``.

    For EII the cost, twice. For VVV, with ``log`` the union's trace term
    ``log(beta (tr W_aj + alpha) / n_aj)``, ``cost`` is ``n_aj log - T(a) - T(j)``;
    it is exact (``second`` the union's term ``n_aj log``) unless the determinant
    may count (more than d rows, non-zero trace; ``second`` is then ``log``, which
    :func:`_exact_cost` completes). A cost not exact is a
    lower bound then, in floating point too: ``logaddexp(x, log)`` rounds to at
    least ``log`` (numpy's formula adds a non-negative ``log1p`` to the larger
    argument), and multiplying by ``n_aj > 0`` and subtracting the same
    ``T(a) + T(j)`` keep the order. The operations are those of ``_pair_sums``,
    in the same order; they are symmetric in ``a`` and ``j`` to the last bit
    (IEEE sums and products commute, and ``-x * -y = x * y``).
    """
    n_aj = size[a] + size[j]
    w = (size[a] * size[j]) / n_aj
    spread = 0.0
    for k in range(d):
        delta = mean[a, k] - mean[j, k]
        spread += delta * delta
    if not vvv:
        cost = w * spread
        return cost, cost, True
    tr = (trace[a] + trace[j]) + w * spread
    log = math.log(beta * (tr + alpha) / n_aj)
    union = n_aj * log
    if n_aj > d and tr != 0.0:
        return union - (term[a] + term[j]), log, False
    return union - (term[a] + term[j]), union, True


@_compiled
def _exact_cost(a, j, log, size, term, mean, scatter, W, L, d):  # pragma: no cover - compiled
    """The cost of a pair whose bound (:func:`_pair_bound`, trace term ``log``) is not
    exact: ``W_aj / n_aj`` factorised, ``log|W_aj / n_aj|`` added by ``logaddexp`` where
    the factorisation succeeds (as ``_vvv_term``); ``(cost, union term)``."""
    n_aj = size[a] + size[j]
    w = (size[a] * size[j]) / n_aj
    for k in range(d):
        for m in range(d):
            W[k, m] = ((scatter[a, k, m] + scatter[j, k, m])
                       + w * ((mean[a, k] - mean[j, k]) * (mean[a, m] - mean[j, m]))) / n_aj
    log_det = _log_det_or_nan(W, L, d)
    if math.isfinite(log_det):
        log = _logaddexp(log_det, log)
    union = n_aj * log
    return union - (term[a] + term[j]), union


@_compiled
def _merge_stats(a, b, t, size, trace, term, mean, scatter, vvv, alpha, beta, diff, W, L):  # pragma: no cover
    """Cluster ``b`` joins ``a`` (as ``_Clusters.merge``); ``t`` the union's term or NaN."""
    d = mean.shape[1]
    na, nb = size[a], size[b]
    for k in range(d):
        diff[k] = mean[a, k] - mean[b, k]
        W[0, k] = diff[k] * diff[k]
    w = (na * nb) / (na + nb)
    n_ab = na + nb
    tr = (trace[a] + trace[b]) + w * _numpy_sum(W[0], d)
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


@_compiled
def _rescan(P, start, j, col_min, col_arg):  # pragma: no cover - compiled
    """Minimum of column ``j`` (entries ``P[start + i]``, i < j) and its last row."""
    best, arg = P[start], 0
    for i in range(1, j):
        if P[start + i] <= best:
            best, arg = P[start + i], i
    col_min[j], col_arg[j] = best, arg


@_compiled
def _keeps_minimum(P, start, j, a, b, col_min, col_arg):  # pragma: no cover - compiled
    """Whether column ``j``'s minimum is known without a rescan after rows ``a`` and ``b``
    changed: yes if neither held it, or if the one that held it is now at most the old
    minimum (every other row is at least that, and a row after it was more; its new
    value is then the minimum, at its row); false if its new value is larger."""
    i = col_arg[j]
    if i != a and i != b:
        return True
    if P[start + i] > col_min[j]:
        return False
    col_min[j] = P[start + i]
    return True


@_compiled
def _offer(P, start, i, j, col_min, col_arg):  # pragma: no cover - compiled
    """Entry ``i`` of column ``j`` changed (and did not hold the minimum): keep the
    column's minimum and its last row."""
    v = P[start + i]
    if v < col_min[j] or (v == col_min[j] and i > col_arg[j]):
        col_min[j], col_arg[j] = v, i


def merge_pairs(Z: np.ndarray, vvv: bool, alpha: float, beta: float, stop: int) -> np.ndarray:
    """Merge the rows of ``Z`` down to ``stop`` clusters; the merged positions at each step.

    Parameters
    ----------
    Z : ndarray (n, d), C-contiguous float64
    vvv : bool
        VVV, else EII (Ward).
    alpha, beta : float
        ``alpha`` already scaled by the data's mean variance.
    stop : int

    Returns
    -------
    ndarray of int64, shape (n - stop, 2)
        The positions ``a < b`` merged at each step.

    Notes
    -----
    The singletons' costs are computed here (:func:`_initial_costs`, as
    ``core.hierarchical._initial_costs``). The arrays are allocated here, by
    numpy: numba's own versions of numpy's constructors are compiled in every
    process (they are not in the on-disk cache of the loop), and took seconds.
    """
    n, d = Z.shape
    j = np.arange(n + 1)
    tri = j * (j - 1) // 2
    P = np.empty((2 if vvv else 1, tri[n]))
    stats = np.zeros((3, n))
    stats[0] = 1.0  # sizes; traces 0; the singletons' terms 1 log(alpha beta) (VVV)
    stats[2] = np.log(beta * alpha) if vvv else 0.0
    scatter = np.zeros((n, d, d) if vvv else (n, 0, 0))
    out = np.empty((n - stop, 2), dtype=np.int64)
    _initial_costs(Z, P, vvv, alpha, beta)
    _merge_loop(Z.copy(), P, np.zeros(tri[n] if vvv else 0, dtype=np.bool_), vvv, alpha, beta, stats, scatter,
                tri, np.empty(n), np.zeros(n, dtype=np.int64), np.empty((2 * d + 2, d)), out)
    return out


@_compiled
def _initial_costs(Z, P, vvv, alpha, beta):  # pragma: no cover - compiled
    """The singletons' costs in packed order, as ``core.hierarchical._initial_costs``
    (mclust's rule for two singletons, the features' squares added in order); for
    VVV the row of union terms NaN (computed when the two merge)."""
    n, d = Z.shape
    ablog = math.log(beta * alpha)
    k = 0
    for j in range(1, n):
        for i in range(j):
            tr = 0.0
            for m in range(d):
                v = (Z[i, m] - Z[j, m]) * RTHALF
                tr += v * v
            if vvv:
                P[0, k] = 2.0 * math.log(beta * (tr + alpha) / 2.0) - (ablog + ablog)
                P[1, k] = math.nan
            else:
                P[0, k] = tr
            k += 1


@_compiled
def _move_last(x, tri, b, last):  # pragma: no cover - compiled
    """mclust's ``wardsw`` on one packed row: the pairs of the last position become
    those of position ``b``."""
    for i in range(b):
        x[tri[b] + i] = x[tri[last] + i]
    for j in range(b + 1, last):
        x[tri[j] + b] = x[tri[last] + j]


@_compiled
def _least_exact(P, stale, size, term, mean, scatter, W, L, tri, G, col_min, col_arg):  # pragma: no cover
    """The pair to merge: the last least cost in packed order, its cost exact.

    The last column holding the least value, at that column's last minimal row
    (the order of mclust's ``<=`` scan); while that entry is a lower bound
    (``stale``, :func:`_pair_bound`), its exact cost replaces it and the search
    starts again. A pair found exact is the last minimum of the exact costs: every
    bound left is at least the least value, and a bound equal to it belongs to an
    earlier pair (or it would have been found), whose cost, at least as large, can
    only tie with an earlier pair, which the tie rule passes over.
    """
    d = mean.shape[1]
    while True:
        b = 1
        for j in range(2, G):
            if col_min[j] <= col_min[b]:
                b = j
        a = col_arg[b]
        k = tri[b] + a
        if stale.size == 0 or not stale[k]:
            return a, b
        P[0, k], P[1, k] = _exact_cost(a, b, P[1, k], size, term, mean, scatter, W, L, d)
        stale[k] = False
        _rescan(P[0], tri[b], b, col_min, col_arg)


@_compiled
def _merge_loop(mean, P, stale, vvv, alpha, beta, stats, scatter, tri, col_min, col_arg, scratch,
                out):  # pragma: no cover - compiled
    """The loop of :func:`merge_pairs`: ``mean`` (n, d) starts as the rows, ``stats``
    rows the sizes, traces and terms, ``col_min`` and ``col_arg`` each column's least
    cost and the last row holding it, ``scratch`` rows the mean difference, the
    union's scatter (d rows) and the Cholesky factor with its log-pivots (d + 1
    rows); ``out`` receives the merges.

    For VVV the costs of a new cluster are first kept as lower bounds without the
    determinant (``stale``, the trace term's log in ``P[1]``): most pairs never come
    near the least cost before one of their clusters merges again, and the
    factorisation, its d logs and ``logaddexp`` are paid only for the pairs
    :func:`_least_exact` reaches. Every cost that decides a merge is the exact
    one, computed by the same operations as the numpy loop's."""
    n, d = mean.shape
    size, trace, term = stats[0], stats[1], stats[2]
    diff, W, L = scratch[0], scratch[1:d + 1], scratch[d + 1:]
    for j in range(1, n):
        _rescan(P[0], tri[j], j, col_min, col_arg)
    q = P.shape[0] - 1  # the row holding the union's term (the cost itself for EII)
    for step in range(out.shape[0]):
        G = n - step
        a, b = _least_exact(P, stale, size, term, mean, scatter, W, L, tri, G, col_min, col_arg)
        out[step, 0], out[step, 1] = a, b
        last = G - 1
        _merge_stats(a, b, P[q, tri[b] + a], size, trace, term, mean, scatter, vvv, alpha, beta, diff, W, L)
        if b != last:  # mclust's wardsw: the last cluster moves to b
            for r in range(P.shape[0]):
                _move_last(P[r], tri, b, last)
            if vvv:
                _move_last(stale, tri, b, last)
            for r in range(3):
                stats[r, b] = stats[r, last]
            for k in range(d):
                mean[b, k] = mean[last, k]
                for m in range(scatter.shape[2]):
                    scatter[b, k, m] = scatter[last, k, m]
        for j in range(last):  # the union against every other cluster
            if j != a:
                k = tri[a] + j if j < a else tri[j] + a
                P[0, k], P[q, k], exact = _pair_bound(a, j, size, trace, term, mean, vvv, alpha, beta, d)
                if vvv:
                    stale[k] = not exact
        for j in range(1, last):
            if j == a or j == b or not _keeps_minimum(P[0], tri[j], j, a, b, col_min, col_arg):
                _rescan(P[0], tri[j], j, col_min, col_arg)
                continue
            if a < j:
                _offer(P[0], tri[j], a, j, col_min, col_arg)
            if b < j:
                _offer(P[0], tri[j], b, j, col_min, col_arg)


def cut_levels(pairs: np.ndarray, n: int, ks: np.ndarray) -> np.ndarray:
    """Labels at each number of clusters in ``ks`` (descending, int64) from the merge
    sequence, as ``core.hierarchical._cut_levels``: shape (len(ks), n), row ``r`` the
    labels ``0..ks[r]-1`` numbered in order of first appearance."""
    out = np.empty((ks.size, n), dtype=np.int64)
    rows = np.arange(n)
    _cut(pairs, ks, rows.copy(), rows.copy(), np.full(n, -1), rows.copy(), np.full(n, -1), np.empty(n, np.int64),
         out)
    return out


@_compiled
def _cut(pairs, ks, head, tail, after, first, owner, rank, out):  # pragma: no cover - compiled
    """The rows at each position as linked lists (``head``, ``tail``, ``after``) following
    the merges (the union at ``a``, the last position moved to ``b``), each list's
    least row in ``first``; at each level in ``ks`` a position's label is the rank of
    its least row (``owner`` maps a row to the position it is least of, -1 else)."""
    n = head.size
    level = 0
    G = n
    while level < ks.size:
        if G == ks[level]:
            for p in range(G):
                owner[first[p]] = p
            label = 0
            for r in range(n):
                if owner[r] >= 0:
                    rank[owner[r]] = label
                    label += 1
                    owner[r] = -1
            for p in range(G):
                r = head[p]
                while r >= 0:
                    out[level, r] = rank[p]
                    r = after[r]
            level += 1
            continue
        a, b = pairs[n - G, 0], pairs[n - G, 1]
        after[tail[a]] = head[b]
        tail[a] = tail[b]
        first[a] = min(first[a], first[b])
        last = G - 1
        if b != last:
            head[b], tail[b], first[b] = head[last], tail[last], first[last]
        G -= 1

r"""mclust's model-based agglomerative hierarchical clustering, for initialising EM.

R's ``Mclust()`` starts EM from a partition cut from one hierarchical clustering
(``hc()``; Banfield & Raftery 1993, Fraley 1998): every row starts as its own
cluster and the pair whose merge costs the least classification likelihood is
merged, until one cluster is left. The partition at K clusters, as one-hot
responsibilities, gives EM its first M-step. This module reproduces mclust's
defaults in pure numpy:

- ``hcUse = "SVD"``: centre and scale each feature (sd with denominator n - 1),
  drop non-finite columns, take the thin SVD ``Xs = U S V^T`` and cluster
  ``Z = Xs V S^{-1/2}`` (note the square root: the columns of ``Z`` have sums of
  squares ``S``, not 1). The criterion below is invariant to the signs of ``V``'s
  columns, so LAPACK's sign conventions do not matter.
- ``hcModelName = "VVV"`` for d > 1 (``"EII"`` when n <= d, as ``mclustBIC`` does;
  EII is Ward's criterion, computed directly; checked against mclust on iris and
  on wine's first 10 rows);
  for d = 1 ``Mclust`` does not call ``hc`` at all but cuts the data at quantiles
  (``qclass``), reproduced by :func:`quantile_partition`.
- Above ``mclust.options("subset") = 2000`` rows, ``mclustBIC`` runs ``hc`` on a
  random subset of 2000 rows, does one M-step on that subset and one E-step on all
  rows; :data:`MAX_HC_ROWS` is the same threshold (the cost here is
  O(n^2 d^2) time and O(n^2) memory: 2000 rows took 0.8-1.2 s and 32 MB here;
  faithful takes 0.09 s against 0.008 s for mclust's Fortran).

The VVV criterion
-----------------
For a hard partition into clusters C with ``n_C`` rows, mean ``xbar_C`` and scatter
``W_C = sum_{i in C} (x_i - xbar_C)(x_i - xbar_C)^T``, the classification
log-likelihood maximised over the cluster means and unconstrained covariances is
``-1/2 sum_C n_C log|W_C / n_C|`` + const (Banfield & Raftery 1993), so merging
clusters i and j costs ``n_ij log|W_ij/n_ij| - n_i log|W_i/n_i| - n_j log|W_j/n_j|``,
with ``W_ij = W_i + W_j + (n_i n_j / n_ij)(xbar_i - xbar_j)(xbar_i - xbar_j)^T``.
``|W_C|`` is zero for clusters of at most d rows (every cluster at the start), so
mclust's Fortran (``hcvvv``/``vvvtij`` in ``src/mclust.f``, mclust 6.0.0) scores a
cluster with a trace-regularised term

.. math::

    T(C) = n_C \log\big(|W_C/n_C| + \beta (\operatorname{tr} W_C + \alpha)/n_C\big),
    \qquad |W_C/n_C| := 0 \text{ when } n_C \le d,

and merges the pair with the smallest ``T(i u j) - T(i) - T(j)``. For small
clusters this is the spherical (VII-like) criterion ``n log(tr W / n)``, made finite
for singletons (``tr W = 0``; a singleton scores ``log(alpha beta)``) by
``alpha = alpha_0 * tr(W_all) / (n d)``, the mean per-feature variance of the
clustered data (denominator n), with ``alpha_0 = beta = 1`` (``hcVVV``'s
defaults; ``alpha`` is floored at machine epsilon). For clusters of more than d
rows the determinant dominates once it is not negligible. The Fortran keeps each
cluster's upper-triangular factor ``R_C`` (``R_C^T R_C = W_C``) updated by Givens
rotations (``mclrup``), its trace, and ``sqrt(n_C) xbar_C``; ``log|W_C/n_C|`` is
``2 sum log|R_kk / sqrt(n_C)|``, and a zero pivot (exactly singular ``W_C``) falls
back to the trace term. Here ``W_ij`` is formed from the clusters' scatters and the
log-determinant comes from its Cholesky factor; a failed factorisation (singular
``W``) falls back to the trace term as mclust's zero pivot does. The two agree to
round-off, which decides only exact ties, and those this module breaks as mclust
does (below).

Bookkeeping (what makes the merge sequence identical)
-----------------------------------------------------
Clusters occupy positions ``0..G-1``; the merge cost of each pair ``i < j`` is kept
(mclust's packed array ``d``). The pair chosen is the minimum with ties going to
the LAST pair in packed order (``j`` major, ``i`` minor): mclust's scan uses
``<=``. After merging ``i < j`` the union takes position ``i`` and the cluster at
the last position moves to ``j`` (``wardsw``); then the costs of the union against
every other cluster are recomputed. Exact ties do occur: duplicated rows (faithful
has 16, geyser 42) all merge at the same cost ``-2 log 2``.
"""

from __future__ import annotations

from functools import lru_cache
from typing import NamedTuple

import numpy as np
from numpy.typing import ArrayLike

from gmmflow.core.em_steps import m_step_from_responsibilities

MAX_HC_ROWS = 2000  # mclust.options("subset")
HC_LEVELS = 9  # partitions kept per tree, K = 1..9 (mclust's default G range)
EPS = np.finfo(np.float64).eps
RTHALF = 0.7071067811865476  # the constant of mclust's Fortran
HC_MODELS = ("VVV", "EII")
HC_USES = ("SVD", "VARS")


class HCPartitions(NamedTuple):
    """Partitions cut from one hierarchical clustering.

    Attributes
    ----------
    labels : dict[int, ndarray of int]
        For each K, labels ``0..K-1`` numbered in order of first appearance (mclust's
        ``partconv(consec = TRUE)``, minus one) for the rows in ``rows``.
    rows : ndarray of int or None
        Indices of the rows that were clustered (a seeded subsample above
        ``max_rows``); ``None`` when all rows were.
    """

    labels: dict
    rows: np.ndarray | None


# --------------------------------------------------------------------------
# data transformation
# --------------------------------------------------------------------------
def svd_transform(X: ArrayLike) -> np.ndarray:
    """mclust's ``hcUse = "SVD"``: ``Z = scale(X) V diag(1 / sqrt(s))``.

    Parameters
    ----------
    X : array_like of shape (n, d)

    Returns
    -------
    ndarray of shape (n, min(n, d'))
        ``d'`` the number of features with finite standardised values (constant
        features are dropped); directions with a zero singular value (collinear
        features, where mclust would divide by zero) are dropped too.
    """
    X = np.asarray(X, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        Xs = (X - X.mean(axis=0)) / X.std(axis=0, ddof=1)
    Xs = Xs[:, np.all(np.isfinite(Xs), axis=0)]
    _, s, vt = np.linalg.svd(Xs, full_matrices=False)
    keep = s > EPS * Xs.shape[0] * s.max(initial=0.0)  # collinear features: mclust would divide by 0
    return (Xs @ vt[keep].T) / np.sqrt(s[keep])


def _transform(X: np.ndarray, use: str) -> np.ndarray:
    if use == "SVD":
        return svd_transform(X)
    return X  # "VARS": the data as they are


# --------------------------------------------------------------------------
# merge costs
# --------------------------------------------------------------------------
class _Clusters:
    """Per-position cluster statistics: size, mean, scatter, trace, criterion term."""

    def __init__(self, Z: np.ndarray):
        n, d = Z.shape
        self.size = np.ones(n, dtype=np.int64)
        self.mean = Z.copy()
        self.scatter = np.zeros((n, d, d))
        self.trace = np.zeros(n)
        self.term = np.zeros(n)

    def move(self, src: int, dst: int) -> None:
        for arr in (self.size, self.mean, self.scatter, self.trace, self.term):
            arr[dst] = arr[src]


def _log_det_or_nan(W: np.ndarray) -> np.ndarray:
    """``log|W|`` of a stack of symmetric matrices by Cholesky; NaN where it fails.

    LAPACK on the whole stack first; if any matrix is not positive definite
    (a cluster of more than d rows on a line: duplicated or discretised data),
    the same factorisation column by column, vectorised over the stack, with a
    non-positive (or NaN) pivot marking failure as LAPACK's ``potrf`` does.
    """
    try:
        L = np.linalg.cholesky(W)
        return 2.0 * np.sum(np.log(np.diagonal(L, axis1=-2, axis2=-1)), axis=-1)
    except np.linalg.LinAlgError:
        pass
    m, d, _ = W.shape
    L = np.zeros_like(W)
    ok = np.ones(m, dtype=bool)
    log_det = np.zeros(m)
    for j in range(d):
        pivot = W[:, j, j] - np.einsum("mk,mk->m", L[:, j, :j], L[:, j, :j])
        ok &= pivot > 0.0
        root = np.sqrt(np.where(ok, pivot, 1.0))
        log_det += 2.0 * np.log(root)
        L[:, j, j] = root
        L[:, j + 1:, j] = (W[:, j + 1:, j] - (L[:, j + 1:, :j] @ L[:, j, :j, None])[..., 0]) / root[:, None]
    log_det[~ok] = np.nan
    return log_det


def vvv_terms(size: np.ndarray, trace: np.ndarray, scatter: np.ndarray | None,
              alpha: float, beta: float) -> np.ndarray:
    """mclust's ``vvvtij``: ``n log(|W/n| + beta (tr W + alpha) / n)`` per cluster.

    The determinant counts only for clusters of more than d rows with ``tr W > 0``
    and an SPD scatter (else 0, as mclust's zero-pivot fallback).

    Parameters
    ----------
    size : ndarray (m,)
    trace : ndarray (m,)
    scatter : ndarray (m', d, d) or None
        The scatters of the clusters with ``size > d`` and ``tr W > 0`` only, in
        order (None when there are none).
    alpha, beta : float
    """
    r = size.astype(np.float64)
    out = np.log(beta * (trace + alpha) / r)
    big = _big(size, trace, None if scatter is None else scatter.shape[-1])
    if big.size:
        detlog = _log_det_or_nan(scatter / r[big, None, None])
        ok = np.isfinite(detlog)
        out[big[ok]] = np.logaddexp(detlog[ok], out[big[ok]])
    return r * out


def _big(size: np.ndarray, trace: np.ndarray, d: int | None) -> np.ndarray:
    """Clusters whose determinant term counts: more than d rows and a non-zero trace."""
    if d is None:
        return np.zeros(0, dtype=np.int64)
    return np.flatnonzero((size > d) & (trace != 0.0))


def _merged_stats(c: _Clusters, a: int, G: int):
    """Size, trace and the scatters needed by :func:`vvv_terms` of cluster ``a`` merged
    with each cluster at positions ``0..G-1`` (the entry for ``a`` itself is meaningless)."""
    d = c.mean.shape[1]
    na, nj = c.size[a], c.size[:G]
    nij = na + nj
    diff = c.mean[a] - c.mean[:G]
    w = (na * nj) / nij
    trace = (c.trace[a] + c.trace[:G]) + w * np.einsum("kd,kd->k", diff, diff)
    big = _big(nij, trace, d)
    scatter = None
    if big.size:
        db = diff[big]
        scatter = (c.scatter[a] + c.scatter[big]) + w[big, None, None] * (db[:, :, None] * db[:, None, :])
    return nij, trace, scatter


def _vvv_costs(c: _Clusters, a: int, G: int, alpha: float, beta: float) -> np.ndarray:
    """Cost of merging cluster ``a`` with each cluster at ``0..G-1`` (entry ``a`` meaningless).

    Cluster ``a`` has just been formed by a merge, so it has two rows or more and
    the rule for two singletons (in :func:`_initial_costs`) never applies here.
    """
    nij, trace, scatter = _merged_stats(c, a, G)
    return vvv_terms(nij, trace, scatter, alpha, beta) - (c.term[a] + c.term[:G])


def _eii_costs(c: _Clusters, a: int, G: int, alpha: float, beta: float) -> np.ndarray:
    """Ward's criterion (mclust's ``hceii``): the increase of the total within scatter."""
    na, nj = c.size[a], c.size[:G]
    diff = c.mean[a] - c.mean[:G]
    return (na * nj) / (na + nj) * np.einsum("kd,kd->k", diff, diff)


def _merge_into(c: _Clusters, a: int, b: int, model: str, alpha: float, beta: float) -> None:
    """Cluster ``b`` joins cluster ``a`` (statistics at position ``a``)."""
    na, nb = c.size[a], c.size[b]
    diff = c.mean[a] - c.mean[b]
    w = (na * nb) / (na + nb)
    c.scatter[a] = c.scatter[a] + c.scatter[b] + w * np.outer(diff, diff)
    c.trace[a] = (c.trace[a] + c.trace[b]) + w * np.einsum("d,d->", diff, diff)
    c.mean[a] = (na * c.mean[a] + nb * c.mean[b]) / (na + nb)
    c.size[a] = na + nb
    if model == "VVV":
        big = _big(c.size[a:a + 1], c.trace[a:a + 1], c.mean.shape[1])
        c.term[a] = vvv_terms(c.size[a:a + 1], c.trace[a:a + 1], c.scatter[a:a + 1][big] if big.size else None,
                              alpha, beta)[0]


def _initial_costs(Z: np.ndarray, model: str, alpha: float, beta: float) -> np.ndarray:
    """Cost of merging each pair of singletons (upper triangle), as mclust computes it."""
    n = Z.shape[0]
    D = np.full((n, n), np.inf)
    ablog = np.log(beta * alpha)
    for i in range(n - 1):
        v = (Z[i] - Z[i + 1:]) * RTHALF
        tr = np.einsum("kd,kd->k", v, v)
        if model == "VVV":
            D[i, i + 1:] = 2.0 * np.log(beta * (tr + alpha) / 2.0) - (ablog + ablog)
        else:
            D[i, i + 1:] = tr
    return D


# --------------------------------------------------------------------------
# the agglomeration
# --------------------------------------------------------------------------
def _last_argmin(values: np.ndarray) -> int:
    """Index of the last occurrence of the minimum (mclust's ``<=`` scan)."""
    return values.size - 1 - int(np.argmin(values[::-1]))


def _rescan(D, colmin, colarg, cols: np.ndarray, G: int) -> None:
    """Minimum of each column in ``cols`` over rows ``0..G-1`` (entries on and below the
    diagonal are inf), the last row on ties; (inf, -1) for an all-inf column."""
    if cols.size == 0:
        return
    last = G - 1 - np.argmin(D[:G, cols][::-1], axis=0)
    colmin[cols] = D[last, cols]
    colarg[cols] = np.where(np.isfinite(colmin[cols]), last, -1)


def agglomerate(Z: ArrayLike, ks, model: str = "VVV", alpha: float = 1.0,
                beta: float = 1.0) -> dict:
    """Merge clusters of the rows of ``Z`` down to each K in ``ks``.

    Parameters
    ----------
    Z : array_like of shape (n, d)
        Data in the frame to cluster in (e.g. :func:`svd_transform` of X).
    ks : iterable of int
        Numbers of clusters, each in ``1..n``.
    model : {"VVV", "EII"}
    alpha, beta : float
        mclust's ``hcVVV`` arguments; ``alpha`` is multiplied by
        ``tr(W_all) / (n d)`` as mclust does.

    Returns
    -------
    dict[int, ndarray of int]
        Labels ``0..K-1`` in order of first appearance, for each K.
    """
    Z = np.ascontiguousarray(Z, dtype=np.float64)
    n, d = Z.shape
    ks = sorted({int(k) for k in ks}, reverse=True)
    if not ks or ks[-1] < 1 or ks[0] > n:
        raise ValueError(f"ks must be numbers of clusters in 1..{n} (the number of rows), got {ks}.")
    centred = Z - Z.mean(axis=0)
    alpha = max(alpha * float(np.sum(centred * centred)) / (n * d), EPS)
    costs = _vvv_costs if model == "VVV" else _eii_costs
    c = _Clusters(Z)
    if model == "VVV":
        c.term[:] = np.log(beta * alpha)
    D = _initial_costs(Z, model, alpha, beta)
    colmin = np.full(n, np.inf)
    colarg = np.full(n, -1)
    _rescan(D, colmin, colarg, np.arange(n), n)
    position = np.arange(n)  # cluster position of each row
    out = {}
    G = n
    while True:
        if G == ks[0]:
            out[G] = _consecutive(position)
            ks.pop(0)
            if not ks:
                return out
        j = _last_argmin(colmin[:G])
        i = int(colarg[j])
        _merge(D, c, colmin, colarg, position, i, j, G, model, costs, alpha, beta)
        G -= 1


def _merge(D, c, colmin, colarg, position, a, b, G, model, costs, alpha, beta):
    """Merge positions ``a < b`` of ``G``; update costs and column minima in place."""
    last = G - 1
    _merge_into(c, a, b, model, alpha, beta)
    position[position == b] = a
    if b != last:  # wardsw: the last cluster takes position b
        D[:b, b] = D[:b, last]
        D[b, b + 1:last] = D[b + 1:last, last]
        c.move(last, b)
        position[position == last] = b
    D[:, last] = np.inf
    D[last, :] = np.inf
    colmin[last], colarg[last] = np.inf, -1
    G -= 1
    new = costs(c, a, G, alpha, beta)
    D[:a, a] = new[:a]
    D[a, a + 1:G] = new[a + 1:G]
    _update_column_minima(D, colmin, colarg, a, b, G)


def _update_column_minima(D, colmin, colarg, a, b, G):
    """Column minima after merging ``a < b``: row ``a`` was recomputed and column ``b``
    now holds the former last cluster.

    Columns whose minimum sat in row ``a`` or ``b`` (or column ``a`` or ``b``
    itself) are rescanned; in every other column only rows ``a`` and ``b``
    changed, so their new entries are compared with the kept minimum. Ties go to
    the later row, as in mclust's ``<=`` scan.
    """
    js = np.arange(a + 1, G)
    stale = (colarg[js] == a) | (colarg[js] == b) | (js == b)
    rest = js[~stale]
    for row in (a, b):  # rows in increasing order: a tie goes to the later row
        sel = rest[rest > row]
        if sel.size == 0:
            continue
        v = D[row, sel]
        take = (v < colmin[sel]) | ((v == colmin[sel]) & (row > colarg[sel]))
        colmin[sel[take]] = v[take]
        colarg[sel[take]] = row
    _rescan(D, colmin, colarg, np.concatenate([[a], js[stale]]), G)


def _consecutive(labels: np.ndarray) -> np.ndarray:
    """Relabel ``0..K-1`` in order of first appearance (mclust's ``partconv``)."""
    _, first, inverse = np.unique(labels, return_index=True, return_inverse=True)
    rank = np.empty(first.size, dtype=np.int64)
    rank[np.argsort(first)] = np.arange(first.size)
    return rank[inverse]


# --------------------------------------------------------------------------
# one dimension: mclust's qclass
# --------------------------------------------------------------------------
def quantile_partition(x: ArrayLike, k: int) -> np.ndarray:
    """mclust's ``qclass(x, k)``: k classes cut at sample quantiles (labels ``0..k-1``).

    What ``Mclust`` uses to start EM on one-dimensional data (it does not call
    ``hc`` there). Quantiles are R's default type 7 (numpy's ``"linear"``).
    Where no k + 1 distinct cut points exist (constant ``x``, or values adjacent
    in float64; mclust's loop never ends there) the rows are cut by rank.
    """
    x = np.asarray(x, dtype=np.float64).ravel()
    eps = np.std(x, ddof=1) * np.sqrt(EPS)
    m = k
    q = np.array([np.nan])
    # by this m the grid holds every data point and k points between neighbours: fewer than k + 1
    # distinct cuts then (constant x, or values adjacent in float64) never become more, and
    # qclass would loop forever
    last = (x.size - 1) * (k + 1) + 1
    if np.unique(x).size <= k and _unique_in_order(np.quantile(x, np.linspace(0.0, 1.0, last))).size < k + 1:
        return _rank_partition(x, k)  # checked at once: on large constant x the loop below would be O(n^2)
    while q.size < k + 1:
        m += 1
        if m > last:
            return _rank_partition(x, k)
        q = _unique_in_order(np.quantile(x, np.linspace(0.0, 1.0, m)))
    if q.size > k + 1:
        drop = np.argsort(np.diff(q), kind="stable")[: q.size - k - 1]
        q = np.delete(q, drop)
    q[0] = x.min() - eps
    q[-1] = x.max() + eps
    cl = np.full(x.size, -1)
    for i in range(k):
        cl[(x >= q[i]) & (x < q[i + 1])] = i
    return cl


def _rank_partition(x: np.ndarray, k: int) -> np.ndarray:
    """Rows by rank into k groups of (nearly) equal size."""
    cl = np.empty(x.size, dtype=int)
    cl[np.argsort(x, kind="stable")] = np.arange(x.size) * k // x.size
    return cl


def _unique_in_order(values: np.ndarray) -> np.ndarray:
    _, idx = np.unique(values, return_index=True)
    return values[np.sort(idx)]


# --------------------------------------------------------------------------
# public entry points
# --------------------------------------------------------------------------
def subsample_rows(n: int, max_rows: int, seed) -> np.ndarray | None:
    """Sorted uniform subsample of ``max_rows`` of ``n`` rows, or ``None`` if n <= max_rows."""
    if n <= max_rows:
        return None
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(n, size=max_rows, replace=False))


def hierarchical_partitions(X: ArrayLike, ks, model: str | None = None, use: str = "SVD",
                            max_rows: int = MAX_HC_ROWS, seed=None) -> HCPartitions:
    """mclust's ``hclass(hc(X), K)`` for each K: the partitions ``Mclust`` starts EM from.

    Parameters
    ----------
    X : array_like of shape (n, d)
    ks : iterable of int
        Numbers of clusters.
    model : {"VVV", "EII"}, optional
        Default as ``mclustBIC``: "VVV", or "EII" when n <= d. One-dimensional data
        are cut at quantiles (:func:`quantile_partition`) whatever ``model`` says.
    use : {"SVD", "VARS"}, default "SVD"
        mclust's ``hcUse``.
    max_rows : int, default 2000
        Above this many rows, cluster a uniform subsample of ``max_rows`` rows
        (mclust's ``mclust.options("subset")``), drawn from ``seed``.
    seed : int or numpy Generator, optional

    Returns
    -------
    HCPartitions
        ``labels[K]`` for the clustered rows, and those rows (``None`` = all).
        When every feature is constant (all rows coincide) the partition is K
        contiguous groups of rows. The tree of the last few data sets is kept
        (levels 1..9 at least), so fits for other K or types on the same rows
        do not cluster again.
    """
    X = np.asarray(X, dtype=np.float64)
    if X.ndim == 1:
        X = X[:, None]
    if X.ndim != 2 or not np.all(np.isfinite(X)):
        raise ValueError(f"X must be a finite (n, d) array, got shape {X.shape}.")
    if use not in HC_USES:
        raise ValueError(f"use must be one of {HC_USES}, got {use!r}.")
    rows = subsample_rows(X.shape[0], max_rows, seed)
    data = X if rows is None else X[rows]
    n, d = data.shape
    if d == 1:
        return HCPartitions({int(k): quantile_partition(data[:, 0], int(k)) for k in ks}, rows)
    if model is None:
        model = "VVV" if n > d else "EII"
    if model not in HC_MODELS:
        raise ValueError(f"model must be one of {HC_MODELS}, got {model!r}.")
    ks = sorted({int(k) for k in ks})
    if not ks or ks[0] < 1 or ks[-1] > n:
        raise ValueError(f"ks must be numbers of clusters in 1..{n} (the number of rows), got {ks}.")
    tree = _tree_levels(np.ascontiguousarray(data).tobytes(), data.shape, model, use, min(n, max(ks[-1], HC_LEVELS)))
    return HCPartitions({k: tree[k].copy() for k in ks}, rows)


def clear_tree_cache() -> None:
    """Forget the kept trees (benchmarks timing a first fit use it)."""
    _tree_levels.cache_clear()


@lru_cache(maxsize=8)
def _tree_levels(data: bytes, shape: tuple, model: str, use: str, top: int) -> dict:
    """Partitions into 1..top clusters of one tree, kept for the next fit on the same rows.

    One tree serves every K and covariance type (a K grid, a bootstrap of
    types), as mclust computes ``hc`` once per ``Mclust`` call. The key is the
    rows' bytes, so equal data share the tree and any other data do not.
    """
    X = np.frombuffer(data).reshape(shape)
    Z = _transform(X, use)
    if Z.shape[1] == 0:  # every feature constant: all rows coincide, any partition is as good
        return {k: np.arange(shape[0]) * k // shape[0] for k in range(1, top + 1)}
    return agglomerate(Z, range(1, top + 1), model)


def partition_responsibilities(labels: ArrayLike, n_components: int) -> np.ndarray:
    """One-hot responsibilities (n, K) of a hard partition (mclust's ``unmap``)."""
    labels = np.asarray(labels)
    if labels.min() < 0 or labels.max() >= n_components:
        raise ValueError(f"labels must lie in 0..{n_components - 1}, got {labels.min()}..{labels.max()}.")
    R = np.zeros((labels.size, n_components))
    R[np.arange(labels.size), labels] = 1.0
    return R


def partition_parameters(X: ArrayLike, labels: ArrayLike, n_components: int, covariance_type: str,
                         hyper=None, reg_covar: float = 0.0) -> dict:
    """One M-step on a hard partition: the start mclust's ``me()`` makes from ``unmap(cl)``.

    Parameters
    ----------
    X : array_like of shape (n, d)
        The rows the labels belong to.
    labels : array_like of int, shape (n,)
        Values in ``0..n_components-1``.
    n_components : int
    covariance_type : {"full", "tied", "diag", "spherical"}
    hyper : gmmflow.Hyperparameters, optional
        The prior (MAP M-step); ``None`` for the MLE M-step with ``reg_covar``.
    reg_covar : float, default 0.0

    Returns
    -------
    dict
        ``weights`` (K,), ``means`` (K, d), ``covariances`` (the type's shape): the
        ``init`` dict of ``gmmflow.fit_em``.
    """
    X = np.asarray(X, dtype=np.float64)
    R = partition_responsibilities(labels, n_components)
    params = m_step_from_responsibilities(X, R, covariance_type, hyper, reg_covar)
    return {"weights": params.weights, "means": params.means, "covariances": params.cov}

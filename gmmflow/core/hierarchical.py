r"""mclust's model-based agglomerative hierarchical clustering, for initialising EM.

R's ``Mclust()`` starts EM from a partition cut from one hierarchical clustering
(``hc()``; Banfield & Raftery 1993, Fraley 1998): every row starts as its own
cluster and the pair whose merge costs the least classification likelihood is
merged, until one cluster is left. The partition at K clusters, as one-hot
responsibilities, gives EM its first M-step. This module reproduces mclust's
defaults in pure numpy; the merge loop also exists compiled by numba
(:mod:`gmmflow.kernels.hc_merge`, the same merges), which :func:`agglomerate`
runs when numba can be imported, this module's loop (:func:`merge_pairs`)
being the reference and the fallback:

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
  O(n^2 d^2) arithmetic in n vectorised merge steps, plus n^3 / 6 reads of
  the packed costs, and O(n^2) memory: 2000 rows with d = 3 took 0.8 s, against
  1.4 s for the former per-pair numpy code in the same run on a loaded machine;
  faithful takes about 0.02 s, against 0.05 s for that code and 0.008 s for
  mclust's Fortran; the compiled kernel, which keeps column minima instead of
  scanning and completes a VVV cost only when the search reaches it, took 128 ms
  against this loop's 635 ms on 2000 rows x 3, 2.2 ms against 20.2 ms on
  faithful, in one run of ``bench/hc_kernel.py`` at load 1.6-2.4).

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
back to the trace term. Here ``W_ij`` is formed from the clusters' scatters by the
rank-one update of :func:`_pair_sums`, for the new cluster against every other
in one vectorised pass, and the log-determinant comes from its Cholesky factor
(:func:`_log_det_or_nan`); a failed factorisation (singular ``W``) falls back to
the trace term as mclust's zero pivot does. The two agree to
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
from math import isqrt
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
COLUMN_CHOLESKY_MAX_D = 4  # above: LAPACK over the stack is faster than the vectorised column loop


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
    """Per-position cluster statistics: one column of ``stats`` per position.

    Rows of ``stats`` (q, n): 0 size (float: counts are exact in float64 and no
    cast is needed in the formulas), 1 trace of the scatter ``tr W``, 2 the
    criterion term ``T(C)``, ``3..3+d`` the mean, then (VVV only) the scatter
    ``W`` flattened (d*d). The statistics of the clusters at positions ``0..G-1``
    are the contiguous rows ``stats[:, :G]``, so the merge costs of one cluster
    with all others are a fixed number of elementwise numpy operations on
    vectors of length G, whatever G (no per-pair or per-matrix work in Python or
    in a gufunc loop), and moving a cluster is one column copy.
    """

    def __init__(self, Z: np.ndarray, model: str, alpha: float, beta: float):
        n, d = Z.shape
        self.model, self.alpha, self.beta, self.d = model, alpha, beta, d
        self.stats = np.zeros((3 + d + (d * d if model == "VVV" else 0), n))
        self.stats[0] = 1.0
        self.stats[2] = np.log(beta * alpha) if model == "VVV" else 0.0  # a singleton: 1 log(alpha beta)
        self.stats[3:3 + d] = Z.T

    def move(self, src: int, dst: int) -> None:
        self.stats[:, dst] = self.stats[:, src]

    def costs(self, a: int, G: int) -> np.ndarray:
        """Merge costs of cluster ``a`` with each cluster at ``0..G-1`` (entry ``a``
        meaningless), shape (1, G) for EII; for VVV (2, G), the costs and the union
        terms ``T(a u j)`` (kept so that a merge need not compute its term again).

        Cluster ``a`` has just been formed by a merge, so it has two rows or more
        and the rule for two singletons (in :func:`_initial_costs`) never applies.
        """
        d = self.d
        sums, diff, w, spread = _pair_sums(self.stats, a, slice(0, G), d)
        if self.model == "EII":  # Ward (mclust's hceii): the increase of the total within scatter
            return (w * spread)[None]
        trace = sums[1] + w * spread
        big = _big(sums[0], trace, d)
        if big.size == G:  # (usually, for small d) a view instead of a copy
            big = slice(0, G)
        scatter = _union_scatter(self.stats, a, big, w[big], diff[:, big], d)
        out = np.empty((2, G))
        out[1] = vvv_terms(sums[0], trace, scatter, big, self.alpha, self.beta)
        np.subtract(out[1], sums[2], out=out[0])
        return out

    def merge(self, a: int, b: int, term: float) -> None:
        """Cluster ``b`` joins cluster ``a`` (statistics at position ``a``), by the
        formulas of :func:`_pair_sums` and :func:`_union_scatter` on the two columns.

        ``term`` is the union's criterion term as computed with its cost, or NaN
        for two singletons (their cost follows mclust's own rule, see
        :func:`_initial_costs`), whose term is computed here.
        """
        d, stats = self.d, self.stats
        na, nb = stats[0, a], stats[0, b]
        diff = stats[3:3 + d, a] - stats[3:3 + d, b]
        w = (na * nb) / (na + nb)
        union = stats[:, a] + stats[:, b]  # size, trace, term, mean and scatter sums
        union[1] += w * np.add.reduce(diff * diff)
        union[2] = term
        union[3:3 + d] = (na * stats[3:3 + d, a] + nb * stats[3:3 + d, b]) / union[0]
        if self.model == "VVV":
            union[3 + d:] += w * np.multiply.outer(diff, diff).ravel()
            if np.isnan(term):
                big = _big(union[:1], union[1:2], d)
                union[2] = vvv_terms(union[:1], union[1:2], union[3 + d:].reshape(d, d, 1)[..., big], big,
                                     self.alpha, self.beta)[0]
        stats[:, a] = union


def _pair_sums(stats: np.ndarray, a: int, js: slice, d: int):
    r"""Size, mean difference, weight and spread of cluster ``a`` merged with each of ``js``.

    For clusters i and j with sizes ``n_i, n_j``, means ``xbar_i, xbar_j`` and
    scatters ``W_i, W_j``, the union has ``n_ij = n_i + n_j`` rows and scatter

    .. math::

        W_{ij} = W_i + W_j + w \, \delta \delta^T, \qquad
        w = \frac{n_i n_j}{n_{ij}}, \quad \delta = \bar x_i - \bar x_j

    (expand ``sum_{x in i u j} (x - xbar_ij)(x - xbar_ij)^T`` around each
    cluster's own mean and use ``xbar_i - xbar_ij = (n_j / n_ij) delta``), so its
    trace is ``tr W_i + tr W_j + w |delta|^2`` (Ward's increase is the last term).

    Returns
    -------
    sums : ndarray (3 + d, m)
        ``stats[:3 + d, a] + stats[:3 + d, js]``: ``n_ij``, ``tr W_i + tr W_j``,
        ``T(i) + T(j)`` and (unused) the sum of the means.
    delta : ndarray (d, m)
    w, spread : ndarray (m,)
        ``w`` and ``|delta|^2``.
    """
    sums = stats[:3 + d, a, None] + stats[:3 + d, js]
    diff = stats[3:3 + d, a, None] - stats[3:3 + d, js]
    w = (stats[0, a] * stats[0, js]) / sums[0]
    return sums, diff, w, np.add.reduce(diff * diff, axis=0)


def _union_scatter(stats: np.ndarray, a: int, cols, w: np.ndarray, diff: np.ndarray, d: int) -> np.ndarray:
    """``W_ij = W_a + W_j + w delta delta^T`` (:func:`_pair_sums`) for each ``j`` in ``cols``
    (indices or a slice, with its ``w`` and ``delta``), shape (d, d, m)."""
    scatter = stats[3 + d:]
    m = diff.shape[1]
    outer = (diff[:, None] * diff[None]).reshape(d * d, m)
    return ((scatter[:, a, None] + scatter[:, cols]) + w * outer).reshape(d, d, m)


def _big(size: np.ndarray, trace: np.ndarray, d: int) -> np.ndarray:
    """Clusters whose determinant term counts: more than d rows and a non-zero trace."""
    return ((size > d) & (trace != 0.0)).nonzero()[0]


def _log_det_or_nan(W: np.ndarray) -> np.ndarray:
    r"""``log|W|`` of a stack of symmetric matrices, shape (d, d, m), by Cholesky; NaN or
    +-inf where the factorisation fails.

    The Cholesky factor ``L`` (``L L^T = W``) column by column, vectorised over
    the stack (the last axis), as LAPACK's unblocked ``potf2``:

    .. math::

        L_{jj} = \Big(W_{jj} - \sum_{k<j} L_{jk}^2\Big)^{1/2}, \qquad
        L_{ij} = \Big(W_{ij} - \sum_{k<j} L_{ik} L_{jk}\Big) / L_{jj} \quad (i > j),

    and ``log|W| = 2 sum_j log L_jj``. A non-positive pivot (``W`` not positive
    definite: a cluster of more than d rows on a line, from duplicated or
    discretised data) gives ``sqrt`` of a negative number (NaN), or a zero
    ``L_jj`` whose log is ``-inf`` and whose division makes every later pivot NaN;
    either way the result is not finite, which is how callers detect it (a
    positive pivot always gives a finite log). Callers silence the floating-point
    warnings (``np.errstate``). Above ``COLUMN_CHOLESKY_MAX_D`` features the loop's
    O(d^2) numpy calls cost more than LAPACK's per-matrix ``potrf`` over the stack,
    which is tried first (the same factorisation; it raises if any matrix fails,
    and then the loop marks which).
    """
    d, m = W.shape[0], W.shape[-1]
    if d > COLUMN_CHOLESKY_MAX_D:
        try:
            L = np.linalg.cholesky(np.moveaxis(W, -1, 0))
            return 2.0 * np.add.reduce(np.log(np.diagonal(L, axis1=-2, axis2=-1)), axis=-1)
        except np.linalg.LinAlgError:
            pass
    L = np.empty_like(W)
    log_root = np.empty((d, m))
    for j in range(d):
        col = W[j:, j] if j == 0 else W[j:, j] - np.add.reduce(L[j:, :j] * L[j, :j], axis=1)
        root = np.sqrt(col[0])
        if j + 1 < d:
            np.divide(col[1:], root, out=L[j + 1:, j])
        np.log(root, out=log_root[j])
    return 2.0 * np.add.reduce(log_root, axis=0)


def vvv_terms(size: np.ndarray, trace: np.ndarray, scatter: np.ndarray, big: np.ndarray,
              alpha: float, beta: float) -> np.ndarray:
    """mclust's ``vvvtij``: ``n log(|W/n| + beta (tr W + alpha) / n)`` per cluster.

    The determinant counts only for clusters of more than d rows with ``tr W > 0``
    (``big``, from :func:`_big`) and an SPD scatter (else 0, as mclust's
    zero-pivot fallback); the sum is ``logaddexp`` of the two logs.

    Parameters
    ----------
    size : ndarray (m,)
        Cluster sizes (float).
    trace : ndarray (m,)
    scatter : ndarray (d, d, len(big))
        The scatter matrices of the clusters ``big``, the cluster on the last axis.
    big : ndarray of int, or slice
    alpha, beta : float
    """
    out = np.log(beta * (trace + alpha) / size)
    log_det = _log_det_or_nan(scatter / size[big])
    ok = np.isfinite(log_det)
    if not ok.all():
        big, log_det = np.arange(size.size)[big][ok], log_det[ok]
    out[big] = np.logaddexp(log_det, out[big])
    return size * out


def _initial_costs(Z: np.ndarray, model: str, alpha: float, beta: float) -> np.ndarray:
    """Cost of merging each pair of singletons as mclust computes it, in mclust's packed
    order: pair ``i < j`` at ``P[0, j (j - 1) / 2 + i]`` (column ``j`` of the upper
    triangle after column ``j - 1``); for VVV ``P[1]``, the unions' terms ``T``, is
    NaN: the term of two merged singletons is computed from their statistics when
    they merge (it has the determinant when d = 1, which this cost has not).

    Computed in blocks of rows ``j`` (about 2^20 pair-features at a time), each
    against all earlier rows at once; a block's pairs ``i < j`` in row-major order
    are exactly its stretch of the packed array. The squared differences are
    added feature by feature in order, as mclust's call of the reference BLAS
    ``ddot`` adds them (and as the compiled kernel does).
    """
    n, d = Z.shape
    tri = _triangle_starts(n)
    # a reversed view of its storage: the stretch scanned for the LAST minimum, read
    # backwards, is then contiguous memory (argmin without a copy)
    P = np.full((2 if model == "VVV" else 1, tri[n]), np.nan)[:, ::-1]
    ablog = np.log(beta * alpha)
    step = max(1, 2**20 // (n * d))
    for start in range(0, n, step):
        stop = min(n, start + step)
        v = (Z[None, :stop] - Z[start:stop, None]) * RTHALF  # v[j - start, i] = (Z_i - Z_j) / sqrt(2)
        tr = v[..., 0] * v[..., 0]
        for k in range(1, d):  # added in order, as the reference BLAS ddot mclust calls
            tr += v[..., k] * v[..., k]
        if model == "VVV":
            tr = 2.0 * np.log(beta * (tr + alpha) / 2.0) - (ablog + ablog)
        P[0, tri[start]:tri[stop]] = tr[np.arange(stop)[None, :] < np.arange(start, stop)[:, None]]
    return P


def _triangle_starts(n: int) -> np.ndarray:
    """``j (j - 1) / 2`` for ``j = 0..n``: where column ``j`` starts in the packed array."""
    j = np.arange(n + 1)
    return j * (j - 1) // 2


# --------------------------------------------------------------------------
# the agglomeration
# --------------------------------------------------------------------------
def agglomerate(Z: ArrayLike, ks, model: str = "VVV", alpha: float = 1.0,
                beta: float = 1.0, compiled: bool | None = None) -> dict:
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
    compiled : bool, optional
        Which merge loop runs: ``None`` (default) the numba kernel
        (:mod:`gmmflow.kernels.hc_merge`) when numba can be imported, else the
        numpy loop :func:`merge_pairs`; ``False`` the numpy loop; ``True`` the
        kernel (ImportError without numba). Both give the same merges. The
        kernel takes at most ``hc_merge.MAX_D`` (128) features; above, the
        numpy loop runs whatever ``compiled`` says.

    Returns
    -------
    dict[int, ndarray of int]
        Labels ``0..K-1`` in order of first appearance, for each K.

    Notes
    -----
    The numpy path computes the singletons' costs vectorised, in mclust's
    packed array (:func:`_initial_costs`), its merge loop returns the positions
    merged at each step, and the labels at each K are cut from that sequence
    (:func:`_cut_levels`); the kernel does the same three steps compiled
    (``hc_merge.merge_pairs`` computes the singletons' costs itself,
    ``hc_merge.cut_levels`` cuts the labels).
    """
    Z = np.ascontiguousarray(Z, dtype=np.float64)
    n, d = Z.shape
    ks = sorted({int(k) for k in ks}, reverse=True)
    if not ks or ks[-1] < 1 or ks[0] > n:
        raise ValueError(f"ks must be numbers of clusters in 1..{n} (the number of rows), got {ks}.")
    centred = Z - Z.mean(axis=0)
    alpha = max(alpha * float(np.sum(centred * centred)) / (n * d), EPS)
    kernels = None if compiled is False else compiled_kernels(required=bool(compiled))
    if kernels is None or d > kernels.MAX_D:
        pairs = merge_pairs(Z, _initial_costs(Z, model, alpha, beta), model, alpha, beta, ks[-1])
        return _cut_levels(pairs, n, ks)
    pairs = kernels.merge_pairs(Z, model == "VVV", alpha, beta, ks[-1])
    return dict(zip(ks, kernels.cut_levels(pairs, n, np.array(ks, dtype=np.int64))))


def compiled_kernels(required: bool = False):
    """The module of the numba merge loop (:mod:`gmmflow.kernels.hc_merge`), or None
    when numba cannot be imported (unless ``required``: then the ImportError)."""
    try:
        from gmmflow.kernels import hc_merge
    except ImportError:
        if required:
            raise
        return None
    return hc_merge


def merge_pairs(Z: np.ndarray, P: np.ndarray, model: str, alpha: float, beta: float, stop: int) -> np.ndarray:
    """The numpy merge loop: merge the rows of ``Z`` down to ``stop`` clusters.

    Parameters
    ----------
    Z : ndarray (n, d)
    P : ndarray
        The singletons' costs from :func:`_initial_costs` (updated in place).
    model : {"VVV", "EII"}
    alpha, beta : float
        ``alpha`` already scaled as :func:`agglomerate` scales it.
    stop : int

    Returns
    -------
    ndarray of int64, shape (n - stop, 2)
        The positions ``a < b`` merged at each step (:func:`_merge`).

    Notes
    -----
    The pairs of the ``G`` clusters left are the first ``G (G - 1) / 2``
    entries of the packed array and the pair to merge is the last minimum of
    that stretch (one vectorised scan; O(n^3 / 6) element reads in all, e.g.
    3.4 million for n = 272). A merge recomputes the costs of the union against
    every cluster (:meth:`_Clusters.costs`).
    """
    n = Z.shape[0]
    c = _Clusters(Z, model, alpha, beta)
    tri = _triangle_starts(n)
    pairs = np.empty((n - stop, 2), dtype=np.int64)
    with np.errstate(divide="ignore", invalid="ignore"):  # failed factorisations: see _log_det_or_nan
        for step, G in enumerate(range(n, stop, -1)):
            k = _last_argmin(P[0, :tri[G]])
            j = (1 + isqrt(1 + 8 * k)) // 2  # the column holding packed entry k: tri[j] <= k < tri[j + 1]
            pairs[step] = k - int(tri[j]), j
            _merge(P, tri, c, pairs[step, 0], j, G)
    return pairs


def _last_argmin(values: np.ndarray) -> int:
    """Index of the last occurrence of the minimum (mclust's ``<=`` scan)."""
    return values.size - 1 - int(values[::-1].argmin())


def _merge(P, tri, c: _Clusters, a: int, b: int, G: int) -> None:
    """Merge positions ``a < b`` of ``G`` and update the packed costs in place.

    As mclust: the union takes position ``a``; the last cluster moves to ``b``
    (``wardsw``: its pairs ``(i, last)`` become ``(i, b)`` for ``i < b`` and
    ``(b, j)`` for ``b < j < last``); then the costs of ``a`` against every
    other cluster are recomputed. Entries of pairs with the last position are
    beyond the ``(G - 1)(G - 2) / 2`` entries read from now on, and left as they are.
    """
    last = G - 1
    c.merge(a, b, P[-1, tri[b] + a])
    if b != last:
        P[:, tri[b]:tri[b] + b] = P[:, tri[last]:tri[last] + b]
        P[:, tri[b + 1:last] + b] = P[:, tri[last] + b + 1:tri[last] + last]
        c.move(last, b)
    new = c.costs(a, last)
    P[:, tri[a]:tri[a] + a] = new[:, :a]
    P[:, tri[a + 1:last] + a] = new[:, a + 1:last]


def _cut_levels(pairs: np.ndarray, n: int, ks: list) -> dict:
    """Labels at each K in ``ks`` (descending) from the merge sequence: the rows at each
    position follow the merges (the union at ``a``, the last position moved to ``b``)."""
    members = [[i] for i in range(n)]  # the rows at each position
    out = {}
    for G in range(n, ks[-1] - 1, -1):
        if G in ks:
            out[G] = _labels(members, n)
        if G == ks[-1]:
            return out
        a, b = (int(p) for p in pairs[n - G])
        members[a].extend(members[b])
        if b != G - 1:
            members[b] = members[G - 1]
        members.pop()
    return out


def _labels(members: list, n: int) -> np.ndarray:
    """Labels ``0..G-1`` of the rows, numbered in order of first appearance (mclust's
    ``partconv(consec = TRUE)``, minus one), from the rows at each position."""
    rank = np.empty(len(members), dtype=np.int64)
    rank[np.argsort([min(rows) for rows in members])] = np.arange(len(members))
    labels = np.empty(n, dtype=np.int64)
    for pos, rows in enumerate(members):
        labels[rows] = rank[pos]
    return labels


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
                            max_rows: int = MAX_HC_ROWS, seed=None, compiled: bool | None = None) -> HCPartitions:
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
    compiled : bool, optional
        The merge loop (:func:`agglomerate`): by default the numba kernel when
        numba can be imported, else numpy; the same partitions either way.

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
    tree = _tree_levels(np.ascontiguousarray(data).tobytes(), data.shape, model, use,
                        min(n, max(ks[-1], HC_LEVELS)), compiled)
    return HCPartitions({k: tree[k].copy() for k in ks}, rows)


def clear_tree_cache() -> None:
    """Forget the kept trees (benchmarks timing a first fit use it)."""
    _tree_levels.cache_clear()


@lru_cache(maxsize=8)
def _tree_levels(data: bytes, shape: tuple, model: str, use: str, top: int, compiled: bool | None) -> dict:
    """Partitions into 1..top clusters of one tree, kept for the next fit on the same rows.

    One tree serves every K and covariance type (a K grid, a bootstrap of
    types), as mclust computes ``hc`` once per ``Mclust`` call. The key is the
    rows' bytes, so equal data share the tree and any other data do not.
    """
    X = np.frombuffer(data).reshape(shape)
    Z = _transform(X, use)
    if Z.shape[1] == 0:  # every feature constant: all rows coincide, any partition is as good
        return {k: np.arange(shape[0]) * k // shape[0] for k in range(1, top + 1)}
    return agglomerate(Z, range(1, top + 1), model, compiled=compiled)


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

"""Row blocks of an in-memory array: the E-step as a reduction over chunks.

A *blocks* object is what the EM driver (``core.em_driver``) iterates on. Two
backends share one protocol: :class:`ArrayBlocks` (this module, a numpy array)
and :class:`~gmmflow.core.dask_blocks.DaskBlocks` (a dask array, any scheduler):

``n_rows``, ``n_features``, ``shift``
    Size, and the offset subtracted from every row (parameters live in the
    shifted frame; the data mean keeps second moments free of the data's offset).
``moments() -> (mean (d,), cov (d, d))``
    Weighted data mean and covariance (denominator ``sum(w) - 1``).
``with_shift(shift) -> blocks``
    The same rows seen from another origin.
``e_step(params, batch=None) -> SuffStats``
    Summed sufficient statistics of all rows at ``params`` (shifted frame).
    ``params`` may carry a leading batch axis (restarts or replicates); with
    one row of weights per batch entry (``sample_weight`` of shape (B, n)),
    ``batch`` says which rows of weights the entries of ``params`` use.
``log_resp_and_norm(params) -> ((n, K), (n,))``
    Log-responsibilities and log mixture densities of every row (K+1 columns,
    the noise's last, for a noise model).
``extremes(axes) -> (2, 2d)``
    Column minima and maxima of the rows and of their scores on ``axes``
    (the noise component's default region, :mod:`gmmflow.core.noise`).
``sample(rows) -> (X (m, d), weights (m,) or None)``
    Shifted rows (all when ``rows`` is None) for initialisation.
``sampled_statistics(chain_params, uniforms_list) -> SuffStats`` (chains on the leading axis)
    The Gibbs sampler's pass (``core.gibbs``): for each chain, every row's
    component drawn from its responsibilities and reduced to statistics.

Each block is shifted on the fly, so the caller's array is never copied or
modified and working memory is O(chunk_size * K * d) whatever n is.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from functools import reduce
from operator import add

import numpy as np

from gmmflow.core.em_steps import Params, SuffStats, chunk_statistics, log_resp_and_norm
from gmmflow.core.assignment_draws import assignment_kernel, assignment_statistics
from gmmflow.core.noise import block_extremes, combine_extremes

# rows per block: the (K*d, rows) whitened differences (2 MiB) stay in cache
_BLOCK_ELEMENTS = 1 << 18


def default_chunk_size(n_components: int, n_features: int, batch: int = 1) -> int:
    """Rows per block so that a block's (batch * K * d, rows) work array stays cache-sized."""
    return max(256, _BLOCK_ELEMENTS // max(1, batch * n_components * n_features))


def default_n_threads(n_rows: int, chunk_size: int, cpu_count: int) -> int:
    """Threads for the E-step: one for fewer than four blocks, else up to two."""
    return 1 if -(-n_rows // chunk_size) < 4 else min(2, cpu_count)


class ArrayBlocks:
    """An (n, d) array seen as row blocks, shifted by ``shift``.

    Parameters
    ----------
    X : ndarray (n, d), float64
    sample_weight : ndarray (n,) or (B, n), optional
        Observation weights; (B, n) gives each of B batch entries its own
        (bootstrap replicates), selected by ``e_step``'s ``batch``.
    chunk_size : int, optional
        Rows per block (default: all rows in one block).
    n_threads : int, default 1
        Blocks are reduced in a fixed order whatever the thread count, so
        results are bit-identical for the same inputs.
    shift : ndarray (d,), optional
        Subtracted from every block (default: no shift).
    """

    def __init__(self, X, sample_weight=None, chunk_size=None, n_threads=1, shift=None):
        self.X = X
        self.sample_weight = sample_weight
        self.n_rows, self.n_features = X.shape
        self.chunk_size = int(chunk_size) if chunk_size else self.n_rows
        self.n_threads = max(1, int(n_threads))
        self.shift = np.zeros(self.n_features) if shift is None else np.asarray(shift, dtype=np.float64)
        self.bounds = [
            (a, min(a + self.chunk_size, self.n_rows))
            for a in range(0, self.n_rows, self.chunk_size)
        ]

    def with_shift(self, shift) -> ArrayBlocks:
        return ArrayBlocks(self.X, self.sample_weight, self.chunk_size, self.n_threads, shift)

    def block(self, a: int, b: int, weights=None):
        """Rows a:b, shifted and transposed to (d, m), and their weights (from ``weights``,
        default the blocks' own)."""
        weights = self.sample_weight if weights is None else weights
        sw = None if weights is None else weights[..., a:b]
        XT = np.empty((self.n_features, b - a))
        np.subtract(self.X[a:b].T, self.shift[:, None], out=XT)
        return XT, sw

    def batch_weights(self, batch=None):
        """The weights of batch entries ``batch``: shared (n,) weights as they are, rows of (B, n) ones."""
        sw = self.sample_weight
        return sw if sw is None or sw.ndim == 1 or batch is None else sw[batch]

    def _map(self, fn):
        if self.n_threads == 1 or len(self.bounds) == 1:
            return [fn(a, b) for a, b in self.bounds]
        with ThreadPoolExecutor(self.n_threads) as pool:
            return list(pool.map(lambda ab: fn(*ab), self.bounds))

    def moments(self) -> tuple[np.ndarray, np.ndarray]:
        return data_moments(self.X, self.sample_weight, self.chunk_size)

    def extremes(self, axes: np.ndarray) -> np.ndarray:
        """Column minima and maxima of the rows and of their scores on ``axes``
        (:func:`~gmmflow.core.noise.block_extremes`), unshifted: the noise component's region."""
        return combine_extremes(block_extremes(self.X[a:b], axes) for a, b in self.bounds)

    def sample(self, rows: np.ndarray | None):
        """Shifted rows (a copy; all rows when ``rows`` is None) and their weights."""
        X = self.X if rows is None else self.X[rows]
        sw = self.sample_weight if self.sample_weight is None or rows is None else self.sample_weight[rows]
        return X - self.shift, sw

    def e_step(self, params: Params, batch=None) -> SuffStats:
        """Summed sufficient statistics of all rows at ``params`` (see the module docstring)."""
        log_w = np.log(params.weights)
        prec = params.precision
        t = params.covariance_type
        weights = self.batch_weights(batch)

        def stats(a, b):
            X, sw = self.block(a, b, weights)
            return chunk_statistics(X, sw, log_w, params.means, prec, t, params.log_noise_density)

        return reduce(add, self._map(stats))

    def log_resp_and_norm(self, params: Params):
        """(n, K) log-responsibilities and (n,) log-densities of all rows."""
        log_w = np.log(params.weights)
        prec = params.precision

        def one(a, b):
            XT, _ = self.block(a, b)
            return log_resp_and_norm(XT, log_w, params.means, prec, params.covariance_type,
                                     params.log_noise_density)

        parts = self._map(one)
        return np.concatenate([p[0] for p in parts], axis=1).T, np.concatenate([p[1] for p in parts])

    def sampled_statistics(self, params: Params, uniforms: list, row_offset: int = 0) -> SuffStats:
        """Statistics of all rows for each chain, each row's component drawn from its responsibilities.

        ``params`` holds C chains' parameters on a leading axis, and
        ``uniforms[c](start, stop)`` gives chain c's uniforms of global rows
        ``start .. stop - 1``; this array's rows are numbered from
        ``row_offset``. A row's draw depends on its number, not on the
        blocking. The chains share each block's pass (one joint-density
        GEMM and one sort for all of them). The result has the chain axis
        in front; the rows' log-likelihoods at each chain's parameters are
        summed in ``log_likelihood`` (C,).
        """
        if self.sample_weight is not None:
            raise ValueError("The Gibbs sampler does not take observation weights; repeat rows instead.")
        kernel = assignment_kernel(params)

        def stats(a, b):
            XT, _ = self.block(a, b)
            return assignment_statistics(XT, np.stack([u(row_offset + a, row_offset + b) for u in uniforms]),
                                         *kernel)

        return reduce(add, self._map(stats))


def data_moments(X, sample_weight=None, chunk_size=None):
    """Weighted mean and covariance (denominator ``sum(w) - 1``) by row blocks.

    Two passes (mean, then centred scatter), so no digits are lost to the
    data's offset and no (n, d) temporary is made.
    """
    n, d = X.shape
    step = int(chunk_size) if chunk_size else n
    total = 0.0
    s = np.zeros(d)
    for a in range(0, n, step):
        blk = X[a:a + step]
        w = None if sample_weight is None else sample_weight[a:a + step]
        total += blk.shape[0] if w is None else w.sum()
        s += blk.sum(axis=0) if w is None else w @ blk
    mean = s / total
    scatter = np.zeros((d, d))
    for a in range(0, n, step):
        blk = X[a:a + step] - mean
        w = None if sample_weight is None else sample_weight[a:a + step]
        scatter += blk.T @ (blk if w is None else blk * w[:, None])
    return mean, scatter / max(total - 1.0, 1.0)

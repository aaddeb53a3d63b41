"""Row blocks of an in-memory array: the E-step as a reduction over chunks.

Each block is shifted by a fixed offset (the data mean) on the fly, so the
caller's array is never copied or modified and working memory is
O(chunk_size * K * d) whatever n is.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from functools import reduce
from operator import add

import numpy as np

from gmmflow.core.em import Params, SuffStats, chunk_statistics, log_resp_and_norm

# rows per block: the (K*d, rows) whitened differences (2 MiB) stay in cache
_BLOCK_ELEMENTS = 1 << 18


def default_chunk_size(n_components: int, n_features: int) -> int:
    return max(256, _BLOCK_ELEMENTS // max(1, n_components * n_features))


class ArrayBlocks:
    """An (n, d) array seen as row blocks, shifted by ``shift``.

    Parameters
    ----------
    X : ndarray (n, d), float64
    shift : ndarray (d,)
        Subtracted from every block (parameters live in the shifted frame).
    sample_weight : ndarray (n,), optional
    chunk_size : int, optional
    n_threads : int, default 1
        Blocks are reduced in a fixed order whatever the thread count, so
        results are bit-identical for the same inputs.
    """

    def __init__(self, X, shift, sample_weight=None, chunk_size=None, n_threads=1):
        self.X = X
        self.shift = shift
        self.sample_weight = sample_weight
        self.n_rows = X.shape[0]
        self.chunk_size = int(chunk_size) if chunk_size else self.n_rows
        self.n_threads = max(1, int(n_threads))
        self.bounds = [
            (a, min(a + self.chunk_size, self.n_rows))
            for a in range(0, self.n_rows, self.chunk_size)
        ]

    def block(self, a: int, b: int):
        """Rows a:b, shifted and transposed to (d, m), and their weights."""
        sw = None if self.sample_weight is None else self.sample_weight[a:b]
        XT = np.empty((self.X.shape[1], b - a))
        np.subtract(self.X[a:b].T, self.shift[:, None], out=XT)
        return XT, sw

    def _map(self, fn):
        if self.n_threads == 1 or len(self.bounds) == 1:
            return [fn(a, b) for a, b in self.bounds]
        with ThreadPoolExecutor(self.n_threads) as pool:
            return list(pool.map(lambda ab: fn(*ab), self.bounds))

    def e_step(self, params: Params) -> SuffStats:
        """Summed sufficient statistics of all rows at ``params``."""
        log_w = np.log(params.weights)
        prec = params.precision
        t = params.covariance_type

        def stats(a, b):
            X, sw = self.block(a, b)
            return chunk_statistics(X, sw, log_w, params.means, prec, t)

        return reduce(add, self._map(stats))

    def log_resp_and_norm(self, params: Params):
        """(n, K) log-responsibilities and (n,) log-densities of all rows."""
        log_w = np.log(params.weights)
        prec = params.precision

        def one(a, b):
            XT, _ = self.block(a, b)
            return log_resp_and_norm(XT, log_w, params.means, prec, params.covariance_type)

        parts = self._map(one)
        return np.concatenate([p[0] for p in parts], axis=1).T, np.concatenate([p[1] for p in parts])


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

"""Row blocks of a dask array: the E-step over dask chunks, any scheduler.

:class:`DaskBlocks` has the protocol of :class:`~gmmflow.core.row_blocks.ArrayBlocks`
(see that module). Every dask chunk is reduced by the same in-memory kernel
(``ArrayBlocks.e_step`` on the chunk, in cache-sized sub-blocks), the
statistics are summed on the client in chunk order (deterministic), and only
the small parameter arrays travel to the workers. Whatever dask scheduler is
active runs it: the threaded scheduler by default, or a
``dask.distributed.Client`` (local or remote) if one has been created.

:class:`MissingDaskBlocks` is the same for rows with missing cells (NaN):
each chunk is reduced by :class:`~gmmflow.core.missing_data.MissingBlocks`
(its rows grouped by missingness pattern within the chunk in every E-step:
a radix sort of 16-bit pattern codes and one copy of the chunk, about a sixth
of the chunk's E-step, memory O(chunk x d); keeping every chunk's grouping
between E-steps would hold O(n) memory), so the E-step's expected statistics are
summed over the chunks in chunk order as for complete data; the one-Gaussian
MLE behind the data moments and the starting points is the shared EM of
:func:`~gmmflow.core.missing_data.gaussian_mle` run on the chunks.

Observation weights are a dask array chunked like the rows, (n,) or one row
per batch entry (B, n) (bootstrap replicates): each task gets its rows and
their weights, so weights are never gathered on the client.

dask is imported when a ``DaskBlocks`` is used, not when gmmflow is.
"""

from __future__ import annotations

from functools import reduce
from operator import add

import numpy as np

from gmmflow.core.em_steps import Params, SuffStats
from gmmflow.core.missing_data import MissingBlocks, completed_rows, gaussian_mle, sample_covariance
from gmmflow.core.noise import block_extremes, combine_extremes
from gmmflow.core.row_blocks import ArrayBlocks


def _chunk_blocks(chunk, weights, shift: np.ndarray, inner: int, missing: bool):
    """The in-memory kernel of one chunk: ``MissingBlocks`` with ``missing``, else ``ArrayBlocks``."""
    weights = None if weights is None else np.asarray(weights, dtype=np.float64)
    chunk = np.asarray(chunk, dtype=np.float64)
    if missing:
        return MissingBlocks(chunk, weights, inner, shift)
    return ArrayBlocks(chunk, weights, chunk_size=inner, shift=shift)


def _chunk_statistics(chunk, weights, params: Params, shift: np.ndarray, inner: int, missing: bool,
                      batch) -> SuffStats:
    return _chunk_blocks(chunk, weights, shift, inner, missing).e_step(params, batch)


def _chunk_log_resp_and_norm(chunk, weights, params: Params, shift: np.ndarray, inner: int, missing: bool,
                             batch):
    return _chunk_blocks(chunk, None, shift, inner, missing).log_resp_and_norm(params)


def _chunk_sampled_statistics(chunk, params: Params, shift: np.ndarray, inner: int, missing: bool,
                              uniforms: list, offset: int) -> SuffStats:
    return _chunk_blocks(chunk, None, shift, inner, missing).sampled_statistics(params, uniforms, offset)


class DaskBlocks:
    """A dask array (n, d) of float64, chunked by rows only, seen as row blocks.

    Parameters
    ----------
    X : dask.array.Array (n, d)
    inner_chunk : int
        Rows per in-memory sub-block inside each dask chunk.
    shift : ndarray (d,), optional
    sample_weight : dask.array.Array (n,) or (B, n), optional
        Non-negative weights; rechunked to the row chunks of ``X``.
    """

    missing = False  # chunks reduced by ArrayBlocks (MissingDaskBlocks: by MissingBlocks)

    def __init__(self, X, inner_chunk: int, shift=None, sample_weight=None):
        self.X = X
        self.n_rows, self.n_features = (int(s) for s in X.shape)
        self.inner_chunk = int(inner_chunk)
        self.shift = np.zeros(self.n_features) if shift is None else np.asarray(shift, dtype=np.float64)
        self.chunks = X.to_delayed().ravel()
        self.sample_weight = sample_weight
        self.weight_chunks = [None] * len(self.chunks)
        if sample_weight is not None:
            aligned = sample_weight.rechunk(sample_weight.shape[:-1] + (X.chunks[0],))
            self.sample_weight = aligned
            self.weight_chunks = list(aligned.to_delayed().ravel())

    def with_shift(self, shift) -> DaskBlocks:
        return DaskBlocks(self.X, self.inner_chunk, shift, self.sample_weight)

    def moments(self) -> tuple[np.ndarray, np.ndarray]:
        """(Weighted) mean and covariance (denominator sum(w) - 1), two passes over the chunks."""
        import dask

        w = self.sample_weight
        if w is None:
            mean = self.X.mean(axis=0).compute()
            centred = self.X - mean
            return mean, (centred.T @ centred).compute() / max(self.n_rows - 1, 1)
        total, sums = dask.compute(w.sum(), w @ self.X)
        mean = sums / total
        centred = self.X - mean
        scatter = (centred.T @ (centred * w[:, None])).compute()
        return mean, scatter / max(float(total) - 1.0, 1.0)

    def sample(self, rows: np.ndarray | None):
        """Shifted rows (all when ``rows`` is None), read into memory, and their (n,) weights."""
        X, w = self._rows(rows)
        return X - self.shift, w

    def _rows(self, rows: np.ndarray | None):
        """Rows ``rows`` (all when None) in memory, unshifted, and their weights (None for (B, n) ones)."""
        X = (self.X if rows is None else self.X[rows]).compute()
        w = self.sample_weight
        if w is not None and w.ndim == 1:
            w = (w if rows is None else w[rows]).compute()
        return X, w if w is None or w.ndim == 1 else None

    def _map(self, fn, params, batch=None):
        import dask

        return dask.compute(*[dask.delayed(fn)(c, w, params, self.shift, self.inner_chunk, self.missing, batch)
                              for c, w in zip(self.chunks, self.weight_chunks)])

    def e_step(self, params: Params, batch=None) -> SuffStats:
        return reduce(add, self._map(_chunk_statistics, params, batch))

    def extremes(self, axes: np.ndarray) -> np.ndarray:
        """Column extremes of the rows and of their scores on ``axes``, one task per chunk."""
        import dask

        return combine_extremes(dask.compute(*[dask.delayed(block_extremes)(c, axes) for c in self.chunks]))

    def log_resp_and_norm(self, params: Params):
        parts = self._map(_chunk_log_resp_and_norm, params)
        return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])

    def sampled_statistics(self, params: Params, uniforms: list) -> SuffStats:
        """The Gibbs pass of :meth:`ArrayBlocks.sampled_statistics` on every chunk, each told
        its first row's number (so the draws do not depend on the chunking)."""
        import dask

        offsets = np.concatenate([[0], np.cumsum(self.X.chunks[0][:-1])]).astype(int)
        parts = dask.compute(*[dask.delayed(_chunk_sampled_statistics)(c, params, self.shift, self.inner_chunk,
                                                                       self.missing, uniforms, int(o))
                               for c, o in zip(self.chunks, offsets)])
        return reduce(add, parts)


def chunked_row_blocks(X, inner_chunk: int, shift=None, sample_weight=None, n_missing: int = 0) -> DaskBlocks:
    """Row blocks of a dask array: :class:`MissingDaskBlocks` when it has ``n_missing`` > 0 missing
    cells, else :class:`DaskBlocks`."""
    if n_missing:
        return MissingDaskBlocks(X, inner_chunk, shift, sample_weight, n_missing)
    return DaskBlocks(X, inner_chunk, shift, sample_weight)


class MissingDaskBlocks(DaskBlocks):
    """A dask array (n, d) with NaN for missing cells, seen as row blocks (module docstring).

    The protocol of :class:`DaskBlocks`, with the statistics, log-densities
    and Gibbs pass of :class:`~gmmflow.core.missing_data.MissingBlocks` on
    every chunk (the chunk's first row number passed on, so the Gibbs draws
    do not depend on the chunking), and the data moments and starting rows of
    the one-Gaussian MLE on the observed values.

    Parameters
    ----------
    X, inner_chunk, shift, sample_weight
        As :class:`DaskBlocks`; every row observes at least one feature (checked by the caller).
    n_missing : int
        The count of missing cells (counted by the caller's scan of the chunks).
    """

    missing = True

    def __init__(self, X, inner_chunk: int, shift=None, sample_weight=None, n_missing: int = 0, *,
                 _gaussian=None):
        super().__init__(X, inner_chunk, shift, sample_weight)
        self.n_missing = int(n_missing)
        self._gaussian = _gaussian

    def with_shift(self, shift) -> MissingDaskBlocks:
        return MissingDaskBlocks(self.X, self.inner_chunk, shift, self.sample_weight, self.n_missing,
                                 _gaussian=self.gaussian())

    def gaussian(self) -> tuple[np.ndarray, np.ndarray]:
        """MLE ``(mean, cov)`` of one Gaussian on the observed values (data's frame): the EM of
        :func:`~gmmflow.core.missing_data.gaussian_mle` over the chunks; computed once."""
        if self._gaussian is None:
            import dask
            import dask.array as da

            start, variances = dask.compute(da.nanmean(self.X, axis=0), da.nanvar(self.X, axis=0))
            shifted = MissingDaskBlocks(self.X, self.inner_chunk, start, self.sample_weight)
            self._gaussian = gaussian_mle(shifted.e_step, start, variances)
        return self._gaussian

    def moments(self) -> tuple[np.ndarray, np.ndarray]:
        """Mean and covariance (denominator ``sum(w) - 1``) of the one-Gaussian MLE on the observed values."""
        mean, cov = self.gaussian()
        w = self.sample_weight
        return mean, sample_covariance(cov, float(self.n_rows if w is None else w.sum().compute()))

    def sample(self, rows: np.ndarray | None):
        """Shifted rows completed by their conditional means under :meth:`gaussian` (starting points only)."""
        X, w = self._rows(rows)
        return completed_rows(X, *self.gaussian()) - self.shift, w

r"""The Gibbs sampler's step ``z | theta, X`` on one block of rows, and its random streams.

Pure numpy. A block of rows (the E-step's layout, ``XT`` (d, m)) gets the
E-step's joint densities ``w_k N(x_i | mu_k, Sigma_k)``; each row's
component is drawn by inverting their cumulative sum at one uniform per row
(:func:`draw_components`), and the block is reduced at once to the
sufficient statistics of the hard assignments (:func:`hard_assignment_statistics`,
the E-step's :class:`~gmmflow.core.em_steps.SuffStats` with ``r_ik = [z_i = k]``).
The blocks objects (``core.row_blocks``, ``core.dask_blocks``) call
:func:`assignment_statistics` on every block; :mod:`gmmflow.core.gibbs`
draws the parameters from the summed statistics.

Random streams
--------------
A chain's draws are a function of (seed, chain, sweep) and, for ``z_i``, of
the row index i only. Chain c has a Philox key; in sweep t the uniform that
draws ``z_i`` is double number i of the Philox stream with counter
``(0, 0, t, 0)``, reached by jumping ahead (:class:`RowUniforms`), and the
parameter draws use the stream with counter ``(0, 0, t, 1)``. With missing
cells (:mod:`gmmflow.core.missing_data`), cell ``(i, j)`` of an n x d array
is drawn from double number ``i d + j`` of the stream with counter
``(0, 0, t, 2)`` (:meth:`RowUniforms.cells`). So the draws
do not depend on how the rows are split into blocks or dask chunks, nor on
which thread or worker reduces a block: only the summation order of the
statistics can change, i.e. rounding.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from gmmflow.core.em_steps import Params, SuffStats, _joint_exp


_Z_STREAM, _THETA_STREAM, _CELL_STREAM = 0, 1, 2  # last Philox counter word: which draws a stream feeds


# --------------------------------------------------------------------------
# Random streams
# --------------------------------------------------------------------------
def _philox(key: tuple[int, int], sweep: int, stream: int) -> np.random.Philox:
    return np.random.Philox(key=np.array(key, dtype=np.uint64),
                            counter=np.array([0, 0, sweep, stream], dtype=np.uint64))


@dataclass(frozen=True)
class RowUniforms:
    """The uniforms that draw the rows' components in one sweep of one chain.

    ``self(start, stop)`` returns those of rows ``start .. stop - 1`` (global
    row numbers): the same numbers whichever block asks for them.
    """

    key: tuple[int, int]
    sweep: int
    stream: int = _Z_STREAM

    def __call__(self, start: int, stop: int) -> np.ndarray:
        bits = _philox(self.key, self.sweep, self.stream)
        bits.advance(start // 4)  # Philox yields four 64-bit words per counter step
        bits.random_raw(start % 4)  # one word per double
        return np.random.Generator(bits).random(stop - start)

    def cells(self) -> RowUniforms:
        """The uniforms of the same chain and sweep that draw missing cells (another stream)."""
        return RowUniforms(self.key, self.sweep, _CELL_STREAM)


@dataclass(frozen=True)
class ChainStreams:
    """The random streams of one chain (a Philox key; see the module docstring)."""

    key: tuple[int, int]

    @classmethod
    def spawn(cls, seed: np.random.SeedSequence, n_chains: int) -> list[ChainStreams]:
        """Independent streams for ``n_chains`` chains, from children of ``seed``."""
        return [cls(tuple(int(k) for k in child.generate_state(2, np.uint64))) for child in seed.spawn(n_chains)]

    def row_uniforms(self, sweep: int) -> RowUniforms:
        return RowUniforms(self.key, sweep)

    def parameter_rng(self, sweep: int) -> np.random.Generator:
        return np.random.Generator(_philox(self.key, sweep, _THETA_STREAM))


# --------------------------------------------------------------------------
# z | theta, X: one block of rows
# --------------------------------------------------------------------------
def draw_components(joint: np.ndarray, total: np.ndarray, uniforms: np.ndarray) -> np.ndarray:
    """Component of each row, (..., m), by inverting the cumulative joint densities (..., K, m).

    ``joint[..., k, i]`` is proportional to ``P(z_i = k)`` and ``total[..., i]``
    is its sum over k; row i takes the first k whose cumulative sum exceeds
    ``uniforms[..., i] * total[..., i]``. Leading axes are chains.
    Components of zero probability are never drawn. (One vectorised
    comparison per component: ``np.cumsum`` along the short axis is several
    times slower.)
    """
    K = joint.shape[-2]
    threshold = uniforms * total
    cumulative = joint[..., 0, :].copy()
    z = np.zeros(threshold.shape, dtype=np.intp)
    for k in range(1, K):
        z += cumulative <= threshold
        cumulative += joint[..., k, :]
    return z


def _segment_sums(values: np.ndarray, starts: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Sums of ``values`` (..., m) over consecutive column segments: (S, ...); 0 for empty segments."""
    out = np.zeros((counts.shape[0],) + values.shape[:-1])
    filled = counts > 0
    if filled.any():
        out[filled] = np.moveaxis(np.add.reduceat(values, starts[filled], axis=-1), -1, 0)
    return out


def _segment_scatters(grouped, starts, counts):
    """Per segment ``sum x x^T`` of its columns (S, d, d): one small GEMM per segment."""
    return np.stack([grouped[:, a:a + c] @ grouped[:, a:a + c].T for a, c in zip(starts, counts)])


def _second_moments(grouped, starts, counts, covariance_type, chain_spans):
    """The type's ``sxx`` of each segment (full, diag, spherical) or of each chain's span (tied)."""
    if covariance_type == "full":
        return _segment_scatters(grouped, starts, counts)
    if covariance_type == "tied":  # each chain's total over its Gaussians' rows, as EM's tied statistic
        return _segment_scatters(grouped, *chain_spans)
    squares = np.square(grouped)
    if covariance_type == "diag":
        return _segment_sums(squares, starts, counts)
    return _segment_sums(squares.sum(axis=0), starts, counts)


def _sort_key_dtype(n_classes: int):
    """The narrowest integer type that holds the sort keys: numpy radix-sorts 16-bit keys (stable)."""
    return np.int16 if n_classes <= np.iinfo(np.int16).max else np.intp


def hard_assignment_statistics(XT: np.ndarray, z: np.ndarray, n_components: int, covariance_type: str,
                               log_likelihood=0.0, noise: bool = False) -> SuffStats:
    """:class:`SuffStats` of rows ``XT`` (d, m) with responsibilities ``[z_i = k]``.

    Equal to :func:`~gmmflow.core.em_steps.statistics_from_responsibilities`
    with one-hot responsibilities, at a fraction of its cost: the rows are
    grouped by component (a stable radix sort of ``z``) and each group is
    reduced on its own, so every row enters one component's sums instead of K.
    ``z`` (C, m) holds C chains' assignments of the same rows: the rows are
    grouped by (chain, component) in one sort, and every field gets a leading
    chain axis (``log_likelihood`` then has shape (C,)).
    With ``noise`` the last of the ``n_components`` classes is the noise
    component: it has a count, and its rows enter no moment (they are sorted
    after every chain's Gaussian rows and left out).
    """
    batch, m = z.shape[:-1], z.shape[-1]
    chains = int(np.prod(batch, dtype=np.intp))
    gaussians = n_components - int(noise)
    chain = np.arange(chains)[:, None]
    z = z.reshape(chains, m)
    keys = (gaussians * chain + z) if not noise else np.where(z < gaussians, gaussians * chain + z,
                                                              gaussians * chains + chain)
    counts = np.bincount(keys.ravel(), minlength=n_components * chains)
    order = np.argsort(keys.ravel().astype(_sort_key_dtype(n_components * chains)), kind="stable")
    counts, noise_counts = counts[:gaussians * chains], counts[gaussians * chains:]
    order = order[:counts.sum()]
    grouped = np.take(XT, order % m if chains > 1 else order, axis=1)
    starts = np.cumsum(counts) - counts
    spans = starts[::gaussians], counts.reshape(chains, gaussians).sum(axis=1)  # each chain's Gaussian rows
    sx = _segment_sums(grouped, starts, counts)
    sxx = _second_moments(grouped, starts, counts, covariance_type, spans)
    nk = np.concatenate([counts.reshape(chains, gaussians), noise_counts.reshape(chains, int(noise))], axis=1)
    per_chain = () if covariance_type == "tied" else (gaussians,)
    return SuffStats(float(m), nk.reshape(batch + (n_components,)).astype(np.float64),
                     sx.reshape(batch + (gaussians,) + sx.shape[1:]),
                     sxx.reshape(batch + per_chain + sxx.shape[1:]), log_likelihood)


def assignment_statistics(XT: np.ndarray, uniforms: np.ndarray, log_weights: np.ndarray, means: np.ndarray,
                          prec: np.ndarray, covariance_type: str, log_noise_density: float | None = None) -> SuffStats:
    """Rows ``XT`` (d, m): draw each row's component, reduce to hard-assignment statistics.

    Parameters and ``uniforms`` (C, m) may carry a leading chain axis: the
    chains share the pass over the rows (one joint-density GEMM, one sort).
    A noise model (``log_noise_density`` given, K+1 ``log_weights``) draws the
    noise as class K+1 (joint density ``w_0 / V``). ``log_likelihood`` of the
    result is ``sum_i log p(x_i | theta)`` at the parameters the components
    were drawn from (free: the E-step computes it).
    """
    joint, total, top = _joint_exp(XT, log_weights, means, prec, covariance_type, log_noise_density)
    z = draw_components(joint, total, uniforms)
    return hard_assignment_statistics(XT, z, joint.shape[-2], covariance_type,
                                      np.sum(np.log(total) + top, axis=-1), log_noise_density is not None)


def assignment_kernel(params: Params) -> tuple:
    """The arguments of :func:`assignment_statistics` after the uniforms: those of ``params`` only."""
    return (np.log(params.weights), params.means, params.precision, params.covariance_type,
            params.log_noise_density)

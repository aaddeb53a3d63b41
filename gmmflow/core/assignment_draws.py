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
    """Component of each row, (m,), by inverting the cumulative joint densities (K, m).

    ``joint[k, i]`` is proportional to ``P(z_i = k)`` and ``total[i]`` is
    its sum over k; row i takes the first k whose cumulative sum exceeds
    ``uniforms[i] * total[i]``.
    Components of zero probability are never drawn. (One vectorised
    comparison per component: ``np.cumsum`` along the short axis is several
    times slower.)
    """
    K, m = joint.shape
    threshold = uniforms * total
    cumulative = joint[0].copy()
    z = np.zeros(m, dtype=np.intp)
    for k in range(1, K):
        z += cumulative <= threshold
        cumulative += joint[k]
    return z


def _segment_sums(values: np.ndarray, starts: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Sums of ``values`` (..., m) over consecutive column segments: (K, ...); 0 for empty segments."""
    out = np.zeros((counts.shape[0],) + values.shape[:-1])
    filled = counts > 0
    if filled.any():
        out[filled] = np.moveaxis(np.add.reduceat(values, starts[filled], axis=-1), -1, 0)
    return out


def _grouped_scatter(grouped, starts, counts):
    """Per component ``sum x x^T`` of its rows (K, d, d): one small GEMM per component."""
    return np.stack([grouped[:, a:a + c] @ grouped[:, a:a + c].T for a, c in zip(starts, counts)])


def _grouped_second_moment(grouped, starts, counts, covariance_type):
    if covariance_type == "full":
        return _grouped_scatter(grouped, starts, counts)
    if covariance_type == "tied":  # the total, as EM's tied statistic
        return grouped @ grouped.T
    squares = np.square(grouped)
    if covariance_type == "diag":
        return _segment_sums(squares, starts, counts)
    return _segment_sums(squares.sum(axis=0), starts, counts)


def hard_assignment_statistics(XT: np.ndarray, z: np.ndarray, n_components: int, covariance_type: str,
                               log_likelihood: float = 0.0, noise: bool = False) -> SuffStats:
    """:class:`SuffStats` of rows ``XT`` (d, m) with responsibilities ``[z_i = k]``.

    Equal to :func:`~gmmflow.core.em_steps.statistics_from_responsibilities`
    with one-hot responsibilities, at a fraction of its cost: the rows are
    grouped by component (a stable radix sort of ``z``) and each group is
    reduced on its own, so every row enters one component's sums instead of K.
    With ``noise`` the last of the ``n_components`` classes is the noise
    component: it has a count, and its rows enter no moment.
    """
    counts = np.bincount(z, minlength=n_components)
    grouped = np.take(XT, np.argsort(z.astype(np.int16), kind="stable"), axis=1)
    starts = np.cumsum(counts) - counts
    nk = counts.astype(np.float64)
    if noise:  # the noise's rows are sorted last: drop them from the moments
        grouped, starts, counts = grouped[:, :starts[-1]], starts[:-1], counts[:-1]
    return SuffStats(float(XT.shape[1]), nk, _segment_sums(grouped, starts, counts),
                     _grouped_second_moment(grouped, starts, counts, covariance_type), float(log_likelihood))


def assignment_statistics(XT: np.ndarray, uniforms: np.ndarray, log_weights: np.ndarray, means: np.ndarray,
                          prec: np.ndarray, covariance_type: str, log_noise_density: float | None = None) -> SuffStats:
    """Rows ``XT`` (d, m): draw each row's component, reduce to hard-assignment statistics.

    A noise model (``log_noise_density`` given, K+1 ``log_weights``) draws the
    noise as class K+1 (joint density ``w_0 / V``). ``log_likelihood`` of the
    result is ``sum_i log p(x_i | theta)`` at the parameters the components
    were drawn from (free: the E-step computes it).
    """
    joint, total, top = _joint_exp(XT, log_weights, means, prec, covariance_type, log_noise_density)
    z = draw_components(joint, total, uniforms)
    return hard_assignment_statistics(XT, z, joint.shape[0], covariance_type, np.sum(np.log(total) + top),
                                      log_noise_density is not None)


def assignment_kernel(params: Params) -> tuple:
    """The arguments of :func:`assignment_statistics` after the uniforms: those of ``params`` only."""
    return (np.log(params.weights), params.means, params.precision, params.covariance_type,
            params.log_noise_density)

r"""The noise component: a uniform density over a region of volume ``V`` (mclust's noise).

Pure numpy. A noise model is a mixture of K Gaussians and one uniform
component of density ``1/V`` on a region that holds the data:

.. math::

    p(x) = \sum_{k=1}^K w_k N(x | \mu_k, \Sigma_k) + w_0 / V ,
    \qquad \sum_{k=1}^K w_k + w_0 = 1 .

Conventions (those of mclust's ``pro``): the weights are K+1 numbers, the
noise weight ``w_0`` **last**; a parameter set whose weights have one entry
more than its means is a noise model and carries ``log(1/V)``
(``Params.log_noise_density``; mclust's ``log(Vinv)``). The volume is a fixed
constant, not a parameter: the region is taken from the data once (or given by
the user) and every E-step, prediction and density uses the same ``V``.

E-step
    The noise is one more row of the joint log-probabilities,
    ``log w_0 - log V`` for every observation; the logsumexp over the K+1
    rows is the log mixture density, the normalised rows the responsibilities
    ``r_i0`` (noise) and ``r_ik``.
M-step
    Write ``n_0 = sum_i r_i0``, ``n_k = sum_i r_ik``. The expected complete-data
    log posterior is that of the Gaussian mixture (``core.em_steps``) plus
    ``n_0 (log w_0 - log V)``; ``log V`` is constant, so ``mu_k, Sigma_k``
    keep their closed forms with the Gaussian ``n_k`` (statistics weighted by
    ``r_ik`` only) and the weights maximise ``sum_j (n_j + alpha - 1) log w_j``
    over the K+1 entries under ``w ~ Dirichlet(alpha 1_{K+1})``:
    ``w_j = (n_j + alpha - 1) / (n + (K+1)(alpha - 1))`` (``w_j = n_j / n`` for
    the MLE), the formula of the Gaussian weights with one more entry.

The default volume is mclust's ``hypvol(data)``: the smaller of the volume of
the data's bounding box and the volume of the bounding box of its principal
component scores (``princomp(data)$scores``), computed on logarithms
(``log V = min(sum_j log range_j(X), sum_j log range_j(X A))`` with ``A`` the
eigenvectors of the data covariance), so that ``V`` neither overflows nor
underflows in many dimensions.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

# the noise weight a start is given when the user gives none (see initial_noise)
INITIAL_NOISE_WEIGHT = 0.1


def principal_axes(cov: np.ndarray) -> np.ndarray:
    """Eigenvectors (d, d) of a data covariance: the axes of the principal component scores.

    Their signs and the scale of ``cov`` do not matter to the ranges of the
    scores, so any covariance estimate of the data serves (R's ``princomp``
    divides by n, gmmflow's moments by n - 1).
    """
    return np.linalg.eigh(np.asarray(cov, dtype=np.float64))[1]


def block_extremes(X: np.ndarray, axes: np.ndarray) -> np.ndarray:
    """Column minima and maxima of a block of rows and of its scores: (2, 2d).

    Row 0 the minima, row 1 the maxima, of ``[X, X @ axes]``; extremes of
    blocks combine by :func:`combine_extremes`. The centring of the scores does
    not change their ranges, so the block need not be centred.
    """
    both = np.concatenate([X, X @ axes], axis=1)
    return np.stack([both.min(axis=0), both.max(axis=0)])


def combine_extremes(parts) -> np.ndarray:
    """The extremes of the union of blocks whose :func:`block_extremes` are ``parts``."""
    parts = np.stack(list(parts))
    return np.stack([parts[:, 0].min(axis=0), parts[:, 1].max(axis=0)])


def log_hypervolume(extremes: np.ndarray) -> float:
    """mclust's ``log(hypvol(X))`` from the extremes of :func:`block_extremes`.

    ``min(sum_j log range_j(X), sum_j log range_j(scores))``.

    Raises
    ------
    ValueError
        When both boxes are flat (a constant feature, or rows on a hyperplane):
        the uniform density would be infinite.
    """
    d = extremes.shape[1] // 2
    ranges = extremes[1] - extremes[0]
    with np.errstate(divide="ignore"):
        log_box, log_pc_box = np.log(ranges[:d]).sum(), np.log(ranges[d:]).sum()
    log_volume = float(min(log_box, log_pc_box))
    if not np.isfinite(log_volume):
        flat = np.flatnonzero(ranges[:d] <= 0)
        where = f"feature(s) {flat.tolist()} are constant" if flat.size else "the rows lie on a hyperplane"
        raise ValueError(
            f"The noise component needs a region of positive volume, but the data's bounding box is flat "
            f"({where}). Drop the constant feature(s), or give the volume: GMM(..., noise=True, noise_volume=V)."
        )
    return log_volume


def noise_row(log_weights: np.ndarray, log_noise_density: float, n_rows: int) -> np.ndarray:
    """The noise component's row of log-densities, ``log(1/V)`` for every row: (..., 1, n_rows).

    The caller adds the log-weights (K+1, noise last) to all rows at once.
    ``log_weights`` gives the batch shape.
    """
    return np.full(log_weights.shape[:-1] + (1, n_rows), float(log_noise_density))


def with_noise(params, log_noise_density: float, noise_weight: float = INITIAL_NOISE_WEIGHT):
    """A Gaussian start (``core.em_steps.Params``) as a noise model's start: weights
    ``(1 - w_0) w_k`` and ``w_0`` last.

    ``params`` may carry batch axes; K+1 given weights are kept.
    """
    if params.has_noise:  # the user gave all K+1 weights
        return replace(params, log_noise_density=float(log_noise_density))
    w = params.weights
    weights = np.concatenate([(1.0 - noise_weight) * w, np.full(w.shape[:-1] + (1,), noise_weight)], axis=-1)
    return replace(params, weights=weights, log_noise_density=float(log_noise_density))

"""Ranks of simulation-based calibration and two tests of their uniformity.

SBC (Talts et al. 2018). Draw ``theta* ~ p(theta)``, data ``y ~ p(y | theta*)``
and L independent posterior draws ``theta_1..theta_L ~ p(theta | y)``. For
any scalar ``f``, ``theta*`` and the ``theta_l`` are then L + 1 exchangeable
draws of the same joint ``p(theta, y)`` given ``y``, so the rank

    r = #{l : f(theta_l) < f(theta*)}

(ties broken uniformly at random) is uniform on ``{0, ..., L}`` whatever the
model, when and only when the sampler draws from the exact posterior (up to
the power of the test). Over N simulations the ranks are N independent
draws of that discrete uniform.

Two tests of that null hypothesis, for N ranks on ``{0, ..., L}``:

- **chi-square on B bins** (B divides L + 1, so every bin holds (L + 1) / B
  rank values and has probability 1 / B): Pearson's statistic
  ``sum_b (c_b - N/B)^2 / (N/B)`` against chi-square(B - 1); asymptotic,
  fine when N/B >= 5.
- **ECDF simultaneous band** (Säilynoja, Bürkner & Vehtari 2022). At the L
  evaluation points ``z_j = j / (L + 1)``, ``j = 1..L``, the count
  ``c_j = #{r < j}`` is Binomial(N, z_j) under the null. The statistic is the
  smallest two-sided pointwise tail probability
  ``T = min_j 2 min(P(C <= c_j), P(C >= c_j))`` (C ~ Binomial(N, z_j)), i.e.
  the pointwise level at which the ECDF first leaves its binomial band. Its
  null distribution is simulated: the L + 1 rank values are equally likely,
  so the counts of N uniform ranks per value are Multinomial(N, 1/(L+1)), and
  their cumulative sums are the ``c_j``. The p-value is
  ``(1 + #{T_null <= T}) / (1 + R)`` over R null replicates; the
  simultaneous band of level ``1 - alpha`` is the pointwise binomial band at
  ``gamma``, the alpha-quantile of ``T_null`` (the ECDF leaves it with
  probability about alpha). ArviZ's ``ecdf_confidence_band`` (optimised,
  continuous uniform) computes the same band by another route; the tests
  compare them.
"""

from __future__ import annotations

import numpy as np
from scipy import stats


def ranks(draws: np.ndarray, truth: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Rank of each true value among its posterior draws, ties broken at random.

    Parameters
    ----------
    draws : ndarray (N, L, Q)
        L posterior draws of Q scalar quantities for each of N simulations.
    truth : ndarray (N, Q)
        The values the data of each simulation were drawn with.
    rng : numpy.random.Generator
        Breaks ties (e.g. the weight of a single component, always 1).

    Returns
    -------
    ndarray (N, Q) of int64 in ``0..L``
    """
    below = np.sum(draws < truth[:, None, :], axis=1)
    tied = np.sum(draws == truth[:, None, :], axis=1)
    return below + np.floor(rng.random(below.shape) * (tied + 1)).astype(np.int64)


def chi_square_test(ranks: np.ndarray, n_values: int, n_bins: int) -> tuple[np.ndarray, np.ndarray]:
    """Pearson's chi-square test of uniform ranks, per quantity.

    Parameters
    ----------
    ranks : ndarray (N, Q) of int in ``0..n_values - 1``
    n_values : int
        L + 1, the number of possible ranks.
    n_bins : int
        B, dividing ``n_values``.

    Returns
    -------
    statistic, p_value : ndarray (Q,)
    """
    if n_values % n_bins:
        raise ValueError(f"n_bins ({n_bins}) must divide the number of rank values ({n_values}).")
    counts = bin_counts(ranks, n_values, n_bins)
    expected = ranks.shape[0] / n_bins
    statistic = np.sum((counts - expected) ** 2, axis=1) / expected
    return statistic, stats.chi2.sf(statistic, n_bins - 1)


def bin_counts(ranks: np.ndarray, n_values: int, n_bins: int) -> np.ndarray:
    """Counts (Q, B) of the ranks (N, Q) in B equal bins of ``0..n_values - 1``."""
    bins = ranks * n_bins // n_values
    return np.stack([np.bincount(b, minlength=n_bins) for b in bins.T])


def ecdf_counts(ranks: np.ndarray, n_values: int) -> np.ndarray:
    """``c[q, j - 1] = #{r < j}`` for j = 1..L (Q, L): N times the ECDF at ``z_j = j / (L + 1)``."""
    per_value = np.stack([np.bincount(r, minlength=n_values) for r in ranks.T])
    return np.cumsum(per_value, axis=1)[:, :-1]


def evaluation_points(n_values: int) -> np.ndarray:
    """``z_j = j / (L + 1)``, j = 1..L: where the ECDF of ranks on ``0..L`` is compared with z."""
    return np.arange(1, n_values) / n_values


def band_statistic(counts: np.ndarray, n: int, z: np.ndarray) -> np.ndarray:
    """Smallest two-sided pointwise binomial tail probability along the last axis (capped at 1)."""
    lower = stats.binom.cdf(counts, n, z)
    upper = stats.binom.sf(counts - 1, n, z)
    return np.minimum(1.0, 2.0 * np.min(np.minimum(lower, upper), axis=-1))


def null_band_statistics(n: int, n_values: int, n_replicates: int, rng: np.random.Generator) -> np.ndarray:
    """``band_statistic`` of ``n_replicates`` sets of N uniform ranks on ``0..n_values - 1``."""
    per_value = rng.multinomial(n, np.full(n_values, 1.0 / n_values), size=n_replicates)
    counts = np.cumsum(per_value, axis=1)[:, :-1]
    return band_statistic(counts, n, evaluation_points(n_values))


def ecdf_band_test(ranks: np.ndarray, n_values: int, null_statistics: np.ndarray) -> np.ndarray:
    """p-values (Q,) of the ECDF simultaneous-band test against simulated null statistics."""
    n = ranks.shape[0]
    observed = band_statistic(ecdf_counts(ranks, n_values), n, evaluation_points(n_values))
    exceed = np.sum(null_statistics[None, :] <= observed[:, None], axis=1)
    return (1.0 + exceed) / (1.0 + null_statistics.shape[0])


def simultaneous_band(n: int, n_values: int, alpha: float, null_statistics: np.ndarray):
    """Lower and upper ECDF limits (L,) at ``evaluation_points``: the simultaneous 1 - alpha band.

    The pointwise binomial band at level ``gamma``, the alpha-quantile of the null statistics.
    """
    gamma = float(np.quantile(null_statistics, alpha))
    z = evaluation_points(n_values)
    lower, upper = stats.binom.interval(1.0 - gamma, n, z)
    return lower / n, upper / n

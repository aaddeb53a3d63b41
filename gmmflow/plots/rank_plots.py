"""Calibration: rank histograms and ECDF differences with simultaneous bands, one pair per quantity.

Reads the ``calibration`` group of :func:`gmmflow.calibrate`. Under a
calibrated sampler every quantity's ranks are uniform: bars level within
their band, and the ECDF difference inside its simultaneous band.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
from scipy import stats

from gmmflow import schema as S
from gmmflow.core.rank_uniformity import bin_counts, ecdf_counts, evaluation_points
from gmmflow.plots.data_access import calibration
from gmmflow.plots.registry import register

N_COLS = 4
BIN_BAND = 0.99  # pointwise band drawn on each rank histogram bar (Talts et al. 2018)


def _histogram(ax, counts: np.ndarray, n_sims: int, title: str):
    B = counts.shape[0]
    lo, hi = stats.binom.interval(BIN_BAND, n_sims, 1.0 / B)
    ax.axhspan(lo, hi, color="0.88", zorder=0, gid="rank-histogram-band")
    ax.axhline(n_sims / B, color="0.5", lw=0.8)
    ax.bar(np.arange(B), counts, width=1.0, color="C0", edgecolor="white", gid="rank-histogram")
    ax.set_xticks([])
    ax.set_title(title, fontsize=8)


def _ecdf_difference(ax, ecdf: np.ndarray, z: np.ndarray, lower: np.ndarray, upper: np.ndarray):
    ax.fill_between(z, lower - z, upper - z, step="mid", color="0.88", gid="ecdf-band")
    ax.step(z, ecdf - z, where="mid", color="C0", lw=1.2, gid="ecdf-difference")
    ax.axhline(0.0, color="0.5", lw=0.8)
    ax.tick_params(labelsize=7)


@register("calibration", order=5, needs=(S.CALIBRATION,),
          caption="Simulation-based calibration: for each label-invariant quantity, the histogram of the true "
                  "value's rank among the posterior draws (grey: where each bar lies with probability 0.99 "
                  "under a calibrated sampler) and the ECDF of the ranks minus the uniform CDF (grey: the "
                  "simultaneous band at the level recorded, inside which the whole curve stays under a "
                  "calibrated sampler). Look for curves leaving their band: a hump (ECDF below 0, then "
                  "above) means an over-dispersed posterior, a trough an under-dispersed one, a curve on one "
                  "side a biased one.")
def plot_calibration(idata, *, quantities: list[str] | None = None, n_cols: int = N_COLS):
    """Rank histogram and ECDF-difference plot (with its simultaneous band) of each calibrated quantity.

    Parameters
    ----------
    idata : InferenceData
        A :func:`gmmflow.calibrate` result.
    quantities : list of str, optional
        Which quantities to draw (default all), by their ``quantity`` coordinate.
    n_cols : int, default 4

    Returns
    -------
    ndarray of matplotlib Axes, shape (2 * rows, n_cols): each quantity's
    histogram above its ECDF difference; the title gives its p-value.
    """
    cal = calibration(idata)
    names = [str(q) for q in cal[S.QUANTITY].values]
    chosen = names if quantities is None else list(quantities)
    unknown = [q for q in chosen if q not in names]
    if unknown or not chosen:
        raise ValueError(f"quantities must be some of {names}; got {chosen!r}.")
    n_values, n_bins = int(cal.attrs["n_values"]), int(cal.attrs["n_bins"])
    columns = [names.index(q) for q in chosen]
    rank = cal[S.RANK].values[:, columns]
    n_sims = rank.shape[0]
    z = evaluation_points(n_values)
    ecdf = ecdf_counts(rank, n_values) / n_sims
    hist = bin_counts(rank, n_values, n_bins)
    rows = -(-len(chosen) // n_cols)
    fig, axes = plt.subplots(2 * rows, n_cols, figsize=(2.6 * n_cols, 3.4 * rows), squeeze=False)
    p_values = cal[S.P_VALUE].values[columns]
    for i, name in enumerate(chosen):
        top, bottom = axes[2 * (i // n_cols), i % n_cols], axes[2 * (i // n_cols) + 1, i % n_cols]
        _histogram(top, hist[i], n_sims, f"{name}\np = {p_values[i]:.3g}")
        _ecdf_difference(bottom, ecdf[i], z, cal["band_lower"].values, cal["band_upper"].values)
    for i in range(len(chosen), rows * n_cols):
        axes[2 * (i // n_cols), i % n_cols].set_visible(False)
        axes[2 * (i // n_cols) + 1, i % n_cols].set_visible(False)
    fig.suptitle(f"Calibration over {n_sims} simulations (ECDF band: simultaneous, level "
                 f"{cal.attrs['alpha']:g})", fontsize=9)
    fig.tight_layout()
    return axes

"""Density: the data against the EM plug-in density and the posterior predictive band."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np

from gmmflow import defaults
from gmmflow import schema as S
from gmmflow.plots.registry import register
from gmmflow.plots.data_access import em_estimate, mixture_density, observed, posterior_draws


def _grid(x: np.ndarray, size: int) -> np.ndarray:
    lo, hi = x.min(), x.max()
    pad = 0.1 * (hi - lo) if hi > lo else 1.0
    return np.linspace(lo - pad, hi + pad, size)


def _density_1d(ax, x, j, em, post, band, grid_size, name):
    """Histogram of feature j with the EM marginal density and the posterior band."""
    w, mu, cov = em
    grid = _grid(x, grid_size)
    marginal = lambda w_, mu_, cov_: mixture_density(  # noqa: E731
        grid[:, None], w_, mu_[:, [j]], cov_[:, [j]][:, :, [j]])
    ax.hist(x, bins=int(np.clip(2 * np.sqrt(x.size), 10, 60)), density=True, color="0.8", gid="histogram")
    if post is not None:
        dens = np.array([marginal(*p) for p in zip(*post)])
        tail = (1.0 - band) / 2.0
        low, high = np.quantile(dens, [tail, 1.0 - tail], axis=0)
        ax.fill_between(grid, low, high, color="C0", alpha=0.3, gid="posterior-band",
                        label=f"posterior {band:.0%} band")
        ax.plot(grid, dens.mean(0), color="C0", lw=1.2, gid="posterior-density", label="posterior mean")
    ax.plot(grid, marginal(w, mu, cov), color="C3", lw=1.8, gid="em-density", label="EM plug-in")
    ax.set_xlabel(name)
    ax.set_ylabel("density")
    ax.legend(fontsize=8)


@register("density", order=30, needs=(S.OBSERVED_DATA,),
          caption="The data (histogram per feature; points in 2-D) with EM's plug-in mixture density (red) and "
                  "the posterior's mean density (blue; its 94% band shaded in the histograms). Look for the data "
                  "following the curves. A bump or tail of data the curves miss points to a misfit: another "
                  "component, or another covariance type.")
def plot_density(idata, *, band: float = defaults.INTERVAL_PROB, draws: int = 200, grid_size: int = 200, ax=None):
    """Data density against the EM plug-in density and the posterior predictive band.

    d = 1: histogram, EM density, pointwise ``band`` interval and mean of the
    density over (up to ``draws``) posterior draws. d = 2: EM density
    contours (solid) and posterior mean density contours (dashed) over the
    data. d > 2: one panel per feature with its marginal densities.
    """
    X = observed(idata)
    w, mu, cov, features = em_estimate(idata)
    d = X.shape[1]
    post = posterior_draws(idata, draws) if S.has_groups(idata, S.POSTERIOR) else None
    if d == 2:
        ax = ax if ax is not None else plt.subplots(figsize=(6, 5))[1]
        gx, gy = _grid(X[:, 0], grid_size // 2), _grid(X[:, 1], grid_size // 2)
        points = np.column_stack([a.ravel() for a in np.meshgrid(gx, gy)])
        ax.scatter(X[:, 0], X[:, 1], s=6, color="0.5", alpha=0.6, gid="data")
        em = ax.contour(gx, gy, mixture_density(points, w, mu, cov).reshape(gy.size, gx.size),
                        levels=8, colors="C3", linewidths=1.5)
        em.set_gid("em-density")
        if post is not None:
            mean_density = np.mean([mixture_density(points, *p) for p in zip(*post)], axis=0)
            pc = ax.contour(gx, gy, mean_density.reshape(gy.size, gx.size), levels=em.levels,
                            colors="C0", linewidths=1.0, linestyles="--")
            pc.set_gid("posterior-density")
        ax.set_xlabel(features[0])
        ax.set_ylabel(features[1])
        ax.set_title("Density: EM plug-in (solid) and posterior mean (dashed)")
        return ax
    if d == 1:
        ax = ax if ax is not None else plt.subplots(figsize=(7, 4))[1]
        _density_1d(ax, X[:, 0], 0, (w, mu, cov), post, band, grid_size, features[0])
        ax.set_title("Density: EM plug-in and posterior predictive")
        return ax
    if ax is not None:
        raise ValueError("ax is for d <= 2; with more features one panel per feature is drawn.")
    cols = min(d, 2)
    fig, axes = plt.subplots(int(np.ceil(d / cols)), cols, figsize=(5.5 * cols, 3.8 * np.ceil(d / cols)),
                             squeeze=False)
    for j, panel in enumerate(axes.flat):
        if j >= d:
            panel.set_visible(False)
            continue
        _density_1d(panel, X[:, j], j, (w, mu, cov), post, band, grid_size, features[j])
    fig.suptitle("Marginal densities: EM plug-in and posterior predictive")
    fig.tight_layout()
    return axes

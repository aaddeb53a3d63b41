"""Clusters: data coloured by assignment, with EM and posterior covariance ellipses."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.patches import Ellipse
from scipy.stats import chi2

from gmmflow import schema as S
from gmmflow.plots.data_access import em_estimate, hard_labels, observed, posterior_draws
from gmmflow.plots.registry import register
from gmmflow.plots.geometry import (LEVEL, component_colours, ellipse_geometry, feature_pairs, principal_axes,
                                    project_parameters, project_rows)


def draw_ellipses(ax, means2, covs2, colours, gid, level, **style):
    for m, c, colour in zip(means2, covs2, colours):
        width, height, angle = ellipse_geometry(c, level)
        ax.add_patch(Ellipse(m, width, height, angle=angle, fill=False, edgecolor=colour, gid=gid, **style))


def _scatter_labelled(ax, x, y, labels, colours):
    """Points coloured by component; a noise model's noise rows (label -1) apart, as grey crosses."""
    noise = labels == S.NOISE_LABEL
    ax.scatter(x[~noise], y[~noise], c=[colours[k] for k in labels[~noise]], s=10, alpha=0.6, gid="data")
    if noise.any():
        ax.scatter(x[noise], y[noise], marker="x", color="0.45", s=14, linewidths=0.8, alpha=0.8, gid="noise",
                   label=f"noise ({int(noise.sum())} rows)")
        ax.legend(loc="best", fontsize=8)


def _clusters_panel(ax, X2, labels, em, draws, colours, level):
    _scatter_labelled(ax, X2[:, 0], X2[:, 1], labels, colours)
    draw_ellipses(ax, *em, colours, "em-ellipse", level, lw=2.0)
    for mu2, cov2 in draws:
        draw_ellipses(ax, mu2, cov2, colours, "posterior-ellipse", level, lw=0.5, alpha=0.25)
    ax.autoscale_view()


def _clusters_1d(ax, x, labels, em, draws, colours, level):
    half = np.sqrt(chi2.ppf(level, df=1))
    jitter = np.random.default_rng(0).uniform(-0.3, 0.3, x.size)
    _scatter_labelled(ax, x, jitter, labels, colours)
    mu, var = em
    for k, (m, v) in enumerate(zip(mu, var)):
        y = -0.6 - 0.15 * k
        ax.plot([m - half * np.sqrt(v), m + half * np.sqrt(v)], [y, y], color=colours[k], lw=3,
                gid="em-ellipse", solid_capstyle="butt")
        for mu_s, var_s in draws:
            ax.plot([mu_s[k] - half * np.sqrt(var_s[k]), mu_s[k] + half * np.sqrt(var_s[k])],
                    [y - 0.05, y - 0.05], color=colours[k], lw=0.5, alpha=0.25, gid="posterior-ellipse")
    ax.set_yticks([])


CAPTION = ("The data coloured by their most probable component, with each component's 95% ellipse (an interval in "
           "1-D) from EM (thick) and from 20 posterior draws (thin). Look for ellipses that cover their points. Thin "
           "ellipses scattered widely around a thick one mean that component is poorly determined; points no "
           "ellipse covers suggest a missing component. A noise model's noise rows (most probably from the uniform "
           "component) are grey crosses.")


@register("clusters", order=20, needs=(S.OBSERVED_DATA,), caption=CAPTION)
def plot_clusters(idata, *, draws: int = 20, projection: str = "auto", level: float = LEVEL, ax=None):
    """Data coloured by assignment with the EM covariance ellipses and those of posterior draws.

    Parameters
    ----------
    idata : InferenceData
        ``fit_em`` or ``sample_posterior`` result with ``observed_data``.
    draws : int, default 20
        Posterior draws (evenly spaced) whose ellipses are drawn thinly.
    projection : {"auto", "pairs", "pca"}
        For d > 2: a lower-triangular grid of feature pairs, or the first two
        principal components (the SVD of the centred data; covariances are
        projected as ``B^T Sigma B``). ``"auto"``: pairs up to 4 features.
    level : float, default 0.95
        Probability inside each ellipse. For d = 1, the ellipses are the
        central ``level`` intervals of each component, drawn under the data.
    ax : matplotlib Axes, optional
        Only for single-panel plots (d <= 2 or ``"pca"``).

    Returns
    -------
    Axes or ndarray of Axes
    """
    X = observed(idata)
    _, mu, cov, features = em_estimate(idata)
    K, d = mu.shape
    labels = hard_labels(idata)
    colours = component_colours(K)
    sampled = S.has_groups(idata, S.POSTERIOR) and draws > 0
    post = posterior_draws(idata, draws) if sampled else (None, np.empty((0, K, d)), np.empty((0, K, d, d)))
    _, mu_s, cov_s = post
    if projection not in ("auto", "pairs", "pca"):
        raise ValueError(f"projection must be 'auto', 'pairs' or 'pca'; got {projection!r}.")
    if projection == "auto":
        projection = "pairs" if d <= 4 else "pca"

    if d == 1:
        ax = ax if ax is not None else plt.subplots(figsize=(7, 3.5))[1]
        _clusters_1d(ax, X[:, 0], labels, (mu[:, 0], cov[:, 0, 0]),
                     list(zip(mu_s[:, :, 0], cov_s[:, :, 0, 0])), colours, level)
        ax.set_xlabel(features[0])
        ax.set_title(f"Clusters: {K} components, {level:.0%} intervals (EM thick, posterior thin)")
        return ax

    def project(basis, centre=0.0):
        m2, c2 = project_parameters(mu_s, cov_s, basis, centre)
        return project_rows(X, basis, centre), project_parameters(mu, cov, basis, centre), list(zip(m2, c2))

    if d == 2 or projection == "pca":
        if d == 2:
            basis, centre, names = np.eye(2), 0.0, features
        else:
            centre, basis = principal_axes(X)
            names = ["principal component 1", "principal component 2"]
        ax = ax if ax is not None else plt.subplots(figsize=(6, 5))[1]
        X2, em2, d2 = project(basis, centre)
        _clusters_panel(ax, X2, labels, em2, d2, colours, level)
        ax.set_xlabel(names[0])
        ax.set_ylabel(names[1])
        ax.set_title(f"Clusters: {K} components, {level:.0%} ellipses")
        return ax

    if ax is not None:
        raise ValueError("ax is for single-panel plots; with d > 2 and projection='pairs' a grid is drawn. "
                         "Pass projection='pca' to draw on one axes.")
    fig, axes = plt.subplots(d - 1, d - 1, figsize=(2.8 * (d - 1), 2.8 * (d - 1)), squeeze=False)
    for i in range(d - 1):
        for j in range(d - 1):
            axes[i, j].set_visible(j <= i)
    for i, j, basis in feature_pairs(d):
        panel = axes[i - 1, j]
        X2, em2, d2 = project(basis)
        _clusters_panel(panel, X2, labels, em2, d2, colours, level)
        panel.set_xlabel(features[j] if i == d - 1 else "")
        panel.set_ylabel(features[i] if j == 0 else "")
    fig.suptitle(f"Clusters: {K} components, {level:.0%} ellipses, feature pairs")
    fig.tight_layout()
    return axes

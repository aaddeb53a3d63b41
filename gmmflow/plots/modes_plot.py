"""Modes: the clusters of each mode of a multimodal posterior, side by side.

One panel per row of :func:`gmmflow.find_modes`: the data (grey) with the
covariance ellipses of draws from that mode's chains (thin) and of the EM
optimum the mode holds (thick), or, in 1-D, the mixture densities of those
draws (thin) and the EM optimum's weighted component densities (thick). An
EM optimum no chain visited gets a panel with its thick ellipses only.
"""

from __future__ import annotations

import arviz as az
import matplotlib.pyplot as plt
import numpy as np
from scipy.stats import norm

from gmmflow import schema as S
from gmmflow.plots.clusters import draw_ellipses
from gmmflow.plots.data_access import mixture_density, observed, posterior_draws
from gmmflow.plots.geometry import LEVEL, component_colours, principal_axes, project_parameters, project_rows
from gmmflow.plots.registry import register
from gmmflow.workflows.diagnostics import diagnose
from gmmflow.workflows.modes import find_modes

MAX_COLUMNS = 3


def multimodal(idata) -> bool:
    """Whether :func:`gmmflow.diagnose` finds the chains in more than one mode (its ``modes`` row)."""
    return "modes" in diagnose(idata).index


def _mode_draws(idata, chains: list[int], n_draws: int):
    """(w, mu, cov) of up to ``n_draws`` draws evenly spaced over the mode's chains (none for no chain)."""
    post = idata[S.POSTERIOR]
    if not chains:
        K, d = post.sizes[S.COMPONENT], post.sizes[S.FEATURE]
        return np.empty((0, K)), np.empty((0, K, d)), np.empty((0, K, d, d))
    return posterior_draws(az.InferenceData(**{S.POSTERIOR: post.isel({S.CHAIN: chains})}), n_draws)


def _optimum(idata, restarts: list[int]):
    """(w, mu, cov) of the best of the mode's EM restarts, or None."""
    if not restarts or not S.has_groups(idata, S.EM_RESTARTS):
        return None
    group = idata[S.EM_RESTARTS].isel({S.RESTART: restarts})
    best = group.isel({S.RESTART: int(np.argmax(group["objective"].values))})
    return (best["w"].transpose(S.COMPONENT).values, best["mu"].transpose(S.COMPONENT, S.FEATURE).values,
            best["cov"].transpose(S.COMPONENT, S.FEATURE, S.FEATURE2).values)


def _title(m: int, row) -> str:
    where = (f"chains {', '.join(map(str, row['chains']))}, {row['share']:.0%} of draws" if row["chains"]
             else "no chain (EM optimum)")
    em = f"EM objective {row['em_objective']:.2f}" if np.isfinite(row["em_objective"]) else "no EM restart"
    return f"mode {m}: {where}\n{em}"


def _panel_1d(ax, x, draws, optimum, colours):
    grid = np.linspace(x.min() - 0.1 * np.ptp(x) - 1e-9, x.max() + 0.1 * np.ptp(x) + 1e-9, 200)
    ax.hist(x, bins=int(np.clip(2 * np.sqrt(x.size), 10, 60)), density=True, color="0.85", gid="histogram")
    for w, mu, cov in zip(*draws):
        ax.plot(grid, mixture_density(grid[:, None], w, mu, cov), color="C0", lw=0.5, alpha=0.3, gid="mode-density")
    if optimum is not None:
        w, mu, cov = optimum
        for k, colour in enumerate(colours):
            ax.plot(grid, w[k] * norm.pdf(grid, mu[k, 0], np.sqrt(cov[k, 0, 0])), color=colour, lw=2.0,
                    gid="em-density")
    ax.set_yticks([])


def _panel_2d(ax, X2, draws, optimum, colours, level):
    ax.scatter(X2[:, 0], X2[:, 1], s=6, color="0.6", alpha=0.5, gid="data")
    for mu2, cov2 in zip(*draws):
        draw_ellipses(ax, mu2, cov2, colours, "posterior-ellipse", level, lw=0.5, alpha=0.3)
    if optimum is not None:
        draw_ellipses(ax, *optimum, colours, "em-ellipse", level, lw=2.0)
    ax.autoscale_view()


@register("modes", order=65, needs=(S.POSTERIOR, S.SAMPLE_STATS, S.OBSERVED_DATA), when=multimodal,
          caption="One panel per mode of the posterior (chains grouped by where they sit, as diagnose reports "
                  "them): the clusters of 20 draws from that mode's chains (thin; densities in 1-D) and of the "
                  "EM optimum in it (thick), titled with its chains, share of draws and EM objective. Look for "
                  "what differs between the panels: a component split in two, two merged, an empty one. The "
                  "modes are different explanations of the data; the stacking weights say how well each "
                  "predicts it.")
def plot_modes(idata, *, draws: int = 20, level: float = LEVEL):
    """Each mode of the posterior side by side: its draws' clusters and its EM optimum's.

    Parameters
    ----------
    idata : InferenceData
        A ``sample_posterior`` result with ``observed_data``; the modes are
        those of :func:`gmmflow.find_modes` (one panel per row, including EM
        optima no chain visited).
    draws : int, default 20
        Draws per mode (evenly spaced over its chains) drawn thinly.
    level : float, default 0.95
        Probability inside each ellipse. With d > 2 the data, means and
        covariances are projected on the data's first two principal
        components (``B^T Sigma B``), as ``plot_clusters(projection="pca")``;
        with d = 1 each panel shows densities instead.

    Returns
    -------
    ndarray of Axes
        One per mode, in the modes table's order.
    """
    X = observed(idata)
    modes = find_modes(idata)
    d = X.shape[1]
    colours = component_colours(idata[S.POSTERIOR].sizes[S.COMPONENT])
    n = len(modes)
    cols = min(n, MAX_COLUMNS)
    rows = int(np.ceil(n / cols))
    fig, grid = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.8 * rows), squeeze=False)
    for extra in grid.flat[n:]:
        extra.set_visible(False)
    axes = grid.flat[:n]
    if d == 2:
        centre, basis, names = 0.0, np.eye(2), [str(f) for f in idata[S.POSTERIOR][S.FEATURE].values]
    elif d > 2:
        (centre, basis), names = principal_axes(X), ["principal component 1", "principal component 2"]
    for ax, (m, row) in zip(axes, modes.iterrows()):
        mode_draws = _mode_draws(idata, list(row["chains"]), draws)
        optimum = _optimum(idata, list(row["restarts"]))
        if d == 1:
            _panel_1d(ax, X[:, 0], mode_draws, optimum, colours)
            ax.set_xlabel(str(idata[S.POSTERIOR][S.FEATURE].values[0]))
        else:
            projected = project_parameters(mode_draws[1], mode_draws[2], basis, centre)
            em2 = None if optimum is None else project_parameters(optimum[1], optimum[2], basis, centre)
            _panel_2d(ax, project_rows(X, basis, centre), projected, em2, colours, level)
            ax.set_xlabel(names[0])
            ax.set_ylabel(names[1])
        ax.set_title(_title(m, row), fontsize=9)
    fig.suptitle(f"Posterior modes: {n} ({level:.0%} ellipses)" if d > 1 else f"Posterior modes: {n}")
    fig.tight_layout()
    return np.asarray(axes)

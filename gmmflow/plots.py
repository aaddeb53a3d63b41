"""Diagnostic plots of EM and posterior results.

Every function reads a result (an ``InferenceData`` from ``fit_em`` or
``sample_posterior``, or the table of ``select_components``), checks that it
holds what the plot needs, and draws. None fits anything. Single-panel plots
take ``ax=None`` and return the axes; multi-panel plots return an array of
axes (``axes.flat[0].figure`` is the figure).

Trace/rank, pair and posterior predictive plots are ArviZ's, with the EM
estimate added as reference values. The forest plot is drawn here: it puts
every parameter on one axis, in posterior standard deviations from the
posterior mean, which ArviZ's forest (one raw scale) cannot.

Artists carry a ``gid`` naming what they show (``"em-ellipse"``,
``"posterior-ellipse"``, ``"em-density"``, ``"posterior-band"``, ...), so
code and tests can find them.
"""

from __future__ import annotations

import arviz as az
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.patches import Ellipse
from scipy.stats import chi2

from gmmflow.core.gaussian import cholesky, log_mixture_density
from gmmflow.workflows.compare import check_comparable, compare

LEVEL = 0.95  # probability mass inside a drawn covariance ellipse


# --------------------------------------------------------------------------
# Reading what a plot needs
# --------------------------------------------------------------------------
def _need(idata, *groups: str, hint: str) -> None:
    if not isinstance(idata, az.InferenceData):
        raise TypeError(f"expected an arviz.InferenceData from gmmflow, got {type(idata).__name__}.")
    missing = [g for g in groups if g not in idata.groups()]
    if missing:
        raise ValueError(f"This result has no {', '.join(missing)} group(s); {hint}.")


def _observed(idata) -> np.ndarray:
    _need(idata, "observed_data", hint="the plot draws the data, and this result did not store them "
          "(fit_em stores them unless the data exceeded its storage limit)")
    return idata["observed_data"]["x"].values


def _em_arrays(idata):
    """(weights (K,), means (K, d), full covariances (K, d, d), feature names) of the EM estimate."""
    _need(idata, "em_estimate", hint="fit with gmmflow.fit_em or gmmflow.sample_posterior")
    est = idata["em_estimate"]
    return est["w"].values, est["mu"].values, est["cov"].values, [str(f) for f in est["feature"].values]


def _posterior_arrays(idata, n_draws: int | None = None):
    """Stacked posterior draws (S, K), (S, K, d), (S, K, d, d), thinned evenly to ``n_draws``."""
    post = idata["posterior"].stack(sample=("chain", "draw"))
    w = post["w"].transpose("sample", ...).values
    mu = post["mu"].transpose("sample", ...).values
    cov = post["cov"].transpose("sample", ...).values
    if n_draws is not None and n_draws < w.shape[0]:
        keep = np.unique(np.linspace(0, w.shape[0] - 1, n_draws).round().astype(int))
        w, mu, cov = w[keep], mu[keep], cov[keep]
    return w, mu, cov


def hard_labels(idata) -> np.ndarray:
    """Each observation's most probable component: posterior if sampled, else EM."""
    if "posterior_assignment" in idata.groups():
        return idata["posterior_assignment"]["posterior_assignment"].values.argmax(1)
    if "responsibilities" in idata["em_estimate"]:
        return idata["em_estimate"]["responsibilities"].values.argmax(1)
    from gmmflow.workflows.em import predict

    return predict(idata, _observed(idata))


def _mixture_density(points: np.ndarray, w, mu, cov) -> np.ndarray:
    """Mixture density at ``points`` (m, d) for full covariances (K, d, d)."""
    return np.exp(log_mixture_density(points, w, mu, cholesky(cov, "full"), "full"))


# --------------------------------------------------------------------------
# Geometry
# --------------------------------------------------------------------------
def ellipse_geometry(cov2: np.ndarray, level: float = LEVEL) -> tuple[float, float, float]:
    """(width, height, angle in degrees) of the ``level`` contour of a 2-D Gaussian.

    From the eigendecomposition ``cov2 = V diag(l) V^T``: the contour
    ``(x - mu)^T cov2^{-1} (x - mu) = chi2_2(level)`` has semi-axes
    ``sqrt(chi2_2(level) * l_i)`` along the eigenvectors.
    """
    eigval, eigvec = np.linalg.eigh(cov2)
    radius = np.sqrt(chi2.ppf(level, df=2) * np.clip(eigval, 0.0, None))
    angle = np.degrees(np.arctan2(eigvec[1, 1], eigvec[0, 1]))  # direction of the largest axis
    return 2.0 * radius[1], 2.0 * radius[0], float(angle)


def principal_axes(X: np.ndarray, n: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """(centre (d,), basis (d, n)): the first ``n`` principal directions, from the SVD of centred X."""
    centre = X.mean(axis=0)
    _, _, vt = np.linalg.svd(X - centre, full_matrices=False)
    return centre, vt[:n].T


def feature_pairs(d: int) -> list[tuple[int, int, np.ndarray]]:
    """(row feature i, column feature j, basis (d, 2) selecting [j, i]) for every pair j < i."""
    eye = np.eye(d)
    return [(i, j, eye[:, [j, i]]) for i in range(1, d) for j in range(i)]


def _component_colours(K: int) -> list[str]:
    return [f"C{k % 10}" for k in range(K)]


# --------------------------------------------------------------------------
# 1. EM convergence
# --------------------------------------------------------------------------
def plot_em_convergence(idata, *, ax=None):
    """Objective gap to the best restart's final value, per iteration, for every restart.

    The gap ``best - objective`` is drawn on a log scale (zero gaps are not
    drawn); the chosen restart is drawn thicker.
    """
    _need(idata, "em_trace", "em_estimate", hint="fit with gmmflow.fit_em first")
    trace = idata["em_trace"]["objective"].values  # (restart, iteration)
    best = int(idata["em_estimate"]["best_restart"])
    target = np.nanmax(idata["em_restarts"]["objective"].values)
    if ax is None:
        _, ax = plt.subplots(figsize=(6, 4))
    for r, objective in enumerate(trace):
        gap = target - objective[np.isfinite(objective)]
        gap = np.where(gap > 0, gap, np.nan)
        ax.plot(np.arange(1, gap.size + 1), gap, gid=f"restart-{r}",
                lw=2.5 if r == best else 1.0, alpha=1.0 if r == best else 0.6,
                color="C3" if r == best else "C0", label="chosen restart" if r == best else None)
    ax.set_yscale("log")
    ax.set_xlabel("EM iteration")
    ax.set_ylabel("objective gap to the best restart")
    ax.set_title(f"EM convergence ({trace.shape[0]} restarts)")
    ax.legend(loc="upper right")
    return ax


# --------------------------------------------------------------------------
# 2. Clusters
# --------------------------------------------------------------------------
def _draw_ellipses(ax, means2, covs2, colours, gid, level, **style):
    for m, c, colour in zip(means2, covs2, colours):
        width, height, angle = ellipse_geometry(c, level)
        ax.add_patch(Ellipse(m, width, height, angle=angle, fill=False, edgecolor=colour, gid=gid, **style))


def _clusters_panel(ax, X2, labels, em, draws, colours, level):
    ax.scatter(X2[:, 0], X2[:, 1], c=[colours[k] for k in labels], s=10, alpha=0.6, gid="data")
    _draw_ellipses(ax, *em, colours, "em-ellipse", level, lw=2.0)
    for mu2, cov2 in draws:
        _draw_ellipses(ax, mu2, cov2, colours, "posterior-ellipse", level, lw=0.5, alpha=0.25)
    ax.autoscale_view()


def _clusters_1d(ax, x, labels, em, draws, colours, level):
    half = np.sqrt(chi2.ppf(level, df=1))
    jitter = np.random.default_rng(0).uniform(-0.3, 0.3, x.size)
    ax.scatter(x, jitter, c=[colours[k] for k in labels], s=10, alpha=0.6, gid="data")
    mu, var = em
    for k, (m, v) in enumerate(zip(mu, var)):
        y = -0.6 - 0.15 * k
        ax.plot([m - half * np.sqrt(v), m + half * np.sqrt(v)], [y, y], color=colours[k], lw=3,
                gid="em-ellipse", solid_capstyle="butt")
        for mu_s, var_s in draws:
            ax.plot([mu_s[k] - half * np.sqrt(var_s[k]), mu_s[k] + half * np.sqrt(var_s[k])],
                    [y - 0.05, y - 0.05], color=colours[k], lw=0.5, alpha=0.25, gid="posterior-ellipse")
    ax.set_yticks([])


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
    X = _observed(idata)
    _, mu, cov, features = _em_arrays(idata)
    K, d = mu.shape
    labels = hard_labels(idata)
    colours = _component_colours(K)
    sampled = "posterior" in idata.groups() and draws > 0
    post = _posterior_arrays(idata, draws) if sampled else (None, np.empty((0, K, d)), np.empty((0, K, d, d)))
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
        m2 = (mu - centre) @ basis
        c2 = np.einsum("di,kde,ej->kij", basis, cov, basis)
        d2 = [((m - centre) @ basis, np.einsum("di,kde,ej->kij", basis, c, basis)) for m, c in zip(mu_s, cov_s)]
        return (X - centre) @ basis, (m2, c2), d2

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


# --------------------------------------------------------------------------
# 3. Trace and rank, 4. pair: ArviZ with the EM estimate as reference
# --------------------------------------------------------------------------
def _check_vars(var_names) -> list[str]:
    var_names = [var_names] if isinstance(var_names, str) else list(var_names)
    unknown = [v for v in var_names if v not in ("w", "mu", "cov")]
    if unknown:
        raise ValueError(f"var_names must be drawn from 'w', 'mu', 'cov'; got {unknown}.")
    return var_names


def em_reference_lines(idata, var_names, coords=None) -> list[tuple]:
    """``(var, selection, value)`` for every entry of the EM estimate (ArviZ's ``lines``), in C order."""
    est = idata["em_estimate"]
    lines = []
    for var in var_names:
        da = est[var].sel({k: v for k, v in (coords or {}).items() if k in est[var].dims})
        for index in np.ndindex(da.shape):
            sel = {dim: da[dim].values[i].item() for dim, i in zip(da.dims, index)}
            lines.append((var, sel, float(da.values[index])))
    return lines


def plot_trace(idata, var_names=("w", "mu"), *, kind: str = "trace", **kwargs):
    """ArviZ trace (or rank) plot of the relabelled posterior, EM estimate as reference lines.

    ``kind``: ``"trace"``, ``"rank_bars"`` or ``"rank_vlines"``. The EM
    values are vertical lines on the marginal densities (left column) and,
    for ``"trace"``, horizontal lines on the traces.
    """
    _need(idata, "posterior", "em_estimate", hint="sample with gmmflow.sample_posterior first")
    var_names = _check_vars(var_names)
    if kind not in ("trace", "rank_bars", "rank_vlines"):
        raise ValueError(f"kind must be 'trace', 'rank_bars' or 'rank_vlines'; got {kind!r}.")
    lines = em_reference_lines(idata, var_names, kwargs.get("coords"))
    if kind == "trace":
        axes = az.plot_trace(idata, var_names=var_names, kind=kind, compact=False, lines=lines, **kwargs)
    else:  # ArviZ would draw the lines across the rank axes too, where a value has no meaning
        axes = az.plot_trace(idata, var_names=var_names, kind=kind, compact=False, **kwargs)
        for row, (_, _, value) in zip(axes, lines):  # rows follow the variables' C order, as `lines` does
            row[0].axvline(value, color="0.35", gid="em-reference")
    fig = axes.flat[0].figure
    fig.set_size_inches(11, 1.9 * axes.shape[0])
    fig.tight_layout()
    return axes


def plot_pair(idata, var_names=("w", "mu"), *, coords=None, kind: str = "scatter", **kwargs):
    """ArviZ pair plot of the posterior with the EM estimate marked (red crosses)."""
    _need(idata, "posterior", "em_estimate", hint="sample with gmmflow.sample_posterior first")
    var_names = _check_vars(var_names)
    est = idata["em_estimate"]
    reference = {v: (est[v].sel(coords) if coords else est[v]).values for v in var_names}
    kwargs.setdefault("scatter_kwargs", {"alpha": 0.35, "s": 8})
    kwargs.setdefault("reference_values_kwargs", {"color": "C3", "marker": "X", "markersize": 9})
    return az.plot_pair(idata, var_names=var_names, coords=coords, kind=kind,
                        reference_values=reference, **kwargs)


# --------------------------------------------------------------------------
# 5. Forest
# --------------------------------------------------------------------------
def _parameter_label(row) -> str:
    parts = [str(row["component"])] + [str(row[c]) for c in ("feature", "feature2") if pd.notna(row[c])]
    return f"{row['parameter']}[{', '.join(parts)}]"


def plot_forest(idata, *, hdi_prob: float = 0.94, ax=None):
    """Every parameter's posterior HDI with the EM MAP, in posterior sds from the posterior mean.

    Each row is one free parameter of :func:`gmmflow.compare`: the bar is its
    HDI, the dot the posterior mean (0), the cross the EM MAP at
    ``z = (MAP - mean) / sd``. Parameters on any scale share one axis.
    """
    check_comparable(idata)
    table = compare(idata, "parameters", hdi_prob=hdi_prob)
    lo, hi = table.columns[table.columns.str.startswith("hdi_")]
    scale = table["sd"].where(table["sd"] > 0)
    lower, upper = (table[lo] - table["mean"]) / scale, (table[hi] - table["mean"]) / scale
    y = np.arange(len(table))[::-1]
    if ax is None:
        _, ax = plt.subplots(figsize=(6, 0.6 + 0.28 * len(table)))
    ax.hlines(y, lower, upper, color="C0", lw=2, gid="posterior-hdi", label=f"posterior {hdi_prob:.0%} HDI")
    ax.plot(np.zeros_like(y), y, "o", color="C0", ms=4, gid="posterior-mean", label="posterior mean")
    ax.plot(table["z"].values, y, "x", color="C3", ms=7, mew=2, gid="em-map", label="EM MAP")
    ax.axvline(0.0, color="0.7", lw=0.8, zorder=0)
    ax.set_yticks(y, [_parameter_label(r) for _, r in table.iterrows()], fontsize=8)
    ax.set_xlabel("posterior standard deviations from the posterior mean")
    ax.set_title("EM MAP against the posterior")
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.08 - 2.0 / (len(table) + 8)), ncol=3, fontsize=8)
    return ax


# --------------------------------------------------------------------------
# 6. Assignments
# --------------------------------------------------------------------------
def _plane(X: np.ndarray):
    """2-D view of the data for colouring: the data itself, or its first principal components."""
    if X.shape[1] <= 2:
        return X, None
    centre, basis = principal_axes(X)
    return (X - centre) @ basis, ("principal component 1", "principal component 2")


def plot_assignments(idata, *, axes=None):
    """EM responsibilities against posterior assignment probabilities, and assignment uncertainty.

    Left: one point per (observation, component), EM responsibility against
    the posterior probability, on the identity line when they agree. Right:
    the data coloured by ``1 - max_k P(z_i = k | data)`` (posterior).
    """
    check_comparable(idata)
    em = idata["em_estimate"]["responsibilities"].values
    post = idata["posterior_assignment"]["posterior_assignment"].values
    X = _observed(idata)
    features = [str(f) for f in idata["observed_data"]["feature"].values]
    if axes is None:
        _, axes = plt.subplots(1, 2, figsize=(11, 4.5))
    left, right = axes
    for k in range(em.shape[1]):
        left.scatter(em[:, k], post[:, k], s=10, alpha=0.6, color=f"C{k % 10}", label=f"component {k}",
                     gid=f"assignment-{k}")
    left.plot([0, 1], [0, 1], color="0.5", lw=0.8, gid="identity")
    left.set_xlabel("EM responsibility")
    left.set_ylabel("posterior assignment probability")
    left.set_title("Assignments: EM against posterior")
    left.legend(fontsize=8)
    uncertainty = 1.0 - post.max(axis=1)
    plane, names = _plane(X)
    if plane.shape[1] == 1:
        plane = np.column_stack([plane[:, 0], np.random.default_rng(0).uniform(-0.3, 0.3, len(plane))])
        names = (features[0], "")
        right.set_yticks([])
    names = names or tuple(features)
    points = right.scatter(plane[:, 0], plane[:, 1], c=uncertainty, cmap="viridis", s=12,
                           vmin=0.0, vmax=max(float(uncertainty.max()), 1e-12), gid="uncertainty")
    right.figure.colorbar(points, ax=right, label="1 - max posterior probability")
    right.set_xlabel(names[0])
    right.set_ylabel(names[1])
    right.set_title("Assignment uncertainty (posterior)")
    return np.asarray(axes)


# --------------------------------------------------------------------------
# 7. Density
# --------------------------------------------------------------------------
def _grid(x: np.ndarray, size: int) -> np.ndarray:
    lo, hi = x.min(), x.max()
    pad = 0.1 * (hi - lo) if hi > lo else 1.0
    return np.linspace(lo - pad, hi + pad, size)


def _density_1d(ax, x, j, em, post, band, grid_size, name):
    """Histogram of feature j with the EM marginal density and the posterior band."""
    w, mu, cov = em
    grid = _grid(x, grid_size)
    marginal = lambda w_, mu_, cov_: _mixture_density(  # noqa: E731
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


def plot_density(idata, *, band: float = 0.94, draws: int = 200, grid_size: int = 200, ax=None):
    """Data density against the EM plug-in density and the posterior predictive band.

    d = 1: histogram, EM density, pointwise ``band`` interval and mean of the
    density over (up to ``draws``) posterior draws. d = 2: EM density
    contours (solid) and posterior mean density contours (dashed) over the
    data. d > 2: one panel per feature with its marginal densities.
    """
    X = _observed(idata)
    w, mu, cov, features = _em_arrays(idata)
    d = X.shape[1]
    post = _posterior_arrays(idata, draws) if "posterior" in idata.groups() else None
    if d == 2:
        ax = ax if ax is not None else plt.subplots(figsize=(6, 5))[1]
        gx, gy = _grid(X[:, 0], grid_size // 2), _grid(X[:, 1], grid_size // 2)
        points = np.column_stack([a.ravel() for a in np.meshgrid(gx, gy)])
        ax.scatter(X[:, 0], X[:, 1], s=6, color="0.5", alpha=0.6, gid="data")
        em = ax.contour(gx, gy, _mixture_density(points, w, mu, cov).reshape(gy.size, gx.size),
                        levels=8, colors="C3", linewidths=1.5)
        em.set_gid("em-density")
        if post is not None:
            mean_density = np.mean([_mixture_density(points, *p) for p in zip(*post)], axis=0)
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


# --------------------------------------------------------------------------
# 8. Model selection
# --------------------------------------------------------------------------
def plot_selection(table: pd.DataFrame, *, axes=None):
    """BIC and ICL (and ELPD-LOO with its se, when sampled) against K, per covariance type.

    The choice of each criterion (``best_*`` columns) is ringed.
    """
    need = {"covariance_type", "k", "status", "bic", "icl"}
    if not isinstance(table, pd.DataFrame) or not need <= set(table.columns):
        raise ValueError("plot_selection needs the table returned by gmmflow.select_components.")
    ok = table[table["status"] == "ok"].sort_values("k")
    has_loo = "elpd_loo" in ok and ok["elpd_loo"].notna().any()
    if axes is None:
        _, axes = plt.subplots(1, 2 if has_loo else 1, figsize=(11 if has_loo else 6, 4), squeeze=False)
        axes = axes[0]
    axes = np.atleast_1d(axes)
    left = axes[0]
    for i, (ctype, rows) in enumerate(ok.groupby("covariance_type", sort=False)):
        left.plot(rows["k"], rows["bic"], "o-", color=f"C{i}", label=f"BIC ({ctype})", gid=f"bic-{ctype}")
        left.plot(rows["k"], rows["icl"], "s--", color=f"C{i}", alpha=0.7, label=f"ICL ({ctype})",
                  gid=f"icl-{ctype}")
        if has_loo:
            axes[1].errorbar(rows["k"], rows["elpd_loo"], yerr=rows["elpd_loo_se"], fmt="o-", color=f"C{i}",
                             capsize=3, label=f"ELPD-LOO ({ctype})", gid=f"loo-{ctype}")
    for criterion, panel, column in (("bic", left, "bic"), ("icl", left, "icl"), ("loo", axes[-1], "elpd_loo")):
        flag = f"best_{criterion}"
        if flag in ok and ok[flag].any() and (criterion != "loo" or has_loo):
            best = ok[ok[flag]]
            panel.plot(best["k"], best[column], "o", ms=14, mfc="none", mec="k", gid=f"best-{criterion}")
    left.set_xlabel("number of components K")
    left.set_ylabel("criterion (lower is better)")
    left.set_title("BIC and ICL")
    left.legend(fontsize=8)
    if has_loo:
        axes[1].set_xlabel("number of components K")
        axes[1].set_ylabel("ELPD-LOO (higher is better)")
        axes[1].set_title("PSIS-LOO")
        axes[1].legend(fontsize=8)
    for panel in axes:
        panel.xaxis.get_major_locator().set_params(integer=True)
    return axes


# --------------------------------------------------------------------------
# 9. Posterior predictive check
# --------------------------------------------------------------------------
def plot_ppc(idata, *, num_pp_samples: int = 100, seed: int = 0, **kwargs):
    """ArviZ posterior predictive check, one panel per feature (observations pooled).

    At most ``num_pp_samples`` replicate data sets (no more than there are draws).
    """
    _need(idata, "posterior_predictive", "observed_data",
          hint="sample with gmmflow.sample_posterior(..., posterior_predictive=True)")
    pp = idata["posterior_predictive"]
    num_pp_samples = min(num_pp_samples, pp.sizes["chain"] * pp.sizes["draw"])
    return az.plot_ppc(idata, flatten=["obs_id"], num_pp_samples=num_pp_samples, random_seed=seed, **kwargs)


PLOTS = {
    "em_convergence": plot_em_convergence,
    "clusters": plot_clusters,
    "trace": plot_trace,
    "rank": lambda idata: plot_trace(idata, kind="rank_bars"),
    "pair": plot_pair,
    "forest": plot_forest,
    "assignments": plot_assignments,
    "density": plot_density,
    "ppc": plot_ppc,
}

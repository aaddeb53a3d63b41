"""Every plot on 1-D, 2-D and 4-D results draws what it claims (asserted on the artists)."""

import re

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
from matplotlib.collections import LineCollection  # noqa: E402
from matplotlib.patches import Ellipse  # noqa: E402
from scipy import stats  # noqa: E402

import gmmflow  # noqa: E402
from gmmflow import plots  # noqa: E402
from conftest import mixture_data  # noqa: E402

DIMS = [1, 2, 4]


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


def _axes(result):
    return [a for a in np.ravel(result) if a is not None and a.get_visible()]


def _gid(ax, gid):
    return [a for a in ax.get_children() if a.get_gid() == gid]


def test_ellipse_geometry_hand_derived():
    q = stats.chi2.ppf(0.95, 2)
    width, height, angle = plots.ellipse_geometry(np.diag([4.0, 1.0]))
    assert (width, height) == pytest.approx((2 * np.sqrt(4 * q), 2 * np.sqrt(q)))
    assert angle % 180 == pytest.approx(0.0)
    # rotated by 45 degrees: eigenvalues 3 and 1 of [[2, 1], [1, 2]]
    width, height, angle = plots.ellipse_geometry(np.array([[2.0, 1.0], [1.0, 2.0]]))
    assert (width, height) == pytest.approx((2 * np.sqrt(3 * q), 2 * np.sqrt(q)))
    assert angle % 180 == pytest.approx(45.0)


def test_principal_axes_match_eigenvectors_of_the_covariance():
    X = mixture_data(seed=4, d=4, K=2)
    _, basis = plots.principal_axes(X)
    eigval, eigvec = np.linalg.eigh(np.cov(X.T))
    for j in range(2):
        assert abs(basis[:, j] @ eigvec[:, -1 - j]) == pytest.approx(1.0, abs=1e-8)


@pytest.mark.parametrize("d", DIMS)
def test_em_convergence_one_line_per_restart_at_the_gap(posteriors, d):
    idata = posteriors[d]
    ax = plots.plot_em_convergence(idata)
    trace = idata.em_trace.objective.values
    target = np.nanmax(idata.em_restarts.objective.values)
    lines = [line for line in ax.get_lines() if str(line.get_gid()).startswith("restart-")]
    assert len(lines) == trace.shape[0]
    for r, line in enumerate(lines):
        gap = target - trace[r][np.isfinite(trace[r])]
        drawn = np.asarray(line.get_ydata())
        assert np.allclose(drawn[gap > 0], gap[gap > 0])
    assert ax.get_yscale() == "log"


@pytest.mark.parametrize("d", DIMS)
def test_clusters_draw_one_em_ellipse_per_component_per_panel(posteriors, d):
    idata = posteriors[d]
    K = idata.posterior.sizes["component"]
    result = plots.plot_clusters(idata, draws=5)
    panels = _axes(result)
    assert len(panels) == {1: 1, 2: 1, 4: 6}[d]  # 4-D: the 6 feature pairs
    for ax in panels:
        assert len(_gid(ax, "em-ellipse")) == K
        assert len(_gid(ax, "posterior-ellipse")) == 5 * K
        colours = {tuple(np.round(c, 3)) for c in _gid(ax, "data")[0].get_facecolors()}
        assert len(colours) == K  # points coloured by assignment


def test_clusters_2d_ellipses_sit_at_the_em_estimate(posteriors):
    idata = posteriors[2]
    ax = plots.plot_clusters(idata, draws=0)
    est = idata.em_estimate
    for ellipse, mu, cov in zip(_gid(ax, "em-ellipse"), est.mu.values, est.cov.values):
        assert isinstance(ellipse, Ellipse)
        assert ellipse.center == pytest.approx(tuple(mu))
        width, height, _ = plots.ellipse_geometry(cov)
        assert (ellipse.width, ellipse.height) == pytest.approx((width, height))


def test_clusters_level_sets_the_ellipse_size(posteriors):
    idata = posteriors[2]
    small = _gid(plots.plot_clusters(idata, draws=0, level=0.5), "em-ellipse")[0]
    large = _gid(plots.plot_clusters(idata, draws=0, level=0.99), "em-ellipse")[0]
    ratio = np.sqrt(stats.chi2.ppf(0.99, 2) / stats.chi2.ppf(0.5, 2))
    assert large.width / small.width == pytest.approx(ratio)


def test_clusters_pca_projects_the_covariances(posteriors):
    idata = posteriors[4]
    ax = plots.plot_clusters(idata, draws=0, projection="pca")
    centre, basis = plots.principal_axes(idata.observed_data.x.values)
    est = idata.em_estimate
    for ellipse, mu, cov in zip(_gid(ax, "em-ellipse"), est.mu.values, est.cov.values):
        assert ellipse.center == pytest.approx(tuple((mu - centre) @ basis))
        width, height, _ = plots.ellipse_geometry(basis.T @ cov @ basis)
        assert (ellipse.width, ellipse.height) == pytest.approx((width, height))


def test_clusters_works_on_an_em_only_result():
    em = gmmflow.fit_em(gmmflow.GMM(3), mixture_data(n_per=30), seed=0)
    ax = plots.plot_clusters(em)
    assert len(_gid(ax, "em-ellipse")) == 3 and not _gid(ax, "posterior-ellipse")


@pytest.mark.parametrize("d", DIMS)
def test_trace_reference_lines_at_em_values(posteriors, d):
    idata = posteriors[d]
    axes = plots.plot_trace(idata, var_names=["w", "mu"])
    K = idata.posterior.sizes["component"]
    assert axes.shape == (K + K * d, 2)
    expected = np.concatenate([idata.em_estimate.w.values, idata.em_estimate.mu.values.ravel()])
    for row, value in zip(axes, expected):
        vlines = [c for c in row[0].collections if isinstance(c, LineCollection)]
        xs = np.concatenate([[seg[0][0] for seg in c.get_segments()] for c in vlines])
        assert np.any(np.isclose(xs, value))
        hlines = [c for c in row[1].collections if isinstance(c, LineCollection)]
        ys = np.concatenate([[seg[0][1] for seg in c.get_segments()] for c in hlines])
        assert np.any(np.isclose(ys, value))


@pytest.mark.parametrize("d", [1, 2])
def test_rank_plot_reference_lines_on_the_marginals_only(posteriors, d):
    idata = posteriors[d]
    axes = plots.plot_trace(idata, var_names=["w", "mu"], kind="rank_bars")
    expected = np.concatenate([idata.em_estimate.w.values, idata.em_estimate.mu.values.ravel()])
    for row, value in zip(axes, expected):
        assert [line.get_xdata()[0] for line in _gid(row[0], "em-reference")] == [value]
        assert not _gid(row[1], "em-reference")
        low, high = row[1].get_ylim()
        assert high - low < 2 * idata.posterior.sizes["chain"]  # rank axis not stretched by a value


def test_rank_plot_with_coords_keeps_lines_aligned(posteriors):
    idata = posteriors[2]
    axes = plots.plot_trace(idata, var_names=["mu"], kind="rank_bars", coords={"component": [1]})
    expected = idata.em_estimate.mu.values[1]
    assert axes.shape[0] == 2
    for row, value in zip(axes, expected):
        assert [line.get_xdata()[0] for line in _gid(row[0], "em-reference")] == [value]


@pytest.mark.parametrize("d", DIMS)
def test_pair_marks_the_em_estimate(posteriors, d):
    idata = posteriors[d]
    # 1-D: the means of all components; else: the means of component 0 (ArviZ needs >= 2 variables)
    coords = None if d == 1 else {"component": [0]}
    axes = plots.plot_pair(idata, var_names=["mu"], coords=coords)
    mu = idata.em_estimate.mu.values[:, 0] if d == 1 else idata.em_estimate.mu.values[0]
    panels = _axes(axes)
    marks = {(round(float(line.get_xdata()[0]), 9), round(float(line.get_ydata()[0]), 9))
             for ax in panels for line in ax.get_lines() if line.get_marker() == "X"}
    pairs = {(round(mu[j], 9), round(mu[i], 9)) for i in range(1, mu.size) for j in range(i)}
    assert marks == pairs


@pytest.mark.parametrize("d", DIMS)
def test_forest_one_row_per_parameter_em_at_z(posteriors, d):
    idata = posteriors[d]
    ax = plots.plot_forest(idata)
    table = gmmflow.compare(idata)
    em = _gid(ax, "em-map")[0]
    assert np.allclose(em.get_xdata(), table["z"].values)
    assert len(ax.get_yticklabels()) == len(table)
    hdi = _gid(ax, "posterior-hdi")[0]
    lower = (table["hdi_3%"] - table["mean"]) / table["sd"]
    assert np.allclose([seg[0][0] for seg in hdi.get_segments()], lower)


@pytest.mark.parametrize("d", DIMS)
def test_assignments_em_against_posterior(posteriors, d):
    idata = posteriors[d]
    left, right = plots.plot_assignments(idata)
    em = idata.em_estimate.responsibilities.values
    post = idata.posterior_assignment.posterior_assignment.values
    for k in range(em.shape[1]):
        offsets = _gid(left, f"assignment-{k}")[0].get_offsets()
        assert np.allclose(offsets, np.column_stack([em[:, k], post[:, k]]))
    colours = _gid(right, "uncertainty")[0].get_array()
    assert np.allclose(colours, 1 - post.max(1))


def _marginal_density(grid, idata, j):
    est = idata.em_estimate
    return sum(w * stats.norm(m[j], np.sqrt(c[j, j])).pdf(grid)
               for w, m, c in zip(est.w.values, est.mu.values, est.cov.values))


@pytest.mark.parametrize("d", [1, 4])
def test_density_1d_panels_em_curve_and_band(posteriors, d):
    idata = posteriors[d]
    panels = _axes(plots.plot_density(idata, draws=20))
    assert len(panels) == d
    for j, ax in enumerate(panels):
        line = _gid(ax, "em-density")[0]
        assert np.allclose(line.get_ydata(), _marginal_density(line.get_xdata(), idata, j), rtol=1e-10)
        assert _gid(ax, "posterior-band") and _gid(ax, "posterior-density")


def test_density_2d_contours_of_the_em_density(posteriors):
    idata = posteriors[2]
    ax = plots.plot_density(idata, draws=10)
    em = [c for c in ax.get_children() if c.get_gid() == "em-density"]
    assert len(em) == 1 and len(em[0].levels) >= 5
    est = idata.em_estimate
    peak = max(w * stats.multivariate_normal(m, c).pdf(m) for w, m, c in zip(est.w.values, est.mu.values,
                                                                              est.cov.values))
    assert em[0].levels.max() < peak * 1.05  # contour levels span the EM density's range
    assert [c for c in ax.get_children() if c.get_gid() == "posterior-density"]


def test_selection_plot_lines_are_the_table():
    table = pd.DataFrame({
        "covariance_type": ["full"] * 3, "k": [1, 2, 3], "status": ["ok"] * 3,
        "bic": [30.0, 10.0, 20.0], "icl": [31.0, 12.0, 25.0], "elpd_loo": [-20.0, -5.0, -6.0],
        "elpd_loo_se": [1.0, 1.0, 1.5], "best_bic": [False, True, False], "best_icl": [False, True, False],
        "best_loo": [False, True, False]})
    axes = plots.plot_selection(table)
    assert len(axes) == 2
    assert np.allclose(_gid(axes[0], "bic-full")[0].get_ydata(), table["bic"])
    assert np.allclose(_gid(axes[0], "icl-full")[0].get_ydata(), table["icl"])
    best = _gid(axes[0], "best-bic")[0]
    assert best.get_xdata()[0] == 2 and best.get_ydata()[0] == 10.0
    loo_lines = [line for line in axes[1].get_lines() if np.allclose(line.get_ydata(), table["elpd_loo"])]
    assert loo_lines


def test_selection_plot_without_loo_has_one_panel():
    table = pd.DataFrame({"covariance_type": ["diag", "diag"], "k": [1, 2], "status": ["ok", "failed"],
                          "bic": [5.0, np.nan], "icl": [5.0, np.nan]})
    axes = plots.plot_selection(table)
    assert len(axes) == 1 and len(_gid(axes[0], "bic-diag")[0].get_xdata()) == 1  # failed row not drawn


@pytest.mark.parametrize("d", DIMS)
def test_ppc_one_panel_per_feature(posteriors, d):
    axes = _axes(plots.plot_ppc(posteriors[d], num_pp_samples=10))
    assert len(axes) == d
    for ax in axes:
        assert len(ax.get_lines()) >= 10 + 2  # the replicates, observed, predictive mean


@pytest.mark.parametrize("plot, message", [
    (plots.plot_trace, "no posterior group(s); sample with gmmflow.sample_posterior first"),
    (plots.plot_ppc, "no posterior_predictive group(s); sample with gmmflow.sample_posterior(..., "
                     "posterior_predictive=True)"),
    (plots.plot_forest, "This result has no posterior group(s)"),
])
def test_plots_needing_a_posterior_say_so(plot, message):
    em = gmmflow.fit_em(gmmflow.GMM(2), mixture_data(n_per=30, K=2), seed=0)
    with pytest.raises(ValueError, match=re.escape(message)):
        plot(em)


def test_bad_plot_arguments(posteriors):
    with pytest.raises(ValueError, match="projection must be 'auto', 'pairs' or 'pca'; got 'tsne'"):
        plots.plot_clusters(posteriors[2], projection="tsne")
    with pytest.raises(ValueError, match="var_names must be drawn from 'w', 'mu', 'cov'; got \\['sigma'\\]"):
        plots.plot_trace(posteriors[2], var_names=["sigma"])
    with pytest.raises(ValueError, match="plot_selection needs the table returned by gmmflow.select_components"):
        plots.plot_selection(pd.DataFrame({"k": [1]}))
    _, ax = plt.subplots()
    with pytest.raises(ValueError, match="ax is for single-panel plots"):
        plots.plot_clusters(posteriors[4], ax=ax)


@pytest.mark.parametrize("n_scalars, width", [(2, 3.6), (6, 14.0), (13, 14.4), (25, 28.8)])
def test_pair_figure_size_grows_with_panels_but_stays_bounded(n_scalars, width):
    # 2.8 in per panel (n_scalars - 1 panels a side) up to 14 in, then 1.2 in per panel; height 3/4
    from gmmflow.plots.arviz_views import _pair_figsize

    assert _pair_figsize(n_scalars) == pytest.approx((width, 0.75 * width))


def test_pair_default_figure_is_the_bounded_size(posteriors):
    idata = posteriors[2]
    n_scalars = idata.em_estimate.w.size + idata.em_estimate.mu.size
    width = min(14.0, 2.8 * (n_scalars - 1) + 0.8)  # ArviZ's own default is far larger (37 x 28 in at 6)
    fig = _axes(plots.plot_pair(idata))[0].figure
    assert tuple(fig.get_size_inches()) == pytest.approx((width, 0.75 * width))

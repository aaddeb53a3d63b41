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
code and tests can find them. :func:`registered` lists every plot with
the groups it needs and its caption.
"""

from gmmflow.plots.arviz_views import em_reference_lines, plot_pair, plot_ppc, plot_trace
from gmmflow.plots.assignments import plot_assignments
from gmmflow.plots.clusters import plot_clusters
from gmmflow.plots.data_access import hard_labels
from gmmflow.plots.density import plot_density
from gmmflow.plots.em_convergence import plot_em_convergence
from gmmflow.plots.forest import plot_forest
from gmmflow.plots.geometry import LEVEL, ellipse_geometry, feature_pairs, principal_axes
from gmmflow.plots.modes_plot import plot_modes
from gmmflow.plots.rank_plots import plot_calibration
from gmmflow.plots.registry import PlotSpec, plots_for, registered
from gmmflow.plots.selection_plot import plot_selection

__all__ = [
    "LEVEL", "PlotSpec", "ellipse_geometry", "em_reference_lines", "feature_pairs", "hard_labels",
    "plot_assignments", "plot_calibration", "plot_clusters", "plot_density", "plot_em_convergence", "plot_forest",
    "plot_modes", "plot_pair", "plot_ppc", "plot_selection", "plot_trace", "plots_for", "principal_axes",
    "registered",
]

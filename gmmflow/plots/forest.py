"""Forest: every parameter's posterior HDI with the EM MAP, in posterior sds.

With an ``em_bootstrap`` group the EM estimate's bootstrap percentile interval
is drawn under each HDI, on the same axis: the frequentist interval beside
the Bayesian one. Drawn here rather than by ArviZ, whose forest puts
parameters of different scales on one raw axis.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np

from gmmflow import defaults
from gmmflow import schema as S
from gmmflow.plots.registry import register
from gmmflow.workflows.compare import check_comparable, compare, parameter_label


@register("forest", order=70, needs=(S.POSTERIOR,),
          caption="Every parameter's 94% posterior interval (bar) and mean (dot) with EM's MAP (cross), in posterior "
                  "sds from the mean so that all share one axis. Look for crosses near 0. Variances' crosses sit "
                  "left of 0 (the mode of a right-skewed posterior lies below its mean); a cross outside its bar is "
                  "a MAP outside the interval. With a bootstrap, the thin bar below is the EM estimate's "
                  "bootstrap interval.")
def plot_forest(idata, *, hdi_prob: float = defaults.INTERVAL_PROB, ax=None):
    """Every parameter's posterior HDI with the EM MAP, in posterior sds from the posterior mean.

    Each row is one free parameter of :func:`gmmflow.compare`: the bar is its
    HDI, the dot the posterior mean (0), the cross the EM MAP at
    ``z = (MAP - mean) / sd``; after :func:`gmmflow.bootstrap`, a second, thin
    bar under it is the EM estimate's bootstrap percentile interval of the same
    mass. Parameters on any scale share one axis.
    """
    check_comparable(idata, "parameters")
    table = compare(idata, "parameters", hdi_prob=hdi_prob)
    scale = table["sd"].where(table["sd"] > 0)

    def standardised(prefix):
        lo, hi = table.columns[table.columns.str.startswith(prefix) & table.columns.str.endswith("%")]
        return (table[lo] - table["mean"]) / scale, (table[hi] - table["mean"]) / scale

    lower, upper = standardised("hdi_")
    y = np.arange(len(table))[::-1]
    if ax is None:
        _, ax = plt.subplots(figsize=(6, 0.6 + 0.28 * len(table)))
    ax.hlines(y, lower, upper, color="C0", lw=2, gid="posterior-hdi", label=f"posterior {hdi_prob:.0%} HDI")
    if "boot_sd" in table:
        boot_lower, boot_upper = standardised("boot_")
        ax.hlines(y - 0.25, boot_lower, boot_upper, color="C2", lw=1.2, gid="em-bootstrap-interval",
                  label=f"EM bootstrap {hdi_prob:.0%} interval")
    ax.plot(np.zeros_like(y), y, "o", color="C0", ms=4, gid="posterior-mean", label="posterior mean")
    ax.plot(table["z"].values, y, "x", color="C3", ms=7, mew=2, gid="em-map", label="EM MAP")
    ax.axvline(0.0, color="0.7", lw=0.8, zorder=0)
    ax.set_yticks(y, [parameter_label(r) for _, r in table.iterrows()], fontsize=8)
    ax.set_xlabel("posterior standard deviations from the posterior mean")
    ax.set_title("EM MAP against the posterior")
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.08 - 2.0 / (len(table) + 8)), ncol=2, fontsize=8)
    return ax

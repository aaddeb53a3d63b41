"""Forest: every parameter's posterior HDI with the EM MAP, in posterior sds.

Drawn here rather than by ArviZ, whose forest puts parameters of different
scales on one raw axis.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from gmmflow import defaults
from gmmflow import schema as S
from gmmflow.plots.registry import register
from gmmflow.workflows.compare import check_comparable, compare


def _parameter_label(row) -> str:
    parts = [str(row[S.COMPONENT])] + [str(row[c]) for c in (S.FEATURE, S.FEATURE2) if pd.notna(row[c])]
    return f"{row['parameter']}[{', '.join(parts)}]"


@register("forest", order=70, needs=(S.POSTERIOR,),
          caption="Posterior HDI of every parameter with the EM MAP, in posterior sds: crosses outside their "
                  "bar are MAPs outside the interval.")
def plot_forest(idata, *, hdi_prob: float = defaults.INTERVAL_PROB, ax=None):
    """Every parameter's posterior HDI with the EM MAP, in posterior sds from the posterior mean.

    Each row is one free parameter of :func:`gmmflow.compare`: the bar is its
    HDI, the dot the posterior mean (0), the cross the EM MAP at
    ``z = (MAP - mean) / sd``. Parameters on any scale share one axis.
    """
    check_comparable(idata, "parameters")
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

"""Choice of the number of components: BIC / ICL and ELPD-LOO against K."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from gmmflow.plots.registry import register


@register("selection", order=100, reads_table=True,
          caption="BIC and ICL (left, lower is better) and ELPD-LOO with its standard error (right, higher is "
                  "better) against K; each criterion's choice is ringed. Look for a clear minimum (maximum for "
                  "ELPD-LOO). A curve that flattens after some K means more components add little: the simplest K "
                  "near the best is the safer choice.")
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

"""EM convergence: the objective gap to the best restart, per iteration."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np

from gmmflow import schema as S
from gmmflow.plots.registry import register


@register("em_convergence", order=10, needs=(S.EM_TRACE, S.EM_ESTIMATE),
          caption="EM convergence: for every restart, how far its objective lies below the best restart's final "
                  "value, iteration by iteration (log scale; the chosen restart thick and red). Look for lines that "
                  "fall and end: that restart reached the best optimum. A line that levels off above the others "
                  "stopped at a worse optimum; if many do, keep n_init high.")
def plot_em_convergence(idata, *, ax=None):
    """Objective gap to the best restart's final value, per iteration, for every restart.

    The gap ``best - objective`` is drawn on a log scale (zero gaps are not
    drawn); the chosen restart is drawn thicker.
    """
    S.require_groups(idata, S.EM_TRACE, S.EM_ESTIMATE, hint="fit with gmmflow.fit_em first")
    trace = idata[S.EM_TRACE]["objective"].values  # (restart, iteration)
    best = int(idata[S.EM_ESTIMATE]["best_restart"])
    target = np.nanmax(idata[S.EM_RESTARTS]["objective"].values)
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

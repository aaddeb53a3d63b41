"""Missing values on Palmer penguins: marginalizing against complete-case analysis.

    PYTHONPATH=. python docs/examples/missing_penguins.py [docs/images/penguins_missing.png]

The four measurements of data/penguins.csv (342 penguins: the 2 rows with no
measurement at all are dropped, as fit_em asks), a 3-component full-covariance
MAP fit. Then 20% of the cells are deleted completely at random (seed 0) and the
model is fitted again two ways: on every row's observed values
(``missing="marginalize"``) and on the complete rows only. Printed: how far each
estimate is from the full-data one (means and covariances, components matched,
each feature scaled by its sd); drawn: the three fits' 95% ellipses on bill
length and depth.
"""

from __future__ import annotations

import sys
from pathlib import Path

import matplotlib
import numpy as np

import gmmflow

ROOT = Path(__file__).resolve().parents[2]
FEATURES = ["bill_length_mm", "bill_depth_mm", "flipper_length_mm", "body_mass_g"]


def estimate(idata):
    est = idata.em_estimate
    return est.w.values, est.mu.values, est.cov.values


def distance(fit, reference, scale):
    """sqrt of the summed squared differences of means and covariances (features in sd units),
    each fitted component matched to the nearest reference mean."""
    from scipy.optimize import linear_sum_assignment

    (_, mu, cov), (_, mu0, cov0) = fit, reference
    cost = (((mu[:, None] - mu0[None]) / scale) ** 2).sum(axis=-1)
    rows, cols = linear_sum_assignment(cost)
    S = np.outer(scale, scale)
    return float(np.sqrt(cost[rows, cols].sum() + (((cov[rows] - cov0[cols]) / S) ** 2).sum()))


def main(out: Path) -> None:
    X = gmmflow.read_csv(ROOT / "data" / "penguins.csv", columns=FEATURES, missing=True)
    X = X.dropna("obs_id", how="all")  # 2 penguins were not measured at all
    rng = np.random.default_rng(0)
    Xm = X.where(rng.random(X.shape) >= 0.2)  # 20% of the cells deleted completely at random
    Xm = Xm.dropna("obs_id", how="all")
    model = gmmflow.GMM(3)
    full = gmmflow.fit_em(model, X, seed=0)
    marginal = gmmflow.fit_em(model, Xm, seed=0, missing="marginalize")
    complete = gmmflow.fit_em(model, Xm.dropna("obs_id"), seed=0)
    scale = X.std("obs_id").values
    fits = {"all values (reference)": full, "20% deleted, missing='marginalize'": marginal,
            "20% deleted, complete rows only": complete}
    n_complete = int(Xm.dropna("obs_id").sizes["obs_id"])
    for name, idata in fits.items():
        print(f"{name:40s} distance to the reference {distance(estimate(idata), estimate(full), scale):.3f}")
    print(f"{int(np.isnan(Xm.values).sum())} of {Xm.size} cells missing; {n_complete} of {Xm.sizes['obs_id']} rows "
          "complete")

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Ellipse

    fig, ax = plt.subplots(figsize=(6.4, 5))
    values = Xm.values[:, :2]
    shown = ~np.isnan(values).any(axis=1)
    ax.scatter(*values[shown].T, s=8, c="0.6", label="penguins (both values observed)")
    styles = [("black", "-", 2.5), ("tab:blue", "-", 1.5), ("tab:orange", "--", 1.5)]
    for (name, idata), (colour, line, width) in zip(fits.items(), styles):
        _, mu, cov = estimate(idata)
        for k in range(mu.shape[0]):
            w, h, angle = gmmflow.plots.ellipse_geometry(cov[k][:2, :2])
            ax.add_patch(Ellipse(mu[k, :2], w, h, angle=angle, fill=False, color=colour, ls=line, lw=width,
                                 label=name if k == 0 else None))
    ax.set_xlabel("bill length (mm)")
    ax.set_ylabel("bill depth (mm)")
    ax.set_title("Palmer penguins, K = 3: 95% ellipses")
    ax.legend(fontsize=8, loc="lower left")
    fig.tight_layout()
    fig.savefig(out, dpi=90)
    print(f"wrote {out}")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "docs" / "images" / "penguins_missing.png")

"""Simulation-based calibration of the samplers at the issue's size. Run by hand.

For each covariance type: ``gmmflow.calibrate`` of K = 2, d = 2, n_obs = 50
over ``--n-sims`` simulations (the issue asks for 500) with ``--sampler``
(``gibbs``, or a NUTS backend: ``nutpie``, ``pymc``, ``auto``), ranks among
99 draws. Prints every quantity's p-values (ECDF band test and chi-square),
whether all pass at 0.001, the share of simulations whose posterior failed a
sampling check, and the wall time; saves the result (``calibration-<type>.nc``)
and the rank plots (``calibration-<type>.png``) to ``--out``.

Baseline, measured in the same run: one ``sample_posterior`` call on one
simulated data set with the same settings; the wall time per simulation is
printed as a ratio to it (the cost of the simulation, ranking and tests on
top of the sampling), with the machine's load average (timings move with it).

Run:  python bench/calibration.py [--sampler gibbs] [--n-sims 500] [--types full,tied,diag,spherical]
                                  [--draws 500] [--tune 200] [--chains 2] [--out bench-calibration]
"""

import argparse
import os
import time
import warnings
from pathlib import Path

import numpy as np

import gmmflow

SCALES = {"full": [[1.0, 0.0], [0.0, 1.0]], "tied": [[1.0, 0.0], [0.0, 1.0]], "diag": [1.0, 1.0],
          "spherical": 1.0}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sampler", default="gibbs")
    parser.add_argument("--n-sims", type=int, default=500)
    parser.add_argument("--types", default="full,tied,diag,spherical")
    parser.add_argument("--n-obs", type=int, default=50)
    parser.add_argument("--draws", type=int, default=500)
    parser.add_argument("--tune", type=int, default=200)
    parser.add_argument("--chains", type=int, default=2)
    parser.add_argument("--seed", type=int, default=500)
    parser.add_argument("--out", default="bench-calibration")
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(exist_ok=True)
    settings = {"sampler": args.sampler, "draws": args.draws, "tune": args.tune, "chains": args.chains}
    warnings.simplefilter("ignore", gmmflow.SamplingWarning)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    for t in args.types.split(","):
        model = gmmflow.GMM(2, t, prior=gmmflow.Prior(mean=[0.0, 0.0], scale=SCALES[t]))
        X = gmmflow.simulate(model, args.n_obs, seed=args.seed)["x"].values
        start = time.perf_counter()
        gmmflow.sample_posterior(model, X, seed=args.seed, progressbar=False, **settings)
        baseline = time.perf_counter() - start
        start = time.perf_counter()
        cal = gmmflow.calibrate(model, args.n_obs, args.n_sims, seed=args.seed, **settings)
        wall = time.perf_counter() - start
        group = cal.calibration
        p = group["p_value"].to_series()
        p2 = group["p_value_chi2"].to_series()
        unhealthy = float(np.mean([s != "ok" and s != "warnings: chains" for s in group["sampling_status"].values]))
        print(f"\n== {t}: {args.n_sims} simulations, {args.sampler}, load average {os.getloadavg()[0]:.1f}")
        for name in p.index:
            print(f"  {name:22s} p(ECDF) {p[name]:.4f}   p(chi2) {p2[name]:.4f}")
        print(f"  all pass at 0.001: {bool((p >= 0.001).all())}; smallest p {p.min():.4g}")
        print(f"  posteriors failing a check other than the chain count: {unhealthy:.1%}")
        print(f"  wall {wall:.1f} s = {wall / args.n_sims:.2f} s per simulation = "
              f"{wall / args.n_sims / baseline:.2f} x one sample_posterior ({baseline:.2f} s, same run)")
        gmmflow.save(cal, out / f"calibration-{t}.nc", overwrite=True)
        axes = gmmflow.plots.plot_calibration(cal)
        axes.flat[0].figure.savefig(out / f"calibration-{t}.png", dpi=90, bbox_inches="tight")
        plt.close("all")


if __name__ == "__main__":
    main()

"""NUTS on Old Faithful (standardised, K=2, full): gmmflow vs a naive PyMC mixture.

4 chains x 1000 draws after 1000 tuning steps. Prints wall time with a cold
compile cache (fresh PyTensor compiledir and numba cache) and warm, the
minimum bulk ESS, ESS per second, max r_hat and divergences, for gmmflow
(``sample_posterior``, default sampler) and for the naive baseline: a
``pm.Mixture`` of ``pm.MvNormal`` with ``LKJCholeskyCov`` priors and PyMC's
default initialisation, in the same run.

Run:  python bench/mcmc_faithful.py [--skip-naive] [--draws 1000]
Each measurement runs in a subprocess so "cold" really starts from empty caches.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile

CHILD = r'''
import json, sys, time, warnings
warnings.simplefilter("ignore")
import arviz as az
import numpy as np
which, draws, sampler = sys.argv[1], int(sys.argv[2]), sys.argv[3]
t0 = time.perf_counter()
import gmmflow
X = gmmflow.load_dataset("faithful")
X = ((X - X.mean("obs_id")) / X.std("obs_id"))
if which == "gmmflow":
    idata = gmmflow.sample_posterior(gmmflow.GMM(2), X, draws=draws, tune=draws, chains=4, seed=0,
                                     progressbar=False, sampler=sampler)
    names = ["w", "mu", "cov"]
    div = int(idata.sample_stats.diverging.sum())
else:
    import pymc as pm
    with pm.Model(coords={"component": [0, 1], "feature": ["e", "w"]}):
        w = pm.Dirichlet("w", np.ones(2))
        comps = []
        for k in range(2):
            chol, _, _ = pm.LKJCholeskyCov(f"chol{k}", n=2, eta=2.0, sd_dist=pm.Exponential.dist(1.0, shape=2),
                                           compute_corr=True)
            mu = pm.Normal(f"mu{k}", 0.0, 3.0, shape=2)
            comps.append(pm.MvNormal.dist(mu=mu, chol=chol))
        pm.Mixture("x", w=w, comp_dists=comps, observed=X.values)
        idata = pm.sample(draws=draws, tune=draws, chains=4, cores=2, random_seed=0, progressbar=False,
                          compute_convergence_checks=False)
    names = ["w", "mu0", "mu1"]
    div = int(idata.sample_stats.diverging.sum())
wall = time.perf_counter() - t0
s = az.summary(idata, var_names=names, kind="diagnostics").dropna(subset=["r_hat"])
print(json.dumps({"wall": wall, "min_ess_bulk": float(s.ess_bulk.min()), "max_rhat": float(s.r_hat.max()),
                  "divergences": div}))
'''


def measure(which, draws, sampler, cache_dir):
    env = dict(os.environ, PYTENSOR_FLAGS=f"compiledir={cache_dir}/pytensor",
               NUMBA_CACHE_DIR=f"{cache_dir}/numba")
    out = subprocess.run([sys.executable, "-c", CHILD, which, str(draws), sampler], env=env,
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--draws", type=int, default=1000)
    ap.add_argument("--sampler", default="auto")
    ap.add_argument("--skip-naive", action="store_true")
    a = ap.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as cache:
        rows.append(("gmmflow (cold)", measure("gmmflow", a.draws, a.sampler, cache)))
        rows.append(("gmmflow (warm)", measure("gmmflow", a.draws, a.sampler, cache)))
    if not a.skip_naive:
        with tempfile.TemporaryDirectory() as cache:
            rows.append(("naive pm.Mixture (cold)", measure("naive", a.draws, a.sampler, cache)))
    print(f"Old Faithful standardised, K=2 full, 4 chains x {a.draws} draws + {a.draws} tune")
    print(f"{'run':<26}{'wall s':>8}{'min bulk ESS':>14}{'ESS/s':>8}{'max r_hat':>11}{'divergences':>13}")
    for name, r in rows:
        print(f"{name:<26}{r['wall']:>8.1f}{r['min_ess_bulk']:>14.0f}{r['min_ess_bulk'] / r['wall']:>8.1f}"
              f"{r['max_rhat']:>11.3f}{r['divergences']:>13d}")
    if not a.skip_naive:
        base = rows[-1][1]["wall"]
        print(f"gmmflow cold / naive wall: {rows[0][1]['wall'] / base:.2f}; warm / naive: {rows[1][1]['wall'] / base:.2f}")


if __name__ == "__main__":
    main()

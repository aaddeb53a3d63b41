"""gmmflow's small-data fit_em, this tree against another (a baseline checkout), alternating.

    PYTHONPATH=. python bench/em_small_ab.py BASELINE_DIR [--rounds 3] [--repeats 5]

The em_small grid (Faithful and iris, K = 2..5, four types, MLE and
``prior="mclust"``, 10 restarts, tol 1e-8, seed 0; each a first fit, the hc
tree cleared). Each round times every cell once in a child process on this
tree, then once on ``BASELINE_DIR`` (e.g. ``git archive`` of main unpacked),
so that both see the same load; a cell's time is its minimum over
``--repeats`` calls and all rounds. Prints per cell both times and their
ratio, and the geometric mean of the ratios. The objective of the best
restart is printed by both trees and must agree.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

import numpy as np

CHILD = r"""
import json, sys, time, warnings
warnings.simplefilter("ignore")
import gmmflow
from gmmflow.core.hierarchical import clear_tree_cache
repeats = int(sys.argv[1])
out = {}
for name in ("faithful", "iris"):
    X = gmmflow.load_dataset(name).values
    for K in (2, 3, 4, 5):
        for t in ("full", "tied", "diag", "spherical"):
            for prior in (None, "mclust"):
                model = gmmflow.GMM(K, t, prior=prior)
                best, objective = float("inf"), None
                for _ in range(repeats):
                    clear_tree_cache()
                    t0 = time.perf_counter()
                    try:
                        fit = gmmflow.fit_em(model, X, n_init=10, tol=1e-8, seed=0)
                    except gmmflow.NotPositiveDefiniteError:
                        fit = None
                    best = min(best, time.perf_counter() - t0)
                    objective = None if fit is None else float(fit.em_estimate.objective)
                out[f"{name} {K} {t} {prior or 'mle'}"] = (best, objective)
print(json.dumps(out))
"""


def run(tree: str, repeats: int) -> dict:
    env = dict(os.environ, PYTHONPATH=tree)  # and run from the tree: "-c" puts the working directory first
    done = subprocess.run([sys.executable, "-c", CHILD, str(repeats)], env=env, cwd=os.path.abspath(tree),
                          capture_output=True, text=True, check=True)
    return json.loads(done.stdout)


def alternating_minima(run, trees, rounds: int, repeats: int) -> list[dict]:
    """For each tree, ``{key: (fastest time, check)}`` over ``rounds`` rounds that run the trees in turn
    (so all see the same load); ``run(tree, repeats)`` gives ``{key: (time, check)}``, the check (an
    objective, a digest) kept from the last round."""
    best = [{} for _ in trees]
    for _ in range(rounds):
        for tree, acc in zip(trees, best):
            for key, (seconds, check) in run(tree, repeats).items():
                acc[key] = (min(seconds, acc.get(key, (float("inf"),))[0]), check)
    return best


def main(baseline: str, rounds: int, repeats: int):
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    print(os.popen("uptime").read().strip())
    new, old = alternating_minima(run, (here, baseline), rounds, repeats)
    print(f"{rounds} rounds x {repeats} calls, minimum (ms); this tree against {baseline}")
    ratios = []
    for cell in new:
        (a, fa), (b, fb) = new[cell], old[cell]
        same = fa == fb or (fa is not None and fb is not None and abs(fa - fb) <= 1e-10 * abs(fb))
        ratios.append(a / b)
        print(f"{cell:28s} {a * 1e3:8.1f} {b * 1e3:8.1f} {a / b:6.2f}x{'' if same else '  OBJECTIVE DIFFERS'}")
    print(f"geometric mean this/baseline {np.exp(np.mean(np.log(ratios))):.3f}x; "
          f"{sum(r > 1 for r in ratios)} of {len(ratios)} cells slower")
    print(os.popen("uptime").read().strip())


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("baseline")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    main(args.baseline, args.rounds, args.repeats)

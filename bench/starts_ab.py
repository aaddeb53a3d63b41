"""EM's starting points (hc tree + k-means++), this tree against a baseline checkout, alternating.

    PYTHONPATH=. python bench/starts_ab.py BASELINE_DIR [--rounds 3] [--repeats 15]

Times, in a child process on this tree and then on ``BASELINE_DIR`` (e.g.
``git archive`` of main unpacked), each round, so that both see the same load:

- ``draw_all``: the 10 starting points of ``fit_em(..., n_init=10)`` (the hc
  start and 9 k-means++ starts, one M-step each), Faithful (272 x 2) and iris
  (150 x 4), K = 2..5, full covariances, ``prior="mclust"``, each a first fit
  (the hc tree cleared), as ``fit_em`` builds them;
- ``hierarchical_partitions(X, [2, 3, 4, 5])`` alone (VVV, tree cleared): iris
  (n = 150), Faithful (n = 272) and 2000 rows x 3 of a seeded mixture (hc's
  subsample cap).

A time is the minimum over ``--repeats`` calls and all rounds (milliseconds).
Prints both trees' times, their ratio, and the load average before and after.
The child also returns a digest of every start (means, covariances) and of
every partition: the two trees must give the same starts bit for bit.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

from em_small_ab import alternating_minima  # bench/ is on the path

CHILD = r"""
import hashlib, json, sys, time
import numpy as np
import gmmflow
from gmmflow.core.hierarchical import clear_tree_cache, hierarchical_partitions
from gmmflow.core.initialization import StartingPoints
from gmmflow.core.row_blocks import ArrayBlocks
from gmmflow.workflows.em_fit import restart_methods

repeats = int(sys.argv[1])
out = {}


def timed(key, fn):
    best, result = float("inf"), None
    for _ in range(repeats):
        clear_tree_cache()
        t0 = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - t0)
    digest = hashlib.sha256()
    for a in result:
        digest.update(np.ascontiguousarray(a).tobytes())
    out[key] = (1e3 * best, digest.hexdigest()[:16])


def draw_all(X, K):
    model = gmmflow.GMM(K, "full", prior="mclust")
    blocks = ArrayBlocks(X)
    mean, cov = blocks.moments()
    hyper = model.hyperparameters(mean, cov, X.shape[0])
    blocks = blocks.with_shift(mean)

    def run():
        starts = StartingPoints.from_blocks(blocks, 0, K, "full", hyper, model.reg_covar, None)
        rngs = [np.random.default_rng(c) for c in np.random.SeedSequence(0).spawn(10)]
        drawn = starts.draw_all(restart_methods("hc+kmeans++", 10), rngs)
        return [a for p in drawn for a in (p.weights, p.means, p.cov)]
    return run


rng = np.random.default_rng(2026)
centres = np.array([[0.0, 0.0, 0.0], [4.0, 1.0, -2.0], [-3.0, 3.0, 1.0]])
mixture = centres[rng.integers(0, 3, size=2000)] + rng.normal(size=(2000, 3)) @ rng.normal(size=(3, 3))
data = {"iris": gmmflow.load_dataset("iris").values, "faithful": gmmflow.load_dataset("faithful").values}
hierarchical_partitions(data["iris"][:20], [2])  # numba's code loaded outside the timing
for name, X in data.items():
    for K in (2, 3, 4, 5):
        timed(f"draw_all {name} K={K}", draw_all(X, K))
for name, X in (*data.items(), ("mixture 2000 x 3", mixture)):
    timed(f"hc tree {name} n={X.shape[0]}",
          lambda: list(hierarchical_partitions(X, [2, 3, 4, 5]).labels.values()))
print(json.dumps(out))
"""


def run(tree: str, repeats: int) -> dict:
    env = dict(os.environ, PYTHONPATH=tree)  # and run from the tree: "-c" puts the working directory first
    done = subprocess.run([sys.executable, "-c", CHILD, str(repeats)], env=env, cwd=tree, capture_output=True,
                          text=True, check=True)
    return json.loads(done.stdout)


def main(baseline: str, rounds: int, repeats: int) -> None:
    print("load average before:", " ".join(f"{v:.2f}" for v in os.getloadavg()))
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # the tree this script is in
    ours, base = alternating_minima(run, (here, os.path.abspath(baseline)), rounds, repeats)
    print(f"{'':34s} {'this ms':>8s} {'base ms':>8s} {'ratio':>6s}  same starts")
    for key, (ms, digest) in ours.items():
        b_ms, b_digest = base[key]
        print(f"{key:34s} {ms:8.2f} {b_ms:8.2f} {ms / b_ms:6.2f}  {'yes' if digest == b_digest else 'NO'}")
    print("load average after:", " ".join(f"{v:.2f}" for v in os.getloadavg()))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("baseline")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=15)
    args = parser.parse_args()
    main(args.baseline, args.rounds, args.repeats)

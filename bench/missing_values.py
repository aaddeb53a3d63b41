"""Missing values: is marginalizing closer to the full-data fit than complete-case analysis, and what does it cost?

    PYTHONPATH=.:bench python bench/missing_values.py [--seeds 200] [--n 20000[,100000]] [--cost-only]

1. Accuracy (what tests/test_missing_values.py::test_closer_to_full_data_than_complete_case
   runs on 30 seeds): for each seed, 200 rows of a 3-d two-component mixture,
   20% of the cells deleted completely at random (MCAR); the distance of the
   means and covariances (components matched) of ``missing="marginalize"`` and
   of the complete-case fit to the fit on the full data. Printed: the share of
   seeds on which marginalizing is closer, and the median distances.
2. Cost: one EM fit (K=3, d=5, full, 3 restarts, at most 50 iterations, tol=0) of n rows
   complete, and of the same rows with 10% of cells missing (about 30 patterns),
   timed in the same run; printed as a ratio, with each fit's iteration count: the
   complete fit reaches an exact fixed point (objective repeated to the last bit)
   after 2 iterations, the missing one after about 20 (missing information slows EM),
   so the ratio of fits mixes iteration count and cost per iteration. The cost per
   iteration is printed apart: one E-step of the 3-restart batch at the missing fit's
   estimate, on the blocks ``fit_em`` builds (complete rows: ``ArrayBlocks`` on
   ``default_n_threads`` threads; missing: ``MissingBlocks`` on one), best of many.

    PYTHONPATH=.:bench python bench/missing_values.py --cost-only --which now,base [--n 20000,100000]

runs the cost of each code tree in its own child process, alternating trees
(``base``: gmmflow at ``--baseline``, extracted by ``git archive``; ``now``: this
tree), and prints each tree's numbers and the ratios now/base, with the load average.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

import gmmflow

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from conftest import mixture_data  # noqa: E402
from test_missing_values import mcar_comparison, with_missing  # noqa: E402


def accuracy(n_seeds: int) -> None:
    pairs = np.array([mcar_comparison(seed) for seed in range(n_seeds)])
    wins = int((pairs[:, 0] < pairs[:, 1]).sum())
    print(f"marginalize closer to the full-data fit on {wins} of {n_seeds} seeds ({wins / n_seeds:.3f}); "
          f"median distance marginalize {np.median(pairs[:, 0]):.4f}, complete-case {np.median(pairs[:, 1]):.4f}")


def cost(n: int, repeats: int = 3) -> dict:
    X = mixture_data(seed=0, n_per=n // 3, d=5, K=3)
    Xm, _ = with_missing(X, 0.1, seed=1)
    X = X[: Xm.shape[0]]
    model = gmmflow.GMM(3)
    options = dict(seed=0, n_init=3, max_iter=50, tol=0.0, init="kmeans++")

    def best(data, **extra):
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            idata = gmmflow.fit_em(model, data, **options, **extra)
            times.append(time.perf_counter() - t0)
        return min(times), int(idata["em_restarts"]["n_iter"].max()), idata

    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        complete, it_complete, _ = best(X)
        missing, it_missing, idata = best(Xm, missing="marginalize")
    e_complete, e_missing = e_step_times(X, Xm, idata)
    patterns = len(np.unique(np.isnan(Xm), axis=0))
    print(f"EM {Xm.shape[0]} x 5, K=3, 3 restarts x at most 50 iterations: complete {complete:.3f} s "
          f"({it_complete} iterations), 10% missing ({patterns} patterns) {missing:.3f} s ({it_missing} iterations), "
          f"ratio {missing / complete:.2f}; one E-step of the 3 restarts: complete {1e3 * e_complete:.2f} ms, "
          f"missing {1e3 * e_missing:.2f} ms, ratio {e_missing / e_complete:.2f}", flush=True)
    return {"n": int(Xm.shape[0]), "fit_complete": complete, "fit_missing": missing, "iter_complete": it_complete,
            "iter_missing": it_missing, "estep_complete": e_complete, "estep_missing": e_missing}


def e_step_times(X, Xm, idata, rounds: int = 7, number: int = 10) -> tuple[float, float]:
    """Best time of one E-step of the 3-restart batch at the missing fit's restarts, on the blocks
    fit_em builds for complete and for missing rows (alternated, best of ``rounds`` x ``number``)."""
    from gmmflow.core.em_driver import one_blas_thread
    from gmmflow.core.em_steps import Params
    from gmmflow.core.missing_data import row_blocks
    from gmmflow.core.row_blocks import default_chunk_size, default_n_threads

    r = idata["em_restarts"]
    chunk = default_chunk_size(3, 5, 3)
    threads = default_n_threads(X.shape[0], chunk, os.cpu_count() or 1)
    blocks = [row_blocks(data, None, chunk, n_threads=threads) for data in (X, Xm)]
    blocks = [b.with_shift(b.moments()[0]) for b in blocks]
    params = [Params.from_cov(r["w"].values, r["mu"].values - b.shift, r["cov"].values, "full") for b in blocks]
    best = [np.inf, np.inf]
    with one_blas_thread():
        for _ in range(rounds):
            for j, (b, p) in enumerate(zip(blocks, params)):
                t0 = time.perf_counter()
                for _ in range(number):
                    b.e_step(p, np.arange(3))
                best[j] = min(best[j], (time.perf_counter() - t0) / number)
    return best[0], best[1]


def compare_trees(which: list[str], sizes: list[int], baseline: str, rounds: int) -> None:
    """The cost of every tree in ``which`` (``now``, ``base``), each in child processes, alternated."""
    here = Path(__file__).resolve()
    root = here.parents[1]
    with tempfile.TemporaryDirectory() as tmp:
        trees = {"now": root}
        if "base" in which:
            trees["base"] = Path(tmp) / baseline
            trees["base"].mkdir()
            archive = subprocess.run(["git", "-C", str(root), "archive", baseline], check=True, capture_output=True)
            subprocess.run(["tar", "-x", "-C", str(trees["base"])], input=archive.stdout, check=True)
        results = {w: {n: [] for n in sizes} for w in which}
        print(f"# load average at start {os.getloadavg()}", flush=True)
        for _ in range(rounds):
            for n in sizes:
                for w in which:
                    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(trees[w]), str(here.parent)]))
                    p = subprocess.run([sys.executable, str(here), "--child", "--n", str(n)], env=env,
                                       capture_output=True, text=True, check=True)
                    out = json.loads([ln for ln in p.stdout.splitlines() if ln.startswith("RESULT ")][-1][7:])
                    print(f"{w:5s} {p.stdout.splitlines()[0]}", flush=True)
                    results[w][n].append(out)
        print(f"# load average at end {os.getloadavg()}")
        keys = ("fit_complete", "fit_missing", "estep_complete", "estep_missing")
        for n in sizes:
            best = {w: {k: min(r[k] for r in results[w][n]) for k in keys} for w in which}
            for w in which:
                b = best[w]
                print(f"{w:5s} n={n}: best of {rounds} rounds: fit missing/complete "
                      f"{b['fit_missing'] / b['fit_complete']:.2f} ({b['fit_missing']:.3f} s / {b['fit_complete']:.3f} s), "
                      f"E-step missing/complete {b['estep_missing'] / b['estep_complete']:.2f} "
                      f"({1e3 * b['estep_missing']:.2f} ms / {1e3 * b['estep_complete']:.2f} ms)")
            if "base" in best and "now" in best:
                print(f"      n={n}: now/base missing fit {best['now']['fit_missing'] / best['base']['fit_missing']:.2f}, "
                      f"missing E-step {best['now']['estep_missing'] / best['base']['estep_missing']:.2f}, "
                      f"complete fit {best['now']['fit_complete'] / best['base']['fit_complete']:.2f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=200)
    parser.add_argument("--n", default="20000", help="rows, comma-separated for several sizes")
    parser.add_argument("--cost-only", action="store_true", help="skip the accuracy part")
    parser.add_argument("--which", default="", help="code trees to time in child processes: now,base")
    parser.add_argument("--baseline", default="32f62f6", help="the commit of the 'base' tree")
    parser.add_argument("--rounds", type=int, default=2, help="child processes per tree and size (--which)")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    sizes = [int(n) for n in args.n.split(",")]
    if args.child:
        print("RESULT " + json.dumps(cost(sizes[0])))
    elif args.which:
        compare_trees(args.which.split(","), sizes, args.baseline, args.rounds)
    else:
        for n in sizes:
            cost(n)
    if not (args.child or args.cost_only):
        accuracy(args.seeds)

"""Missing values on dask: what does marginalizing cost per chunked EM fit, against complete data?

    PYTHONPATH=. python bench/missing_dask.py [--n 100000] [--chunk 25000] [--repeats 3]

One EM fit (K=3, d=5, full, 3 restarts, fixed 30 iterations, k-means++ starts)
of n rows complete and of the same rows with 10% of the cells missing
(MCAR, about 30 patterns), each on a dask array of ``--chunk`` rows per chunk
(threaded scheduler) and in memory, all timed in the same run (best of
``--repeats``). Printed: the four times and the ratios missing/complete on
dask and in memory, and dask/in-memory with missing cells. The dask kernel
groups every chunk's rows by pattern again in every E-step (a radix sort of
16-bit pattern codes and a copy of the chunk, about 15% of the chunk's E-step;
keeping the groupings of all chunks would hold O(n) memory), the in-memory
one once per fit. To time another code tree in the same run, run this script
again with ``PYTHONPATH`` pointing at it (bench/results/missing_cost_2026-11-27b.txt).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import warnings
from pathlib import Path

import numpy as np

import gmmflow

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from conftest import mixture_data  # noqa: E402
from test_missing_values import with_missing  # noqa: E402


def best_time(fit, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fit()
        times.append(time.perf_counter() - t0)
    return min(times)


def main(n: int, chunk: int, repeats: int) -> None:
    import dask.array as da

    X = mixture_data(seed=0, n_per=n // 3, d=5, K=3)
    Xm, _ = with_missing(X, 0.1, seed=1)
    X = X[: Xm.shape[0]]
    model = gmmflow.GMM(3)
    options = dict(seed=0, n_init=3, max_iter=30, tol=0.0, init="kmeans++")
    runs = {
        "dask complete": (lambda: gmmflow.fit_em(model, da.from_array(X, chunks=(chunk, 5)), **options)),
        "dask missing": (lambda: gmmflow.fit_em(model, da.from_array(Xm, chunks=(chunk, 5)), missing="marginalize",
                                                **options)),
        "memory complete": (lambda: gmmflow.fit_em(model, X, **options)),
        "memory missing": (lambda: gmmflow.fit_em(model, Xm, missing="marginalize", **options)),
    }
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        t = {name: best_time(fit, repeats) for name, fit in runs.items()}
    patterns = len(np.unique(np.isnan(Xm), axis=0))
    print(f"# gmmflow from {Path(gmmflow.__file__).parents[1]}, load average {os.getloadavg()}")
    print(f"EM {Xm.shape[0]} x 5, K=3, 3 restarts x 30 iterations, 10% missing ({patterns} patterns), "
          f"{chunk} rows per dask chunk, best of {repeats}:")
    for name, seconds in t.items():
        print(f"  {name:16s} {seconds:7.3f} s")
    print(f"missing/complete: dask {t['dask missing'] / t['dask complete']:.2f}, "
          f"memory {t['memory missing'] / t['memory complete']:.2f}; "
          f"missing dask/memory {t['dask missing'] / t['memory missing']:.2f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--chunk", type=int, default=25_000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    main(args.n, args.chunk, args.repeats)

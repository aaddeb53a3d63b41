"""One large fit, to run on two copies of the code: does big data keep numpy's speed?

    PYTHONPATH=<copy> python bench/em_large_dispatch.py <label>

``fit_em`` on 100,000 x 8 synthetic rows, K = 8, full, MLE, 10 k-means++ restarts
of 20 iterations (``tol=0``): ``n (K + 1) d^2 = 5.8e7``, far above
``core.em_driver.COMPILED_MAX_WORK``, so the compiled EM loop must not run and the
time must be numpy's. Public API only, so that it runs on code from before the
compiled loop too; alternate the copies in one session and compare the times.
"""

from __future__ import annotations

import sys
import time
import warnings

import numpy as np

import gmmflow

N, D, K = 100_000, 8, 8


def main(label: str):
    rng = np.random.default_rng(0)
    centers = rng.normal(scale=3.0, size=(K, D))
    X = centers[rng.integers(K, size=N)] + rng.normal(size=(N, D))
    model = gmmflow.GMM(K, "full", prior=None)
    warnings.simplefilter("ignore")  # 20 iterations do not converge: that is the point
    gmmflow.fit_em(model, X[:2000], seed=0, max_iter=2)  # imports and caches outside the timing
    t0 = time.perf_counter()
    gmmflow.fit_em(model, X, seed=0, max_iter=20, tol=0.0, init="kmeans++")
    print(f"{label}: fit_em {N} x {D}, K={K} full MLE, 10 restarts x 20 iterations: {time.perf_counter() - t0:.2f} s")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "this copy")

"""EM iteration time and peak memory: gmmflow vs sklearn.mixture.GaussianMixture.

n=200k, d=8, K=8, synthetic, MLE mode (prior=None, reg_covar=1e-6), both
started from the same parameters, a fixed number of iterations. sklearn's
iteration is timed as what ``fit`` runs per iteration (``_e_step`` then
``_m_step``), without its per-call input checks. Prints ms per iteration,
the ratio gmmflow/sklearn, the largest relative log-likelihood difference
over the iterations, and the peak memory each allocates during the
iterations (tracemalloc, data excluded).

Run:  python bench/em_vs_sklearn.py [--n 200000] [--iters 10] [--threads 2]
"""

import argparse
import time
import tracemalloc
import warnings

import numpy as np
from sklearn.mixture import GaussianMixture
from threadpoolctl import threadpool_limits

from gmmflow.core.row_blocks import ArrayBlocks, default_chunk_size
from gmmflow.core.em_steps import Params, m_step

TARGET = {"full": 0.2, "tied": 0.2, "diag": 0.5, "spherical": 0.5}


def synthetic(n, d, K, seed=0):
    rng = np.random.default_rng(seed)
    centers = rng.normal(scale=4.0, size=(K, d))
    labels = rng.integers(K, size=n)
    A = rng.normal(size=(K, d, d)) * 0.4 + np.eye(d)
    return centers[labels] + np.einsum("nij,nj->ni", A[labels], rng.normal(size=(n, d)))


def start_params(X, K, t):
    gm = GaussianMixture(K, covariance_type=t, max_iter=1, random_state=0, init_params="random_from_data")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        gm.fit(X[:20000])
    return gm


def run_sklearn(gm, X, iters):
    lls = []
    tracemalloc.start()
    t0 = time.perf_counter()
    for _ in range(iters):
        _, log_resp = gm._e_step(X)
        gm._m_step(X, log_resp)
        lls.append(None)
    elapsed = time.perf_counter() - t0
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    # log-likelihood after each iteration, recomputed outside the timing
    return elapsed, peak, lls


def sklearn_trace(gm, X, iters):
    lls = []
    for _ in range(iters):
        _, log_resp = gm._e_step(X)
        gm._m_step(X, log_resp)
        lls.append(gm.score(X) * X.shape[0])
    return lls


def run_gmmflow(p0, X, t, iters, threads, chunk):
    shift = X.mean(axis=0)
    blocks = ArrayBlocks(X, chunk_size=chunk, n_threads=threads, shift=shift)
    params = p0.shifted(-shift)
    tracemalloc.start()
    t0 = time.perf_counter()
    with threadpool_limits(limits=1, user_api="blas"):  # as fit_em runs it
        stats = blocks.e_step(params)
        for _ in range(iters):
            params = m_step(stats, t, None, 1e-6)
            stats = blocks.e_step(params)
    elapsed = time.perf_counter() - t0
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return elapsed, peak


def gmmflow_trace(p0, X, t, iters):
    shift = X.mean(axis=0)
    blocks = ArrayBlocks(X, chunk_size=default_chunk_size(p0.weights.size, X.shape[1]), shift=shift)
    params, lls = p0.shifted(-shift), []
    stats = blocks.e_step(params)
    for _ in range(iters):
        params = m_step(stats, t, None, 1e-6)
        stats = blocks.e_step(params)
        lls.append(stats.log_likelihood)
    return lls


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=200_000)
    ap.add_argument("--d", type=int, default=8)
    ap.add_argument("--k", type=int, default=8)
    ap.add_argument("--iters", type=int, default=10)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--chunk", type=int, default=None)
    ap.add_argument("--types", default="full,tied,diag,spherical")
    a = ap.parse_args()
    X = synthetic(a.n, a.d, a.k)
    chunk = a.chunk or default_chunk_size(a.k, a.d)
    print(f"n={a.n} d={a.d} K={a.k} iterations={a.iters} gmmflow threads={a.threads} chunk={chunk}")
    print(f"{'type':<10}{'sklearn ms/it':>14}{'gmmflow ms/it':>15}{'ratio':>8}{'target':>8}"
          f"{'max rel dLL':>13}{'sk peak MB':>12}{'gf peak MB':>12}")
    for t in a.types.split(","):
        gm = start_params(X, a.k, t)
        p0 = Params.from_cov(gm.weights_, gm.means_, gm.covariances_, t)
        state = (gm.weights_.copy(), gm.means_.copy(), gm.covariances_.copy(), gm.precisions_cholesky_.copy())

        def reset():
            gm.weights_, gm.means_, gm.covariances_, gm.precisions_cholesky_ = (s.copy() for s in state)

        sk_ll = sklearn_trace(gm, X, a.iters)
        reset()
        gf_ll = gmmflow_trace(p0, X, t, a.iters)
        rel = max(abs(x - y) / abs(y) for x, y in zip(gf_ll, sk_ll))
        sk_t, gf_t, sk_peak, gf_peak = [], [], 0, 0
        for _ in range(3):  # best of 3, interleaved
            reset()
            e, p, _ = run_sklearn(gm, X, a.iters)
            sk_t.append(e); sk_peak = max(sk_peak, p)
            e, p = run_gmmflow(p0, X, t, a.iters, a.threads, chunk)
            gf_t.append(e); gf_peak = max(gf_peak, p)
        sk_ms, gf_ms = 1e3 * min(sk_t) / a.iters, 1e3 * min(gf_t) / a.iters
        print(f"{t:<10}{sk_ms:>14.2f}{gf_ms:>15.2f}{gf_ms / sk_ms:>8.3f}{TARGET[t]:>8.2f}"
              f"{rel:>13.1e}{sk_peak / 2**20:>12.1f}{gf_peak / 2**20:>12.1f}")


if __name__ == "__main__":
    main()

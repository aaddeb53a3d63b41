"""Restarts advanced together against one at a time, from small to large n: where batching pays.

    PYTHONPATH=. python bench/em_batch_scale.py [--iters 30] [--repeats 3]

Synthetic K-component data (d features), for n from 300 to 1,000,000 rows.
Both arms run the same 10 k-means++ starts for a fixed number of EM
iterations (``tol=0``, so no restart leaves early and both do the same
arithmetic) through the core driver on in-memory row blocks, each with the
block size and thread count ``fit_em`` would give it:

- together: one batch of 10 (``fit_restarts(batch_size=None)``, what
  ``fit_em`` runs), blocks of ``default_chunk_size(K, d, 10)`` rows, so a
  block's work array (10 K d x rows) stays about 2 MiB whatever n is;
- one by one: ``batch_size=1``, blocks of ``default_chunk_size(K, d, 1)``.

Working memory does not grow with the batch (the block shrinks as the batch
grows), so the question is time only. Prints the time per iteration of each
arm (minimum of ``--repeats``) and their ratio; the starts' cost is left out.
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np

from gmmflow.core.em_driver import _run_batches, one_blas_thread
from gmmflow.core.initialization import StartingPoints
from gmmflow.core.row_blocks import ArrayBlocks, default_chunk_size, default_n_threads

R = 10


def mixture(n: int, d: int, K: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centers = rng.normal(scale=3.0, size=(K, d))
    labels = rng.integers(K, size=n)
    return centers[labels] + rng.normal(size=(n, d))


def blocks_and_starts(X, K, t, batch: int):
    """The blocks ``fit_em`` would make for ``batch`` restarts advanced together (block size, threads,
    shifted by the mean) and the R k-means++ starts (MLE) in their frame."""
    n, d = X.shape
    chunk = default_chunk_size(K, d, batch)
    blocks = ArrayBlocks(X, chunk_size=chunk, n_threads=default_n_threads(n, chunk, os.cpu_count() or 1))
    mean, _ = blocks.moments()
    blocks = blocks.with_shift(mean)
    starts = StartingPoints.from_blocks(blocks, 0, K, t, None, 1e-6, None)
    rngs = [np.random.default_rng(c) for c in np.random.SeedSequence(0).spawn(R)]
    return blocks, starts.draw_all(["kmeans++"] * R, rngs)


def per_iteration(X, K, t, batch_size, iters, repeats) -> float:
    """Seconds per EM iteration of the 10 restarts run ``batch_size`` at a time."""
    blocks, inits = blocks_and_starts(X, K, t, batch_size or R)
    best = np.inf
    with one_blas_thread():
        for _ in range(repeats):
            t0 = time.perf_counter()
            _run_batches(blocks.e_step, blocks.shift, inits, None, 1e-6, iters, 0.0, batch_size)
            best = min(best, time.perf_counter() - t0)
    return best / iters


def main(iters: int, repeats: int):
    print(os.popen("uptime").read().strip())
    print(f"{R} restarts, {iters} EM iterations each (tol=0), minimum of {repeats} runs; ms per iteration")
    print(f"{'n':>9} {'d':>2} {'K':>2} {'type':>9} {'together':>9} {'1 by 1':>9} {'together/1by1':>14}")
    for n in (300, 3_000, 30_000, 300_000, 1_000_000):
        for d, K, t in ((2, 4, "full"), (8, 8, "full"), (4, 4, "diag")):
            X = mixture(n, d, K)
            reps = repeats if n <= 300_000 else 1
            its = iters if n <= 300_000 else max(3, iters // 10)
            together = per_iteration(X, K, t, None, its, reps)
            alone = per_iteration(X, K, t, 1, its, reps)
            print(f"{n:>9} {d:>2} {K:>2} {t:>9} {together * 1e3:>9.3f} {alone * 1e3:>9.3f} "
                  f"{together / alone:>13.2f}x", flush=True)
    print(os.popen("uptime").read().strip())


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iters", type=int, default=30)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    main(args.iters, args.repeats)

"""The compiled EM loop against numpy's batched loop, from small to large n: where to switch.

    PYTHONPATH=. python bench/em_kernel_scale.py [--iters 20] [--repeats 3]

Synthetic K-component data (d features). Both arms run the same 10 k-means++
starts (MLE) for a fixed number of EM iterations (``tol=0``, so no start
stops early and both do the same arithmetic) on in-memory rows:

- numpy: ``core.em_driver._run_batches`` on the blocks ``fit_em`` would make
  (block size and thread count for a batch of 10), all starts advanced together;
- compiled: ``core.em_driver._run_compiled`` (``kernels.em_loop``), each start
  to its end in turn, one thread.

Prints the time per iteration (all 10 starts; minimum of ``--repeats``), the
ratio compiled / numpy and the work measure ``n (K + 1) d^2`` that
``core.em_driver.em_kernel`` compares with ``COMPILED_MAX_WORK``.
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np

from em_batch_scale import R, blocks_and_starts, mixture  # the same data and starts (bench/ is on the path)

from gmmflow.core.em_driver import _run_batches, _run_compiled, one_blas_thread
from gmmflow.kernels import em_loop


def per_iteration(X, K, t, iters, repeats) -> tuple[float, float]:
    """Seconds per EM iteration of the 10 starts: (numpy, compiled)."""
    blocks, inits = blocks_and_starts(X, K, t, R)
    arms = {"numpy": lambda: _run_batches(blocks.e_step, blocks.shift, inits, None, 1e-6, iters, 0.0, None),
            "compiled": lambda: _run_compiled(em_loop, blocks, inits, None, 1e-6, iters, 0.0)}
    best = {name: np.inf for name in arms}
    with one_blas_thread():
        for _ in range(repeats):
            for name, run in arms.items():  # alternating, so both see the same load
                t0 = time.perf_counter()
                run()
                best[name] = min(best[name], time.perf_counter() - t0)
    return best["numpy"] / iters, best["compiled"] / iters


def main(iters: int, repeats: int):
    print(os.popen("uptime").read().strip())
    print(f"{R} starts, {iters} EM iterations each (tol=0), minimum of {repeats} runs; ms per iteration (all starts)")
    print(f"{'n':>7} {'d':>2} {'K':>2} {'type':>9} {'work':>10} {'numpy':>8} {'compiled':>9} {'comp/np':>8}")
    for n in (300, 1_000, 3_000, 10_000, 30_000, 100_000):
        for d, K, t in ((2, 4, "full"), (2, 8, "diag"), (4, 4, "full"), (4, 4, "spherical"), (8, 8, "full")):
            X = mixture(n, d, K)
            numpy_s, compiled_s = per_iteration(X, K, t, iters, repeats)
            print(f"{n:>7} {d:>2} {K:>2} {t:>9} {n * (K + 1) * d * d:>10.2e} {numpy_s * 1e3:>8.3f} "
                  f"{compiled_s * 1e3:>9.3f} {compiled_s / numpy_s:>7.2f}x", flush=True)
    print(os.popen("uptime").read().strip())


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iters", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=3)
    main(**vars(parser.parse_args()))

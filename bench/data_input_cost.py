"""What issue 18's data checks cost, each against its baseline measured in the same run.

- ``read_csv`` (sniffing the first MiB, the header, index/ID columns, float64 checks) against
  ``pandas.read_csv`` told the separator, on a CSV of n rows x d columns;
- ``fit_em`` with the data checks and the fingerprint (BLAKE2b of the float64 values) against the
  same call with the hash replaced by a constant, n=200,000, d=8, K=8 MLE, 20 iterations.

Run by hand: ``python bench/data_input_cost.py``. The machine is shared: read the ratios, not the
seconds; each figure is the best of ``REPEATS``.
"""

from __future__ import annotations

import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

import gmmflow
import gmmflow.inputs.fingerprint as fingerprint

N, D, K, REPEATS = 200_000, 8, 8, 3


def best(fn) -> float:
    times = []
    for _ in range(REPEATS):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def main() -> None:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(N, D)) + rng.integers(0, 5, size=(N, 1)) * 3.0
    frame = pd.DataFrame(X, columns=[f"f{j}" for j in range(D)])
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "data.csv"
        frame.to_csv(path, index=False)
        t_pandas = best(lambda: pd.read_csv(path, sep=","))
        t_gmmflow = best(lambda: gmmflow.read_csv(path))
    print(f"read_csv {N} x {D}: gmmflow {t_gmmflow:.3f} s, pandas {t_pandas:.3f} s, ratio {t_gmmflow / t_pandas:.2f}")

    def fit():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            gmmflow.fit_em(gmmflow.GMM(K, prior=None), frame, n_init=1, max_iter=20, seed=0)

    t_with = best(fit)
    real = fingerprint.hash_values
    fingerprint.hash_values = lambda values, block_rows=None: "0" * 64
    try:
        t_without = best(fit)
    finally:
        fingerprint.hash_values = real
    t_hash = best(lambda: real(np.ascontiguousarray(X)))
    print(f"fit_em {N} x {D}, K={K}, 20 iterations: with fingerprint {t_with:.3f} s, without {t_without:.3f} s, "
          f"ratio {t_with / t_without:.3f}; the hash alone {t_hash:.4f} s ({t_hash / t_without:.1%} of the fit)")


if __name__ == "__main__":
    main()

"""The hc start's merge loop: numba kernel against the numpy loop, in one run.

    PYTHONPATH=. python bench/hc_kernel.py [--repeats 15]

1. In one process: ``hierarchical_partitions(X, [2, 3, 4, 5])`` (VVV, the tree
   cleared before every call, as a first fit sees it) on Faithful (272 x 2),
   iris (150 x 4) and 2000 rows (hc's subsample cap) of a seeded three-component
   mixture in 3 dimensions, ``compiled=False`` (numpy) and ``compiled=True``
   (numba), alternating; the minimum of ``--repeats`` calls each and the ratio.
2. In fresh processes (Faithful): the first call and a second call, for the
   numpy loop, for the kernel with an empty on-disk cache (``NUMBA_CACHE_DIR``
   a new temporary directory: compiling), and for the kernel again in a new
   process on that cache (loading the compiled code).

Prints the load average before and after. Only ratios within this run mean
anything on a shared machine.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

from gmmflow.core.hierarchical import clear_tree_cache, hierarchical_partitions
from gmmflow.inputs.datasets import load_dataset

KS = [2, 3, 4, 5]

CHILD = r"""
import json, sys, time
import numpy as np
from gmmflow.core.hierarchical import clear_tree_cache, hierarchical_partitions
from gmmflow.inputs.datasets import load_dataset
X = np.asarray(load_dataset("faithful").values, dtype=float)
compiled = sys.argv[1] == "numba"
t0 = time.perf_counter()
hierarchical_partitions(X, [2, 3, 4, 5], compiled=compiled)
t1 = time.perf_counter()
clear_tree_cache()
hierarchical_partitions(X, [2, 3, 4, 5], compiled=compiled)
t2 = time.perf_counter()
print(json.dumps({"first": t1 - t0, "second": t2 - t1}))
"""


def datasets() -> dict:
    rng = np.random.default_rng(2026)
    centres = np.array([[0.0, 0.0, 0.0], [4.0, 1.0, -2.0], [-3.0, 3.0, 1.0]])
    mix = centres[rng.integers(0, 3, size=2000)] + rng.normal(size=(2000, 3)) @ rng.normal(size=(3, 3))
    return {"faithful": np.asarray(load_dataset("faithful").values, dtype=float),
            "iris": np.asarray(load_dataset("iris").values, dtype=float),
            "mixture 2000 x 3": mix}


def in_process(repeats: int) -> None:
    print(f"{'data':>18s} {'n':>5s} {'numpy ms':>9s} {'numba ms':>9s} {'ratio':>7s}")
    for name, X in datasets().items():
        times = {False: [], True: []}
        reps = repeats if X.shape[0] < 1000 else max(3, repeats // 5)
        hierarchical_partitions(X[:20], [2], compiled=True)  # compiled (or loaded) outside the timing
        for _ in range(reps):
            for compiled in (False, True):
                clear_tree_cache()
                t = time.perf_counter()
                hierarchical_partitions(X, KS, compiled=compiled)
                times[compiled].append(time.perf_counter() - t)
        a, b = min(times[False]), min(times[True])
        print(f"{name:>18s} {X.shape[0]:5d} {1e3 * a:9.2f} {1e3 * b:9.2f} {b / a:6.3f}x")


def fresh_process(kind: str, cache: str) -> dict:
    env = dict(os.environ, NUMBA_CACHE_DIR=cache)
    t = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", CHILD, kind], env=env, capture_output=True, text=True, check=True)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    result["process"] = time.perf_counter() - t
    return result


def fresh_processes() -> None:
    with tempfile.TemporaryDirectory() as cache:
        rows = [("numpy loop", fresh_process("numpy", cache)),
                ("numba, empty cache", fresh_process("numba", cache)),
                ("numba, cache on disk", fresh_process("numba", cache))]
    print(f"{'faithful, new process':>22s} {'first call s':>13s} {'second call s':>14s} {'process s':>10s}")
    for label, r in rows:
        print(f"{label:>22s} {r['first']:13.4f} {r['second']:14.4f} {r['process']:10.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=15)
    args = parser.parse_args()
    print("load average before:", " ".join(f"{v:.2f}" for v in os.getloadavg()))
    in_process(args.repeats)
    fresh_processes()
    print("load average after:", " ".join(f"{v:.2f}" for v in os.getloadavg()))


if __name__ == "__main__":
    main()

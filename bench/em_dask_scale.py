"""EM on a zarr store too big to be comfortable in memory: peak RSS and time per iteration.

Writes n rows (default 20 million) x d=8 of synthetic K=8 mixture data to a
zarr store in a temporary directory (in a child process, block by block),
then fits ``GMM(8, prior=None)`` for a fixed number of EM iterations from the
store with dask's threaded scheduler, and, as the baseline, the same fit on
the array loaded into memory. Each fit runs in its own process; peak
resident memory is that process's ru_maxrss.

Run:  python bench/em_dask_scale.py [--n 20000000] [--iters 3] [--chunk 1000000]
"""

import argparse
import json
import subprocess
import sys
import tempfile

WRITE = r'''
import sys, numpy as np, zarr
path, n, d, K, chunk = sys.argv[1], int(sys.argv[2]), 8, 8, int(sys.argv[3])
rng = np.random.default_rng(0)
centers = rng.normal(scale=4.0, size=(K, d))
A = rng.normal(size=(K, d, d)) * 0.4 + np.eye(d)
z = zarr.create_array(store=path, shape=(n, d), chunks=(chunk, d), dtype="f8")
for a in range(0, n, chunk):
    m = min(chunk, n - a)
    lab = rng.integers(K, size=m)
    z[a:a + m] = centers[lab] + np.einsum("nij,nj->ni", A[lab], rng.normal(size=(m, d)))
'''

FIT = r'''
import json, resource, sys, time, warnings
warnings.simplefilter("ignore")
import numpy as np, gmmflow
path, mode, iters, chunk = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
if mode == "memory":
    import zarr
    X = zarr.open_array(path, mode="r")[:]
else:
    X = path
t0 = time.perf_counter()
idata = gmmflow.fit_em(gmmflow.GMM(8, prior=None), X, n_init=1, seed=0, max_iter=iters, tol=0.0, chunk_size=chunk)
wall = time.perf_counter() - t0
n_iter = int(idata.em_estimate.n_iter)
print(json.dumps({"wall": wall, "n_iter": n_iter, "objective": float(idata.em_estimate.objective),
                  "peak_gib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20}))
'''


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=20_000_000)
    ap.add_argument("--iters", type=int, default=3)
    ap.add_argument("--chunk", type=int, default=1_000_000)
    ap.add_argument("--skip-memory", action="store_true")
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        store = f"{tmp}/x.zarr"
        subprocess.run([sys.executable, "-c", WRITE, store, str(a.n), str(a.chunk)], check=True)
        rows = []
        for mode in ("zarr", "memory")[: 1 if a.skip_memory else 2]:
            out = subprocess.run([sys.executable, "-c", FIT, store, mode, str(a.iters), str(a.chunk)],
                                 capture_output=True, text=True, check=True)
            rows.append((mode, json.loads(out.stdout.strip().splitlines()[-1])))
    print(f"n={a.n} d=8 K=8 MLE, {a.iters} EM iterations, chunk={a.chunk} rows "
          f"(data {a.n * 8 * 8 / 2**30:.2f} GiB)")
    print(f"{'path':<10}{'wall s':>9}{'s/iteration*':>14}{'peak RSS GiB':>14}{'objective':>22}")
    for mode, r in rows:
        print(f"{mode:<10}{r['wall']:>9.1f}{r['wall'] / (r['n_iter'] + 1):>14.2f}{r['peak_gib']:>14.2f}"
              f"{r['objective']:>22.6f}")
    print("* wall time (moments, finite check, init, E-steps) / (iterations + 1)")
    if len(rows) == 2:
        print(f"zarr / memory time: {rows[0][1]['wall'] / rows[1][1]['wall']:.2f}")


if __name__ == "__main__":
    main()

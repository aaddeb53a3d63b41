"""The Gibbs sampler against NUTS and EM as n grows, and at scale. Run by hand.

Three measurements; each runs in child processes (peak RSS is the child's
ru_maxrss) and prints ratios against a baseline measured in the same run,
with the machine's load average (timings move with it):

``ess``
    d=3, K=3 well-separated data (centres 8 sds apart) at n = 300, 3k, 30k,
    300k. Bulk ESS per second of wall time for the means, the least of the
    K*d: Gibbs (4 chains x 1000 draws after 200 burn-in sweeps) against NUTS
    (``sampler="auto"``, numpyro when installed, 4 x 1000 draws after 1000 tuning steps), both ``sample_posterior``
    calls from the same EM result; NUTS only up to ``--nuts-max-n`` and while
    it finishes within ``--nuts-timeout`` seconds (600). Then the Gibbs sweep
    as a ratio to one EM iteration on the same blocks (E-step + M-step;
    target: at most 1.5x), one chain alone and four chains in one pass
    (per chain), medians of interleaved repeats.
``million``
    n = 1M, d = 8, K = 8 in memory (bench/em_dask_scale.py's generator), 4
    chains: wall time of ``sample_posterior(sampler="gibbs")`` and the least
    bulk ESS over the 64 means (target: at least 400 within 10 minutes),
    beside the EM fit that starts it and one EM iteration.
``zarr``
    n = 20M x 8 (K = 8) written to a zarr store: one Gibbs sweep against one
    EM iteration on the store's chunks (target: at most 1.5x), then a short
    end-to-end ``sample_posterior`` from the store (EM with a few iterations,
    a few sweeps); peak RSS of each child (target: under 2 GiB).

Run:  python bench/gibbs_scale.py ess [--ns 300,3000,30000,300000] [--nuts-max-n 30000]
      python bench/gibbs_scale.py million [--draws 250] [--tune 50]
      python bench/gibbs_scale.py zarr [--n 20000000] [--chunk 1000000]
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile

COMMON = r'''
import json, resource, sys, time, warnings
warnings.simplefilter("ignore")
import numpy as np


def make_data(n, d, K, seed=0, spread=None):
    """d=3: centres 8 sds apart on the axes; else em_dask_scale.py's centres (scale 4 in d=8)."""
    rng = np.random.default_rng(seed)
    centres = 8.0 * np.eye(K, d) if spread is None else rng.normal(scale=spread, size=(K, d))
    A = rng.normal(size=(K, d, d)) * 0.4 + np.eye(d)
    labels = rng.integers(K, size=n)
    return centres[labels] + np.einsum("nij,nj->ni", A[labels], rng.normal(size=(n, d)))


def peak_gib():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def min_ess_of_means(idata):
    import arviz as az
    return float(az.ess(idata.posterior["mu"], method="bulk")["mu"].min())


def iteration_ratio(blocks, em_params, hyper, repeats):
    """Median seconds of one EM iteration, one Gibbs sweep (1 chain) and one pass for 4 chains (interleaved)."""
    from threadpoolctl import threadpool_limits
    from gmmflow.core.em_steps import Params, m_step
    from gmmflow.core.assignment_draws import ChainStreams
    from gmmflow.core.gibbs import sweep
    shift = em_params.weights @ em_params.means
    b, h, p = blocks.with_shift(shift), hyper.shifted(shift), em_params.shifted(-shift)
    streams = ChainStreams.spawn(np.random.SeedSequence(0), 4)
    p1, p4 = Params.stack([p]), Params.stack([p] * 4)
    em, one, four = [], [], []
    with threadpool_limits(limits=1, user_api="blas"):
        for r in range(repeats):
            t = time.perf_counter(); m_step(b.e_step(p), p.covariance_type, h, 1e-6); em.append(time.perf_counter() - t)
            t = time.perf_counter(); sweep(b, p1, h, streams[:1], r); one.append(time.perf_counter() - t)
            t = time.perf_counter(); sweep(b, p4, h, streams, r); four.append(time.perf_counter() - t)
    return float(np.median(em)), float(np.median(one)), float(np.median(four))
'''

ESS_FIT = COMMON + r'''
import gmmflow
n, path = int(sys.argv[1]), sys.argv[2]
X = make_data(n, 3, 3)
t = time.perf_counter()
em = gmmflow.fit_em(gmmflow.GMM(3), X, n_init=1, seed=0)
wall = time.perf_counter() - t
gmmflow.save(em, path)
print(json.dumps({"em_wall": wall, "n_iter": int(em.em_estimate.n_iter)}))
'''

ESS_SAMPLE = COMMON + r'''
import gmmflow
n, path, sampler = int(sys.argv[1]), sys.argv[2], sys.argv[3]
X = make_data(n, 3, 3)
em = gmmflow.load(path)
tune = 200 if sampler == "gibbs" else 1000
t = time.perf_counter()
idata = gmmflow.sample_posterior(gmmflow.GMM(3), X, em=em, seed=1, sampler=sampler, draws=1000, tune=tune,
                                 chains=4, progressbar=False)
wall = time.perf_counter() - t
print(json.dumps({"wall": wall, "min_ess": min_ess_of_means(idata), "status": idata.attrs["sampling_status"],
                  "peak_gib": peak_gib()}))
'''

ESS_RATIO = COMMON + r'''
import gmmflow
from gmmflow.results.from_idata import em_params, hyperparameters_from_idata
from gmmflow.workflows.gibbs_sampling import gibbs_data
n, path = int(sys.argv[1]), sys.argv[2]
X = make_data(n, 3, 3)
em = gmmflow.load(path)
_, blocks = gibbs_data(gmmflow.GMM(3), X)
repeats = 40 if n <= 30000 else 15
em_s, one_s, four_s = iteration_ratio(blocks, em_params(em)[1], hyperparameters_from_idata(em), repeats)
print(json.dumps({"em": em_s, "one": one_s, "four": four_s}))
'''

MILLION = COMMON + r'''
import gmmflow
from gmmflow.results.from_idata import em_params, hyperparameters_from_idata
from gmmflow.workflows.gibbs_sampling import gibbs_data
n, tune, draws = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
X = make_data(n, 8, 8, spread=4.0)
t = time.perf_counter()
em = gmmflow.fit_em(gmmflow.GMM(8), X, n_init=1, seed=0)
em_wall = time.perf_counter() - t
_, blocks = gibbs_data(gmmflow.GMM(8), X)
em_it, one, four = iteration_ratio(blocks, em_params(em)[1], hyperparameters_from_idata(em), 3)
t, c = time.perf_counter(), time.process_time()
idata = gmmflow.sample_posterior(gmmflow.GMM(8), X, em=em, seed=1, sampler="gibbs", draws=draws, tune=tune,
                                 chains=4, progressbar=False)
wall, cpu = time.perf_counter() - t, time.process_time() - c
print(json.dumps({"em_wall": em_wall, "em_iter": int(em.em_estimate.n_iter), "em_it": em_it, "one": one,
                  "four": four, "wall": wall, "cpu": cpu, "min_ess": min_ess_of_means(idata),
                  "status": idata.attrs["sampling_status"], "pointwise_draws": int(idata.attrs["pointwise_draws"]),
                  "peak_gib": peak_gib()}))
'''

from em_dask_scale import WRITE  # noqa: E402 - the 20M x 8 store em_dask_scale.py writes (bench/ is on sys.path)

ZARR_RATIO = COMMON + r'''
import gmmflow
from gmmflow.core.em_steps import Params
from gmmflow.models.spec import GMM
from gmmflow.workflows.gibbs_sampling import gibbs_data
path, repeats = sys.argv[1], int(sys.argv[2])
data, blocks = gibbs_data(GMM(8), path)
mean, cov = blocks.moments()
hyper = GMM(8).hyperparameters(mean, cov)
rows, _ = blocks.sample(np.arange(0, data.shape[0], data.shape[0] // 20000))  # a start near the data
rng = np.random.default_rng(0)
start = Params.from_cov(np.full(8, 1 / 8), rows[rng.choice(rows.shape[0], 8, replace=False)],
                        np.broadcast_to(cov, (8, 8, 8)).copy(), "full")
em_s, one_s, four_s = iteration_ratio(blocks, start, hyper, repeats)
print(json.dumps({"em": em_s, "one": one_s, "four": four_s, "peak_gib": peak_gib(),
                  "n_chunks": len(blocks.chunks)}))
'''

ZARR_RUN = COMMON + r'''
import gmmflow
path, em_iters, tune, draws = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
t = time.perf_counter()
em = gmmflow.fit_em(gmmflow.GMM(8), path, n_init=1, seed=0, max_iter=em_iters, tol=0.0)
em_wall = time.perf_counter() - t
t = time.perf_counter()
idata = gmmflow.sample_posterior(gmmflow.GMM(8), path, em=em, seed=1, sampler="gibbs", draws=draws, tune=tune,
                                 chains=4, progressbar=False)
wall = time.perf_counter() - t
print(json.dumps({"em_wall": em_wall, "wall": wall, "groups": sorted(idata.groups()), "peak_gib": peak_gib()}))
'''


def child(code, *args, timeout=None):
    """Run ``code`` in a fresh interpreter; its last stdout line as JSON, or None on timeout."""
    try:
        out = subprocess.run([sys.executable, "-c", code, *map(str, args)], capture_output=True, text=True,
                             check=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return None
    except subprocess.CalledProcessError as err:
        sys.exit(f"child failed:\n{err.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def load():
    return " ".join(f"{x:.1f}" for x in os.getloadavg())


def ess(args):
    ns = [int(n) for n in args.ns.split(",")]
    print("d=3 K=3, centres 8 sds apart; Gibbs 4 x 1000 draws (200 burn-in), NUTS auto 4 x 1000 (1000 tune)")
    print(f"{'n':>8} {'EM s':>7} {'NUTS s':>8} {'ESS':>6} {'ESS/s':>8} {'Gibbs s':>8} {'ESS':>6} {'ESS/s':>8}"
          f" {'Gibbs/NUTS':>10} {'EM it ms':>9} {'sweep/EM':>9} {'4-pass/EM/4':>11}  load")
    nuts_ok = True
    with tempfile.TemporaryDirectory() as tmp:
        for n in ns:
            path = f"{tmp}/em_{n}.nc"
            fit = child(ESS_FIT, n, path)
            g = child(ESS_SAMPLE, n, path, "gibbs")
            nuts = None
            attempted = nuts_ok and n <= args.nuts_max_n
            if attempted:
                nuts = child(ESS_SAMPLE, n, path, "auto", timeout=args.nuts_timeout)
                nuts_ok = nuts is not None
            r = child(ESS_RATIO, n, path)
            g_rate = g["min_ess"] / g["wall"]
            if nuts is None:
                nuts_cols = f"{'>timeout' if attempted else 'not run':>8} {'':>6} {'':>8}"
                ratio = f"{'':>10}"
            else:
                n_rate = nuts["min_ess"] / nuts["wall"]
                nuts_cols = f"{nuts['wall']:>8.1f} {nuts['min_ess']:>6.0f} {n_rate:>8.1f}"
                ratio = f"{g_rate / n_rate:>10.1f}"
            print(f"{n:>8} {fit['em_wall']:>7.2f} {nuts_cols} {g['wall']:>8.1f} {g['min_ess']:>6.0f} {g_rate:>8.1f}"
                  f" {ratio} {r['em'] * 1e3:>9.2f} {r['one'] / r['em']:>9.2f} {r['four'] / 4 / r['em']:>11.2f}"
                  f"  {load()}", flush=True)
    print("ESS: least bulk ESS over the 9 means; ESS/s: per second of the sample_posterior call (NUTS: with"
          " compiling); sweep/EM: one Gibbs sweep over one EM iteration (E + M step) on the same blocks;"
          " 4-pass/EM/4: one pass drawing 4 chains, per chain")


def million(args):
    print(f"n={args.n} d=8 K=8 in memory, Gibbs 4 chains x {args.draws} draws after {args.tune} burn-in sweeps")
    r = child(MILLION, args.n, args.tune, args.draws)
    print(f"EM fit (n_init=1): {r['em_wall']:.1f} s, {r['em_iter']} iterations; one EM iteration "
          f"{r['em_it']:.2f} s; Gibbs sweep {r['one']:.2f} s ({r['one'] / r['em_it']:.2f}x), 4-chain pass "
          f"{r['four']:.2f} s ({r['four'] / 4 / r['em_it']:.2f}x per chain)")
    print(f"sample_posterior(sampler='gibbs'): {r['wall']:.1f} s ({r['wall'] / 60:.1f} min; CPU time of all "
          f"threads {r['cpu']:.1f} s, {r['cpu'] / 60:.1f} min, "
          f"{r['wall'] / r['em_wall']:.1f}x the EM fit), least bulk ESS over the 64 means {r['min_ess']:.0f}, "
          f"{r['min_ess'] / r['wall']:.2f} ESS/s; status {r['status']}; pointwise groups on "
          f"{r['pointwise_draws']} draws per chain; peak RSS {r['peak_gib']:.2f} GiB; load {load()}")


def zarr_bench(args):
    with tempfile.TemporaryDirectory(dir=args.tmp) as tmp:
        store = f"{tmp}/x.zarr"
        subprocess.run([sys.executable, "-c", WRITE, store, str(args.n), str(args.chunk)], check=True)
        print(f"n={args.n} d=8 K=8 from zarr ({args.n * 64 / 2**30:.2f} GiB), chunks of {args.chunk} rows, "
              f"dask threaded scheduler; load {load()}")
        r = child(ZARR_RATIO, store, args.repeats)
        print(f"one EM iteration {r['em']:.1f} s; Gibbs sweep {r['one']:.1f} s ({r['one'] / r['em']:.2f}x); "
              f"4-chain pass {r['four']:.1f} s ({r['four'] / 4 / r['em']:.2f}x per chain); peak RSS "
              f"{r['peak_gib']:.2f} GiB (medians of {args.repeats}, interleaved); load {load()}")
        e = child(ZARR_RUN, store, args.em_iters, args.tune, args.draws)
        print(f"end to end: fit_em ({args.em_iters} iterations) {e['em_wall']:.0f} s, then sample_posterior "
              f"(gibbs, 4 chains, {args.tune} + {args.draws} sweeps) {e['wall']:.0f} s; groups {e['groups']}; "
              f"peak RSS {e['peak_gib']:.2f} GiB; load {load()}")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="what", required=True)
    e = sub.add_parser("ess")
    e.add_argument("--ns", default="300,3000,30000,300000")
    e.add_argument("--nuts-max-n", type=int, default=30000)
    e.add_argument("--nuts-timeout", type=float, default=600.0)
    m = sub.add_parser("million")
    m.add_argument("--n", type=int, default=1_000_000)
    m.add_argument("--tune", type=int, default=50)
    m.add_argument("--draws", type=int, default=250)
    z = sub.add_parser("zarr")
    z.add_argument("--n", type=int, default=20_000_000)
    z.add_argument("--chunk", type=int, default=1_000_000)
    z.add_argument("--repeats", type=int, default=3)
    z.add_argument("--em-iters", type=int, default=3)
    z.add_argument("--tune", type=int, default=1)
    z.add_argument("--draws", type=int, default=4)
    z.add_argument("--tmp", default=None, help="directory for the zarr store (default: the system's)")
    args = ap.parse_args()
    {"ess": ess, "million": million, "zarr": zarr_bench}[args.what](args)


if __name__ == "__main__":
    main()

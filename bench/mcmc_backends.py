"""Issue 11: NUTS backends side by side, cold and warm, against today's path, in one run.

Sections (each configuration in fresh subprocesses, so that "cold" means empty
caches and "warm" a new process on the caches the cold one left):

``faithful``
    Old Faithful standardised, GMM(2, "full"), default prior, 4 chains x (1000 tune
    + 1000 draws), EM with 10 restarts (seed 0) first. Per configuration: import, EM,
    the first ``sample_posterior`` call of the process (compile included), a second
    call in the same process (compiled code reused), the compile / sampling /
    post-processing split, gradients (leapfrog steps, tuning included), max r_hat,
    min bulk ESS, ESS per second of the first call, divergences and a hash of the
    draws (cold and warm process must agree: same seed, same draws).
    Baselines of the same run: ``today_nutpie`` (gmmflow at ``--baseline``, the
    commit before issues 19 and 11: ``sample_posterior(sampler="nutpie")`` on the
    old model form) and ``today_pm_numpyro`` (the same old model through
    ``pm.sample(nuts_sampler="numpyro", chain_method="vectorized")``).
``grad``
    n=30,000, d=3, K=3, well separated: one log-density + gradient evaluation in
    plain numpy (the floor, ``bench/_logp_floor.py``, checked against the PyMC
    model first), of the template's JAX function, and of nutpie's numba function;
    and a ``sample_posterior`` run (2 chains x (1000+1000)) for the per-gradient
    time inside NUTS.
``select``
    ``select_components(faithful, ks=range(1, 6), mcmc=True, seed=0)``, today and now.
``run``
    ``gmmflow run --seed 0`` (the README's main job), today and now: first run on
    empty caches ("after install"), then a second run.

Fresh caches: ``XDG_CACHE_HOME`` (gmmflow's JAX cache), ``PYTENSOR_FLAGS=base_compiledir``
(PyTensor's C and numba caches) and ``NUMBA_CACHE_DIR`` point into a new temporary
directory; ``JAX_COMPILATION_CACHE_DIR`` is unset. The machine is shared: the load
average is recorded next to every figure, and wall and CPU seconds are both kept.

The code measured as "now" is the tree this script sits in; to keep editing while it
runs, run it from an archive of a commit (``GMMFLOW_BENCH_GIT`` names the repository
that holds ``BASELINE``)::

    git archive HEAD | tar -x -C /tmp/snap && GMMFLOW_BENCH_GIT=$PWD python /tmp/snap/bench/mcmc_backends.py ...

Run:   python bench/mcmc_backends.py [--sections faithful,grad,select,run] [--only a,b]
                                      [--out bench/results/mcmc_backends.json]
Print: python bench/mcmc_backends.py --report bench/results/mcmc_backends.json
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

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
BASELINE = "21096ce"  # gmmflow before issues 19 and 11 (nutpie on the old model form)

# name: (code tree, how it samples)
FAITHFUL = {
    "today_nutpie": ("today", "sample_posterior:nutpie"),
    "today_pm_numpyro": ("today", "pm.sample:numpyro"),
    "auto": ("now", "sample_posterior:auto"),
    "numpyro": ("now", "sample_posterior:numpyro"),
    "nutpie": ("now", "sample_posterior:nutpie"),
    "nutpie_jax": ("now", "nutpie-jax"),
    "pm_numpyro": ("now", "pm.sample:numpyro"),
    "pymc": ("now", "sample_posterior:pymc"),
}


# ==========================================================================
# Children (one configuration in this process; print one RESULT line)
# ==========================================================================
def _clock():
    return time.perf_counter(), time.process_time()


def _since(c):
    return time.perf_counter() - c[0], time.process_time() - c[1]


class Timers:
    """Wall and CPU seconds spent in chosen functions (patched in place), and gradients counted."""

    def __init__(self):
        self.spent, self.grads = {}, 0

    def wrap(self, owner, name, label, count=None):
        original = getattr(owner, name, None)
        if original is None:
            return

        def timed(*args, **kwargs):
            c = _clock()
            out = original(*args, **kwargs)
            wall, cpu = _since(c)
            w0, c0 = self.spent.get(label, (0.0, 0.0))
            self.spent[label] = (w0 + wall, c0 + cpu)
            if count is not None:
                self.grads += count(out, args, kwargs)
            return out

        setattr(owner, name, timed)

    def take(self):
        out, grads = self.spent, self.grads
        self.spent, self.grads = {}, 0
        return out, grads


def _nutpie_grads(idata, args, kwargs):
    return int(sum(int(idata[g]["n_steps"].sum()) for g in ("sample_stats", "warmup_sample_stats") if g in idata))


def _numpyro_grads(out, args, kwargs):
    _, stats, warmup = out
    return int(stats["n_steps"].sum() + warmup["n_steps"].sum())


def _instrument():
    """Patch the functions whose time the tables split out (today's and now's code alike)."""
    import nutpie

    timers = Timers()
    timers.wrap(nutpie, "compile_pymc_model", "compile")
    original_sample = nutpie.sample

    def sample_keeping_warmup(*args, **kwargs):  # the warmup stats count gradients; the draws are unchanged
        return original_sample(*args, **{**kwargs, "save_warmup": True})

    nutpie.sample = sample_keeping_warmup
    timers.wrap(nutpie, "sample", "sample", count=_nutpie_grads)
    try:
        from gmmflow.workflows import nuts_backends, numpyro_nuts
    except ImportError:  # today's code
        return timers
    timers.wrap(nuts_backends, "template_maps", "build")
    timers.wrap(numpyro_nuts, "jax_log_density", "compile")
    timers.wrap(numpyro_nuts, "compile_programs", "compile")
    timers.wrap(numpyro_nuts, "run_chains", "sample", count=_numpyro_grads)
    return timers


def _faithful():
    import gmmflow

    X = gmmflow.load_dataset("faithful")
    return (X - X.mean("obs_id")) / X.std("obs_id")


def _draw_hash(post) -> str:
    import hashlib

    import numpy as np

    h = hashlib.sha256()
    for k in ("w", "mu", "cov"):
        h.update(np.ascontiguousarray(post[k].values, dtype=np.float64).tobytes())
    return h.hexdigest()[:16]


def _quality(post) -> dict:
    import warnings

    import arviz as az
    import numpy as np

    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        s = az.summary(post, var_names=["w", "mu", "cov"], kind="diagnostics").dropna(subset=["r_hat"])
    return {"max_rhat": float(s["r_hat"].max()), "min_ess_bulk": float(s["ess_bulk"].min()),
            "min_ess_tail": float(s["ess_tail"].min()), "draw_hash": _draw_hash(post)}


def _pm_numpyro(spec, X, em, draws, tune, chains, seed):
    """``pm.sample(nuts_sampler="numpyro", chain_method="vectorized")`` on the code tree's own model."""
    import pymc as pm

    est = em["em_estimate"]
    with spec.pymc_model(X):
        return pm.sample(draws=draws, tune=tune, chains=chains, nuts_sampler="numpyro", random_seed=seed,
                         initvals={"w": est.w.values, "mu": est.mu.values, "cov": est.cov.values},
                         progressbar=False, compute_convergence_checks=False,
                         nuts_sampler_kwargs={"chain_method": "vectorized"})


def _nutpie_jax(spec, X, em, draws, tune, chains, seed):
    """nutpie's JAX backend on the template (data and hyper-parameters as inputs)."""
    import nutpie

    from gmmflow.results.from_idata import em_params, hyperparameters_from_idata
    from gmmflow.workflows import compile_cache, nuts_backends

    maps = nuts_backends.template_maps(spec, *X.shape)
    compiled = compile_cache.compiled(
        ("nutpie-jax", *nuts_backends._shape_key(spec, *X.shape)),
        lambda: nutpie.compile_pymc_model(maps.template.model, backend="jax", gradient_backend="jax",
                                          freeze_model=False, jitter_rvs=set()))
    p = em_params(em)[1]
    base = nuts_backends.base_point(maps, {"w": p.weights, "mu": p.means, "cov": p.cov})
    compiled = compiled.with_data(**maps.template.input_values(X.values, hyperparameters_from_idata(em)))
    import dataclasses

    import numpy as np

    compiled = dataclasses.replace(compiled, _make_initial_points=lambda s: base + 0.05 * np.random.default_rng(
        int(s) % (1 << 63)).standard_normal(base.size))
    return nutpie.sample(compiled, draws=draws, tune=tune, chains=chains, cores=min(chains, 2), seed=seed,
                         progress_bar=False)


def faithful_child(name, draws, tune, chains, seed):
    import warnings

    warnings.simplefilter("ignore")
    c = _clock()
    import gmmflow

    timers = _instrument()
    t_import = _since(c)
    X = _faithful()
    spec = gmmflow.GMM(2, "full")
    c = _clock()
    em = gmmflow.fit_em(spec, X, seed=0, n_init=10)
    t_em = _since(c)
    _, how = FAITHFUL[name]
    kind, _, sampler = how.partition(":")

    def once():
        if kind == "sample_posterior":
            idata = gmmflow.sample_posterior(spec, X, em=em, draws=draws, tune=tune, chains=chains, seed=seed,
                                             sampler=sampler, progressbar=False)
            return idata, idata.attrs.get("sampler", sampler), int(idata.sample_stats["diverging"].sum())
        run = _pm_numpyro if kind == "pm.sample" else _nutpie_jax
        idata = run(spec, X, em, draws, tune, chains, seed)
        return idata, how, int(idata.sample_stats["diverging"].sum())

    out = {"config": name, "t_import": t_import, "t_em": t_em, "load": os.getloadavg()[0]}
    for call in ("first", "second"):
        c = _clock()
        idata, used, divergences = once()
        wall, cpu = _since(c)
        spent, grads = timers.take()
        out[call] = {"wall": wall, "cpu": cpu, "spent": spent, "grads": grads, "sampler": used,
                     "divergences": divergences, **_quality(idata.posterior)}
    print("RESULT " + json.dumps(out), flush=True)


def grad_child(which):
    """One logp + gradient evaluation at n=30,000, d=3, K=3: ``floor``, ``jax`` or ``numba``."""
    import warnings

    warnings.simplefilter("ignore")
    import numpy as np

    import gmmflow
    from _logp_floor import floor_logp_grad, simulated
    from gmmflow.results.from_idata import em_params, hyperparameters_from_idata
    from gmmflow.workflows import nuts_backends

    Xv, _, _ = simulated(30_000, 3, 3)
    spec = gmmflow.GMM(3, "full")
    em = gmmflow.fit_em(spec, Xv, seed=0, n_init=3)
    hyper, p = hyperparameters_from_idata(em), em_params(em)[1]
    maps = nuts_backends.template_maps(spec, *Xv.shape)
    theta = nuts_backends.start_points(maps, {"w": p.weights, "mu": p.means, "cov": p.cov}, 1,
                                       np.random.default_rng(0))[0]
    inputs = maps.template.input_values(Xv, hyper)
    out = {"which": which, "n": Xv.shape[0], "load": os.getloadavg()[0]}
    if which == "floor":
        from threadpoolctl import threadpool_limits

        args = (Xv, 3, hyper.alpha, hyper.dof, hyper.scale_chol, hyper.mean, hyper.shrinkage)
        lp, g = floor_logp_grad(theta, *args)
        model = spec.pymc_model(Xv, hyperparameters=hyper)  # the reference: PyMC's own logp and gradient
        from gmmflow.models.pymc_template import split_flat

        point = dict(zip(maps.template.value_names, split_flat(maps.template, theta)))
        out["abs_err_logp_vs_pymc"] = abs(lp - float(model.compile_logp()(point)))
        g_ref = model.compile_dlogp()(point)
        out["rel_err_grad_vs_pymc"] = float(np.max(np.abs(g - g_ref)) / np.max(np.abs(g_ref)))
        with threadpool_limits(1):
            out |= _time_call(lambda: floor_logp_grad(theta, *args))
        out["logp"] = float(lp)
    elif which == "jax":
        import jax

        from gmmflow.models.pymc_template import INPUT_NAMES
        from gmmflow.workflows import numpyro_nuts

        jax.config.update("jax_enable_x64", True)
        density = numpyro_nuts.jax_log_density(maps.template)
        args = tuple(jax.numpy.asarray(inputs[k]) for k in INPUT_NAMES)
        offsets = np.cumsum([0] + [int(np.prod(s, dtype=int)) for s in maps.template.value_shapes])

        def unflat(x):  # split_flat, on a traced array
            return [x[a:b].reshape(s) for a, b, s in zip(offsets[:-1], offsets[1:], maps.template.value_shapes)]

        vg = jax.jit(jax.value_and_grad(lambda x, a: density(unflat(x), a)))
        x = jax.numpy.asarray(theta)
        c = _clock()
        jax.block_until_ready(vg(x, args))
        out["t_compile"] = _since(c)[0]
        out |= _time_call(lambda: jax.block_until_ready(vg(x, args)))
        out["logp"] = float(vg(x, args)[0])
    else:
        import nutpie

        c = _clock()
        compiled = nutpie.compile_pymc_model(maps.template.model, jitter_rvs=set())
        out["t_compile"] = _since(c)[0]
        fn = compiled.logp_func
        shared = [inputs[v.name] for v in fn.get_shared()]
        for v, value in zip(fn.get_shared(), shared):
            v.set_value(value)
        out |= _time_call(lambda: fn(theta))
        out["logp"] = float(fn(theta)[0])
    print("RESULT " + json.dumps(out), flush=True)


def _time_call(f, min_time=2.0, max_reps=10_000) -> dict:
    import statistics

    f()
    times = []
    while sum(times) < min_time and len(times) < max_reps:
        t = time.perf_counter()
        f()
        times.append(time.perf_counter() - t)
    return {"median_s": statistics.median(times), "min_s": min(times), "reps": len(times)}


def big_child(draws, chains):
    """sample_posterior at n=30,000, d=3, K=3 (2 chains): the per-gradient time inside NUTS."""
    import warnings

    warnings.simplefilter("ignore")
    import gmmflow
    from _logp_floor import simulated

    timers = _instrument()
    Xv, _, _ = simulated(30_000, 3, 3)
    spec = gmmflow.GMM(3, "full")
    em = gmmflow.fit_em(spec, Xv, seed=0, n_init=3)
    c = _clock()
    idata = gmmflow.sample_posterior(spec, Xv, em=em, draws=draws, tune=draws, chains=chains, seed=1,
                                     progressbar=False)
    wall, cpu = _since(c)
    spent, grads = timers.take()
    print("RESULT " + json.dumps({"wall": wall, "cpu": cpu, "spent": spent, "grads": grads, "load": os.getloadavg()[0],
                                  "sampler": idata.attrs["sampler"], **_quality(idata.posterior)}), flush=True)


def select_child():
    import warnings

    warnings.simplefilter("ignore")
    c = _clock()
    import gmmflow

    t_import = _since(c)
    X = gmmflow.load_dataset("faithful")
    c = _clock()
    table = gmmflow.select_components(X, ks=range(1, 6), mcmc=True, seed=0)
    wall, cpu = _since(c)
    print("RESULT " + json.dumps({"t_import": t_import, "wall": wall, "cpu": cpu, "load": os.getloadavg()[0],
                                  "best_loo": list(map(str, table.chosen("loo"))),
                                  "best_bic": list(map(str, table.chosen("bic")))}), flush=True)


# ==========================================================================
# Parent
# ==========================================================================
GIT = Path(os.environ.get("GMMFLOW_BENCH_GIT", ROOT))  # the repository holding BASELINE (run from an archive)


def _code_tree(which: str, tmp: Path) -> Path:
    """``now``: the tree this script is in; ``today``: the baseline commit, extracted once into ``tmp``."""
    if which == "now":
        return ROOT
    tree = tmp / f"gmmflow-{BASELINE}"
    if not tree.exists():
        tree.mkdir(parents=True)
        archive = subprocess.run(["git", "-C", str(GIT), "archive", BASELINE], check=True, capture_output=True)
        subprocess.run(["tar", "-x", "-C", str(tree)], input=archive.stdout, check=True)
    return tree


def _env(tree: Path, cache: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "JAX_COMPILATION_CACHE_DIR"}
    env.update({"XDG_CACHE_HOME": str(cache / "xdg"), "PYTENSOR_FLAGS": f"base_compiledir={cache}/pytensor",
                "NUMBA_CACHE_DIR": str(cache / "numba"), "MPLBACKEND": "Agg",
                "PYTHONPATH": os.pathsep.join([str(HERE), str(tree)])})
    return env


def _spawn(args: list[str], env: dict, cwd: Path | None = None, timeout: float = 7200) -> dict:
    load = os.getloadavg()[0]
    c = _clock()
    p = subprocess.run([sys.executable, *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    wall = time.perf_counter() - c[0]
    lines = [ln for ln in p.stdout.splitlines() if ln.startswith("RESULT ")]
    out = json.loads(lines[-1][7:]) if lines else {}
    if p.returncode != 0 or (not lines and args[0] != "-c"):
        out["error"] = (p.stderr or p.stdout)[-2000:]
    out |= {"process_wall": wall, "load_start": load, "load_end": os.getloadavg()[0]}
    return out


def _cold_then_warm(args: list[str], tree: Path, cwd: Path | None = None) -> dict:
    with tempfile.TemporaryDirectory(prefix="gmmflow-bench-") as cache:
        env = _env(tree, Path(cache))
        cold = _spawn(args, env, cwd)
        print("  cold", json.dumps(cold)[:300], flush=True)
        warm = _spawn(args, env, cwd)
        print("  warm", json.dumps(warm)[:300], flush=True)
    return {"cold": cold, "warm": warm}


def _save(results: dict, path: str) -> None:
    if path:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(json.dumps(results, indent=1))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--child", nargs="+")
    ap.add_argument("--sections", default="faithful,grad,select,run")
    ap.add_argument("--only", default="", help="faithful configurations to run (default: all)")
    ap.add_argument("--grad", default="floor,jax,numba,big",
                    help="grad section parts: floor, jax, numba (its compile at n=30,000 is long), big")
    ap.add_argument("--draws", type=int, default=1000)
    ap.add_argument("--chains", type=int, default=4)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--which", default="today,now",
                    help="code trees for the select and run sections: today (the baseline commit), now")
    ap.add_argument("--out", default="")
    ap.add_argument("--report")
    a = ap.parse_args()
    if a.child:
        kind, *rest = a.child
        if kind == "faithful":
            return faithful_child(rest[0], a.draws, a.draws, a.chains, a.seed)
        if kind == "grad":
            return grad_child(rest[0])
        if kind == "big":
            return big_child(a.draws, a.chains)
        return select_child()
    if a.report:
        return report(json.loads(Path(a.report).read_text()))

    results = json.loads(Path(a.out).read_text()) if a.out and Path(a.out).exists() else {}
    results.setdefault("meta", {})["baseline"] = BASELINE
    results["meta"]["nproc"] = os.cpu_count()
    results["meta"]["commit"] = os.environ.get("GMMFLOW_BENCH_COMMIT", "")
    me = str(Path(__file__).resolve())
    with tempfile.TemporaryDirectory(prefix="gmmflow-trees-") as trees:
        trees = Path(trees)
        sections = a.sections.split(",")
        if "faithful" in sections:
            for name in (a.only.split(",") if a.only else FAITHFUL):
                print("faithful", name, flush=True)
                tree = _code_tree(FAITHFUL[name][0], trees)
                results.setdefault("faithful", {})[name] = _cold_then_warm(
                    [me, "--child", "faithful", name, "--draws", str(a.draws), "--chains", str(a.chains),
                     "--seed", str(a.seed)], tree)
                _save(results, a.out)
        if "grad" in sections:
            for which in [w for w in a.grad.split(",") if w != "big"]:
                print("grad", which, flush=True)
                with tempfile.TemporaryDirectory(prefix="gmmflow-bench-") as cache:
                    results.setdefault("grad", {})[which] = _spawn([me, "--child", "grad", which],
                                                                   _env(ROOT, Path(cache)))
                print("  ", json.dumps(results["grad"][which])[:300], flush=True)
                _save(results, a.out)
            if "big" in a.grad.split(","):
                print("big", flush=True)
                results["big"] = _cold_then_warm([me, "--child", "big", "--draws", "1000", "--chains", "2"], ROOT)
                _save(results, a.out)
        if "select" in sections:
            for which in a.which.split(","):
                print("select", which, flush=True)
                results.setdefault("select", {})[which] = _cold_then_warm([me, "--child", "select"],
                                                                          _code_tree(which, trees))
                _save(results, a.out)
        if "run" in sections:
            for which in a.which.split(","):
                print("run", which, flush=True)
                with tempfile.TemporaryDirectory(prefix="gmmflow-run-") as work:
                    code = ("import sys; from gmmflow.cli import main; "
                            "sys.exit(main(['run', '--seed', '0', '--overwrite', '--quiet', '--out', 'out']))")
                    results.setdefault("run", {})[which] = _cold_then_warm(["-c", code], _code_tree(which, trees),
                                                                           cwd=Path(work))
                _save(results, a.out)
    report(results)


# ==========================================================================
# Report
# ==========================================================================
def _f(x, fmt="{:.1f}"):
    return "-" if x is None or x != x else fmt.format(x)


def report(results: dict) -> None:
    fa = results.get("faithful", {})
    if fa:
        print("Old Faithful, GMM(2, 'full'), 4 x (1000 + 1000); seconds (wall unless 'cpu'); 'first' = the first "
              "sample_posterior call of the process, compile included; 'second' = again in the same process")
        print(f"{'config':<18}{'proc':<5}{'import':>7}{'EM':>6}{'first':>7}{'cpu':>7}{'build':>6}{'compile':>8}"
              f"{'sample':>7}{'second':>7}{'grads':>7}{'us/grad':>8}{'rhat':>6}{'ESS':>6}{'ESS/s':>6}{'div':>4}"
              f"{'load':>6}  hash")
        for name, runs in fa.items():
            for which in ("cold", "warm"):
                r = runs.get(which, {})
                if "first" not in r:
                    print(f"{name:<18}{which:<5} ERROR {r.get('error', '')[-200:]!r}")
                    continue
                f, s = r["first"], r["second"]
                sp = f["spent"]
                sample = sp.get("sample", (float("nan"),))[0]
                per = sample / f["grads"] * 1e6 if f["grads"] else float("nan")
                print(f"{name:<18}{which:<5}{r['t_import'][0]:>7.1f}{r['t_em'][0]:>6.1f}{f['wall']:>7.1f}"
                      f"{f['cpu']:>7.1f}{_f(sp.get('build', (float('nan'),))[0]):>6}"
                      f"{_f(sp.get('compile', (float('nan'),))[0]):>8}{_f(sample):>7}{s['wall']:>7.1f}"
                      f"{f['grads']:>7d}{_f(per, '{:.0f}'):>8}{f['max_rhat']:>6.3f}{f['min_ess_bulk']:>6.0f}"
                      f"{f['min_ess_bulk'] / f['wall']:>6.0f}{f['divergences']:>4d}{r['load_start']:>6.1f}  "
                      f"{f['draw_hash']}{'' if which == 'cold' else (' same draws' if f['draw_hash'] == runs['cold'].get('first', {}).get('draw_hash') else ' DIFFERENT draws')}")
        base = {k: fa[k]["cold"]["first"]["wall"] for k in ("today_nutpie", "today_pm_numpyro")
                if "first" in fa.get(k, {}).get("cold", {})}
        if base:
            print("\nratio of the first call (cold process, compile included) to the baselines of this run:")
            for name, runs in fa.items():
                if "first" in runs.get("cold", {}):
                    t = runs["cold"]["first"]["wall"]
                    warm = runs.get("warm", {}).get("first", {}).get("wall", float("nan"))
                    print(f"  {name:<18} {t:7.1f} s  " + "  ".join(f"/ {k} {t / v:5.2f}" for k, v in base.items())
                          + f"   warm process: {warm:6.1f} s")
    gr = results.get("grad", {})
    if gr:
        fl = gr.get("floor", {})
        print("\nn=30,000, d=3, K=3: one log-density + gradient call (min / median of repeated calls)")
        for which, r in gr.items():
            if "median_s" not in r:
                print(f"  {which:<6} ERROR {r.get('error', '')[-200:]!r}")
                continue
            ratio = (f"x floor: min {r['min_s'] / fl['min_s']:5.2f}, median {r['median_s'] / fl['median_s']:5.2f}"
                     if "min_s" in fl else "")
            extra = (f"|logp - PyMC| {r['abs_err_logp_vs_pymc']:.1e}, grad rel. err {r['rel_err_grad_vs_pymc']:.1e}"
                     if which == "floor" else f"compile {r['t_compile']:.1f} s, logp - floor's "
                     f"{r['logp'] - fl.get('logp', float('nan')):.1e}")
            print(f"  {which:<6} min {r['min_s'] * 1e3:8.2f} ms  median {r['median_s'] * 1e3:8.2f} ms  {ratio}"
                  f"  ({extra}; load {r['load']:.1f})")
    big = results.get("big", {})
    for which in ("cold", "warm"):
        r = big.get(which, {})
        if "spent" in r:
            sample = r["spent"]["sample"][0]
            print(f"  sample_posterior 2 x (1000+1000), {which} process: {r['wall']:.1f} s (sampling {sample:.1f} s, "
                  f"{r['grads']} gradients, {sample / r['grads'] * 1e3:.2f} ms per gradient on 2 threads; "
                  f"r_hat {r['max_rhat']:.3f}, ESS {r['min_ess_bulk']:.0f}; load {r['load_start']:.1f})")
    for section, label in (("select", "select_components(faithful, ks=range(1, 6), mcmc=True)"),
                           ("run", "gmmflow run --seed 0 (process wall, import included)")):
        rows = results.get(section, {})
        if not rows:
            continue
        print(f"\n{label}:")
        for which, runs in rows.items():
            for proc in ("cold", "warm"):
                r = runs.get(proc, {})
                t = r.get("wall", r.get("process_wall", float("nan")))
                err = f" ERROR {r['error'][-200:]!r}" if "error" in r else ""
                print(f"  {which:<6} {proc:<5} {t:7.1f} s (process {r.get('process_wall', float('nan')):6.1f} s; "
                      f"load {r.get('load_start', float('nan')):.1f}-{r.get('load_end', float('nan')):.1f}){err}")
        today, now = rows.get("today", {}), rows.get("now", {})
        key = "wall" if section == "select" else "process_wall"
        ratios = [f"{p} {now[p][key] / today[p][key]:.3f}" for p in ("cold", "warm")
                  if key in now.get(p, {}) and key in today.get(p, {})]
        if ratios:
            print("  ratio now / today: " + ", ".join(ratios))


if __name__ == "__main__":
    sys.path.insert(0, str(HERE))
    main()

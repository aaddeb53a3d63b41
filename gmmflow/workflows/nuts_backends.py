"""NUTS backends: sample the PyMC model from given start values, return raw draws.

Every backend samples the log-density of the spec's PyMC model (its
template, :mod:`gmmflow.models.pymc_template`: data and hyper-parameters as
inputs, so what a backend compiles is kept for the process by
:mod:`~gmmflow.workflows.compile_cache` and reused for any data of the same
shape) and returns an ``InferenceData`` with ``posterior`` (``w``, ``mu``,
``cov``/``var``) and ``sample_stats`` (``diverging``, tree depth, step size,
energy, acceptance, ...). Every chain starts at the constrained start values
(the EM estimate) mapped to the unconstrained space, plus a seeded
N(0, JITTER^2) jitter per coordinate.

Backends, in the order ``"auto"`` tries them (the first whose packages
import): ``"numpyro"``, numpyro's NUTS kernel on the JAX-compiled
log-density, driven by :mod:`~gmmflow.workflows.numpyro_nuts`; ``"nutpie"``,
nutpie on the numba-compiled log-density; ``"pymc"``, PyMC's own NUTS
(PyTensor's C backend, compiled per call). The order is the one
``bench/mcmc_backends.py`` measured: on Old Faithful (K=2 full, 4 x
(1000+1000)) numpyro compiles in seconds where numba takes about a minute,
and both sample in seconds.
"""

from __future__ import annotations

import dataclasses
import importlib

import arviz as az
import numpy as np
import xarray as xr

from gmmflow.workflows import compile_cache, numpyro_nuts
from gmmflow.workflows.sampler_options import check_sampler_name

JITTER = 0.05  # sd of the start-point jitter, in the unconstrained space

BACKENDS = ("numpyro", "nutpie", "pymc")
# the modules each sampler needs ("gibbs", gmmflow's own Gibbs sampler, is not a NUTS backend: never "auto")
REQUIREMENTS = {"numpyro": ("jax", "numpyro"), "nutpie": ("nutpie", "numba"), "pymc": (), "gibbs": ()}


def installed(backend: str) -> bool:
    """Whether the packages ``backend`` needs import."""
    try:
        for module in REQUIREMENTS[backend]:
            importlib.import_module(module)
    except ImportError:
        return False
    return True


def available_sampler(sampler: str) -> str:
    """Resolve ``"auto"`` to the first backend of :data:`BACKENDS` that is installed; check a named one."""
    check_sampler_name(sampler)
    if sampler == "auto":
        return next(b for b in BACKENDS if installed(b))
    if not installed(sampler):
        needs = " and ".join(REQUIREMENTS[sampler])
        raise ImportError(f"sampler={sampler!r} needs {needs} (gmmflow dependencies): pip install {needs}, or "
                          "use sampler='auto'.")
    return sampler


# --------------------------------------------------------------------------
# The model of a spec and data shape, its start points
# --------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True, eq=False)
class TemplateMaps:
    """A spec's template for one data shape, with its maps to and from the unconstrained space."""

    template: object
    to_unconstrained: object
    to_constrained: object  # batched over (chain, draw)


def template_maps(spec, n: int, d: int, layout=None) -> TemplateMaps:
    """The template of ``spec`` for (n, d) data with missingness ``layout`` (None: complete) and its
    point maps, built once per process."""
    from gmmflow.models.pymc_model import constrained_point_function, unconstrained_point_function
    from gmmflow.models.pymc_template import model_template

    def build():
        template = model_template(spec, n, d, layout)
        return TemplateMaps(template, unconstrained_point_function(template.model),
                            constrained_point_function(template.model, batch_ndim=2))

    return compile_cache.compiled(("template", *_shape_key(spec, n, d, layout)), build)


def _shape_key(spec, n: int, d: int, layout=None) -> tuple:
    return spec.covariance_type, spec.n_components, spec.noise, int(n), int(d), layout


def _data_key(X: np.ndarray) -> tuple:
    """``(n, d, layout)`` of data ``X``: what a template and its compiled code are for."""
    from gmmflow.models.pymc_template import data_layout

    return (*X.shape, data_layout(X))


def base_point(maps: TemplateMaps, start: dict) -> np.ndarray:
    """The constrained ``start`` values as one flat unconstrained vector."""
    from gmmflow.models.pymc_template import flatten_point

    return flatten_point(maps.template, maps.to_unconstrained(start))


def start_points(maps: TemplateMaps, start: dict | list[dict], chains: int, rng: np.random.Generator) -> np.ndarray:
    """(chains, size) flat unconstrained start vectors: ``start`` mapped (one point for every chain, or
    a list: chain c starts at ``start[c % len(start)]``), plus the jitter."""
    points = start if isinstance(start, list) else [start]
    base = np.stack([base_point(maps, p) for p in points])[np.arange(chains) % len(points)]
    return base + JITTER * rng.standard_normal(base.shape)


# --------------------------------------------------------------------------
# Backends
# --------------------------------------------------------------------------
def run_numpyro(spec, X, hyper, start, draws, tune, chains, seed, jitter_rng, progressbar, log_noise_density=None):
    """numpyro's NUTS kernel on the JAX-compiled log-density, one thread per chain."""
    import jax

    jax.config.update("jax_enable_x64", True)
    compile_cache.use_persistent_jax_cache()
    key = _data_key(X)
    maps = template_maps(spec, *key)
    def density():  # the PyMC graph as JAX: built only when no process has stored the programs
        return compile_cache.compiled(("numpyro density", *_shape_key(spec, *key)),
                                      lambda: numpyro_nuts.jax_log_density(maps.template))

    programs = compile_cache.compiled(
        ("numpyro", *_shape_key(spec, *key), int(tune)),
        lambda: numpyro_nuts.compile_programs(density, maps.template, int(tune)))
    starts = start_points(maps, start, chains, jitter_rng)
    inputs = maps.template.input_values(X, hyper, log_noise_density)
    values, stats, warmup = numpyro_nuts.run_chains(programs, starts, inputs,
                                                    maps.template, draws, seed, progressbar)
    constrained = maps.to_constrained(dict(zip(maps.template.value_names, values)))
    dims = maps.template.model.named_vars_to_dims
    posterior = xr.Dataset({name: (("chain", "draw", *dims[name]), v) for name, v in constrained.items()})
    return az.InferenceData(posterior=posterior, sample_stats=numpyro_nuts.stats_dataset(stats),
                            warmup_sample_stats=numpyro_nuts.stats_dataset(warmup))


def run_nutpie(spec, X, hyper, start, draws, tune, chains, seed, jitter_rng, progressbar, log_noise_density=None):
    """nutpie's NUTS on the numba-compiled log-density (data and hyper-parameters set with ``with_data``)."""
    import nutpie

    key = _data_key(X)
    maps = template_maps(spec, *key)
    compiled = compile_cache.compiled(("nutpie", *_shape_key(spec, *key)),
                                      lambda: nutpie.compile_pymc_model(maps.template.model, jitter_rvs=set()))
    base = base_point(maps, start)
    stream = int(jitter_rng.integers(1 << 62))

    def jittered(chain_seed):  # each chain (nutpie passes its seed): the start point plus seeded jitter
        rng = np.random.default_rng(np.random.SeedSequence([stream, int(chain_seed) % (1 << 63)]))
        return base + JITTER * rng.standard_normal(base.shape)

    compiled = dataclasses.replace(compiled.with_data(**maps.template.input_values(X, hyper, log_noise_density)),
                                   initial_point_func=jittered)
    return nutpie.sample(compiled, draws=draws, tune=tune, chains=chains, cores=min(chains, 2),
                         seed=seed, progress_bar=progressbar, save_warmup=False)


def run_pymc(spec, X, hyper, start, draws, tune, chains, seed, jitter_rng, progressbar, log_noise_density=None):
    """PyMC's own NUTS (``pm.sample``), chains on up to two processes."""
    import pymc as pm

    from gmmflow.models.pymc_template import split_flat

    maps = template_maps(spec, *_data_key(X))
    flat = start_points(maps, start, chains, jitter_rng)
    to_values = _single(maps.to_constrained)
    initvals = [to_values(dict(zip(maps.template.value_names, split_flat(maps.template, f)))) for f in flat]
    missing = "error" if maps.template.layout is None else "marginalize"
    log_volume = None if log_noise_density is None else -log_noise_density
    with spec.pymc_model(X, hyperparameters=hyper, missing=missing, noise_log_volume=log_volume) as pm_model:
        return pm.sample(draws=draws, tune=tune, chains=chains, cores=min(chains, 2), init="adapt_diag",
                         initvals=initvals, random_seed=seed, progressbar=progressbar, model=pm_model,
                         compute_convergence_checks=False, return_inferencedata=True)


def _single(batched):
    """A (chain, draw)-batched point map applied to one point."""
    def single(point: dict) -> dict:
        mapped = batched({k: np.asarray(v)[None, None] for k, v in point.items()})
        return {k: v[0, 0] for k, v in mapped.items()}

    return single


RUNNERS = {"numpyro": "run_numpyro", "nutpie": "run_nutpie", "pymc": "run_pymc"}


def run(backend: str, spec, X: np.ndarray, hyper, start: dict | list[dict], draws: int, tune: int, chains: int,
        seed: int, jitter_rng: np.random.Generator, progressbar: bool,
        log_noise_density: float | None = None) -> az.InferenceData:
    """Raw NUTS draws of ``spec``'s model given data ``X`` (n, d), ``hyper`` and, for a noise
    model, its ``-log V``, from ``backend``; ``start``: the constrained start values of every chain,
    or a list of them, one per chain (numpyro and pymc; nutpie takes one start for all chains)."""
    runner = globals()[RUNNERS[backend]]  # looked up at call time (tests replace a runner)
    return runner(spec, X, hyper, start, draws, tune, chains, seed, jitter_rng, progressbar, log_noise_density)

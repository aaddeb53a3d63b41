"""NUTS backends: run the PyMC model's NUTS from given start values, return raw draws.

Each backend takes the compiled-to-be ``pm.Model``, the constrained start
values of its free variables (the EM estimate), and returns an
``InferenceData`` with ``posterior`` (the model's own variables) and
``sample_stats``. Every chain starts at the start values plus a small seeded
jitter in the unconstrained space.
"""

from __future__ import annotations

import dataclasses
from importlib.util import find_spec

import numpy as np

from gmmflow.workflows.sampler_options import check_sampler_name

JITTER = 0.05  # sd of the start-point jitter, in the unconstrained space


def available_sampler(sampler: str) -> str:
    """Resolve ``"auto"``: nutpie (compiled with numba) if installed, else PyMC's NUTS."""
    check_sampler_name(sampler)
    if sampler == "auto":
        return "nutpie" if find_spec("nutpie") and find_spec("numba") else "pymc"
    if sampler == "nutpie" and not find_spec("nutpie"):
        raise ImportError("sampler='nutpie' needs nutpie (a gmmflow dependency): pip install nutpie, or use "
                          "sampler='pymc'.")
    return sampler


def _jittered_starts(to_point, start: dict, chains: int, rng) -> list[dict]:
    base = to_point(start)
    return [{k: v + JITTER * rng.standard_normal(np.shape(v)) for k, v in base.items()} for _ in range(chains)]


def run_pymc(pm_model, start, draws, tune, chains, seed, jitter_rng, progressbar):
    """PyMC's own NUTS (``pm.sample``), chains on up to two processes."""
    import pymc as pm

    from gmmflow.models.pymc_model import constrained_point_function, unconstrained_point_function

    to_values = constrained_point_function(pm_model)
    starts = _jittered_starts(unconstrained_point_function(pm_model), start, chains, jitter_rng)
    initvals = [to_values(p) for p in starts]
    with pm_model:
        return pm.sample(draws=draws, tune=tune, chains=chains, cores=min(chains, 2), init="adapt_diag",
                         initvals=initvals, random_seed=seed, progressbar=progressbar,
                         compute_convergence_checks=False, return_inferencedata=True)


def run_nutpie(pm_model, start, draws, tune, chains, seed, jitter_rng, progressbar):
    """nutpie's NUTS on the model compiled with numba."""
    import nutpie

    compiled = nutpie.compile_pymc_model(pm_model, initial_points=start, jitter_rvs=set())
    base = np.asarray(compiled.initial_point_func(0), dtype=np.float64)

    stream = int(jitter_rng.integers(1 << 62))

    def jittered(chain_seed):  # each chain (nutpie passes its seed): the EM point plus seeded jitter
        rng = np.random.default_rng(np.random.SeedSequence([stream, int(chain_seed) % (1 << 63)]))
        return base + JITTER * rng.standard_normal(base.shape)

    compiled = dataclasses.replace(compiled, initial_point_func=jittered)
    return nutpie.sample(compiled, draws=draws, tune=tune, chains=chains, cores=min(chains, 2),
                         seed=seed, progress_bar=progressbar, save_warmup=False)


def run(backend: str, pm_model, start: dict, draws: int, tune: int, chains: int, seed: int,
        jitter_rng: np.random.Generator, progressbar: bool):
    """Raw NUTS draws from ``backend`` (``"nutpie"`` or ``"pymc"``)."""
    runner = run_nutpie if backend == "nutpie" else run_pymc
    return runner(pm_model, start, draws, tune, chains, seed, jitter_rng, progressbar)

"""NUTS with numpyro's kernel on the PyMC model's JAX-compiled log-density, driven by gmmflow.

The density is the PyMC model's own: the template of the spec
(:mod:`gmmflow.models.pymc_template`) turned into a JAX function by PyMC's
``get_jaxified_graph``, with the data and the hyper-parameters as arguments.
The transition is numpyro's NUTS kernel (``numpyro.infer.hmc.hmc(...,
algo="NUTS")``) exactly as ``numpyro.infer.MCMC`` runs it: diagonal mass
matrix and step size adapted over ``tune`` iterations (Stan's windows, target
acceptance 0.8), maximum tree depth 10.

gmmflow runs that kernel itself rather than through ``MCMC``:

* the data and hyper-parameters are arguments of the compiled programs
  (``MCMC(chain_method="parallel")`` closes over them, so a new data set of
  the same shape compiles again), so one compilation per (spec, n, d, tune)
  serves every data set, in this process and, through JAX's persistent
  cache, in later ones;
* each chain is the same single-chain program, run on its own thread (XLA
  releases the GIL; ``min(chains, cores)`` threads): one compilation whatever
  the number of chains, no XLA device count to set before JAX starts, and a
  chain's draws do not depend on how many chains run beside it;
* chains advance in chunks of :data:`CHUNK` iterations: the progress bar
  moves, and Ctrl-C stops every chain at the end of its chunk.

Chain c uses the key ``jax.random.fold_in(prng_key(seed), c)``: with its
start point (drawn first for chain 0, then chain 1, ...), chain c's draws are
the same whatever the number of chains.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from dataclasses import dataclass
from functools import cache
from typing import Any

import numpy as np
import xarray as xr

from gmmflow.models.pymc_template import ModelTemplate, split_flat
from gmmflow.workflows import compile_cache

CHUNK = 50  # iterations per call of the compiled program
MAX_TREE_DEPTH = 10
TARGET_ACCEPT = 0.8
STATS = ("n_steps", "diverging", "energy", "acceptance_rate", "lp", "step_size")


def jax_log_density(template: ModelTemplate):
    """The template's log-density (Jacobians included) as a JAX function ``f(values, inputs)``.

    ``values``: one array per value variable (``template.value_names``);
    ``inputs``: one array per data container (``template.input_names`` order). The
    data containers become arguments: PyMC's ``get_jaxified_graph`` would
    otherwise fold them into constants.
    """
    from pymc.sampling.jax import get_jaxified_graph
    from pytensor.graph.replace import clone_replace

    model = template.model
    containers = template.data_containers
    arguments = []
    for shared in containers:
        argument = shared.type(name=shared.name)
        argument.tag.lower_triangular = getattr(shared.tag, "lower_triangular", False)
        arguments.append(argument)
    [logp] = clone_replace([model.logp()], replace=dict(zip(containers, arguments)))
    value_vars = [model.rvs_to_values[rv] for rv in model.free_RVs]
    fn = get_jaxified_graph(inputs=[*value_vars, *arguments], outputs=[logp])

    def log_density(values, inputs):
        return fn(*values, *inputs)[0]

    return log_density


@dataclass(frozen=True)
class NutsPrograms:
    """The compiled programs of one (template, tune): ``init`` and ``advance``."""

    init: Any  # (values, key, inputs) -> HMCState
    advance: Any  # (state, n, inputs) -> (state, records of CHUNK iterations, the first n filled)
    tune: int


def compile_programs(log_density: Callable[[], Callable], template: ModelTemplate, tune: int,
                     stored: bool = True) -> NutsPrograms:
    """Compile (ahead of time) the chain's start and its advance by up to ``CHUNK`` iterations.

    The programs are ``jax.export`` modules: read from gmmflow's cache
    directory when a process has stored them for this template, ``tune`` and
    these library versions (:func:`program_key`), else traced from
    ``log_density()`` (built only then: the PyMC graph turned into JAX) and
    stored (``stored=False``: neither read nor stored). Either way the same
    module is compiled, so a chain's draws do not depend on whether it was
    read or traced; XLA's compilation comes from JAX's persistent cache.
    """
    import jax
    import jax.numpy as jnp
    from jax import export

    _register_state_types()
    values = [jax.ShapeDtypeStruct(s, jnp.float64) for s in template.value_shapes]
    key = jax.ShapeDtypeStruct((2,), jnp.uint32)
    inputs = tuple(jax.ShapeDtypeStruct(np.shape(v), jnp.float64) for v in _placeholder_inputs(template))
    name = program_key(template, tune, values, inputs)
    blobs = compile_cache.read_program(name) if stored else None
    try:
        init, advance = (export.deserialize(bytearray(b)) for b in blobs) if blobs else (None, None)
    except Exception:  # noqa: BLE001 - a file another version wrote, or damaged: traced again below
        init = advance = None
    if init is None:
        blobs = [program.serialize() for program in _export_programs(log_density(), values, key, inputs, tune)]
        if stored:
            compile_cache.store_program(name, blobs)
        # compiled from their serialized form, as a later process will: the same XLA program (and the
        # same entry of JAX's persistent cache) in the process that traced them and in every later one
        init, advance = (export.deserialize(bytearray(b)) for b in blobs)
    state = jax.eval_shape(init.call, values, key, inputs)
    n = jax.ShapeDtypeStruct((), jnp.int64)
    return NutsPrograms(jax.jit(init.call).lower(values, key, inputs).compile(),
                        jax.jit(advance.call).lower(state, n, inputs).compile(), tune)


def program_key(template: ModelTemplate, tune: int, values, inputs) -> str:
    """The stored programs' name: everything the traced programs depend on (the template's
    shape, ``tune``, the kernel's settings, the argument shapes, the library versions)."""
    return compile_cache.program_key(
        "numpyro-nuts", ("jax", "jaxlib", "numpyro", "pymc", "pytensor"),
        template=repr((template.covariance_type, template.n_obs, template.n_features, template.value_names,
                       template.value_shapes, template.layout, template.noise)),
        tune=int(tune), chunk=CHUNK, max_tree_depth=MAX_TREE_DEPTH, target_accept=TARGET_ACCEPT,
        values=[v.shape for v in values], inputs=[v.shape for v in inputs])


def _export_programs(log_density, values, key, inputs, tune: int):
    """The chain's start ``init(values, key, inputs)`` and its advance ``advance(state, n, inputs)``
    as ``jax.export`` modules (numpyro's NUTS kernel on ``log_density``)."""
    import jax
    import jax.numpy as jnp
    from jax import export
    from numpyro.infer.hmc import hmc

    def potential_fn_gen(*inputs):
        return lambda values: -log_density(values, inputs)

    init_kernel, sample_kernel = hmc(potential_fn_gen=potential_fn_gen, algo="NUTS")

    def init(values, key, inputs):
        return init_kernel(values, tune, target_accept_prob=TARGET_ACCEPT, max_tree_depth=MAX_TREE_DEPTH,
                           model_args=inputs, rng_key=key)

    def record(state, step_size):
        return (state.z, state.num_steps, state.diverging, state.energy, state.accept_prob,
                -state.potential_energy, step_size)

    def advance(state, n, inputs):
        def step(i, carry):
            state, records = carry
            used = state.adapt_state.step_size  # the step size of this transition
            state = sample_kernel(state, model_args=inputs)
            records = jax.tree.map(lambda r, v: r.at[i].set(v), records, record(state, used))
            return state, records

        empty = jax.tree.map(lambda v: jnp.zeros((CHUNK, *jnp.shape(v)), jnp.result_type(v)),
                             record(state, state.adapt_state.step_size))
        return jax.lax.fori_loop(0, n, step, (state, empty))

    state = jax.eval_shape(init, values, key, inputs)
    n = jax.ShapeDtypeStruct((), jnp.int64)
    return export.export(jax.jit(init))(values, key, inputs), export.export(jax.jit(advance))(state, n, inputs)


@cache
def _register_state_types() -> None:
    """Let ``jax.export`` serialize numpyro's chain state (named tuples), once per process."""
    from jax import export
    from numpyro.infer.hmc import HMCState
    from numpyro.infer.hmc_util import HMCAdaptState

    for cls in (HMCState, HMCAdaptState):
        export.register_namedtuple_serialization(cls, serialized_name=f"{cls.__module__}.{cls.__name__}")


def _placeholder_inputs(template: ModelTemplate) -> list:
    return [c.get_value() for c in template.data_containers]


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def run_chains(programs: NutsPrograms, starts: np.ndarray, inputs: dict, template: ModelTemplate, draws: int,
               seed: int, progressbar: bool) -> tuple[list, dict, dict]:
    """Run one chain per start point (flat unconstrained vectors (chains, size)).

    Returns the draws of each value variable (chain, draw, ...), and the
    sample stats of the draws and of the tuning iterations, each (chain, iteration).
    """
    import jax
    from tqdm import tqdm

    chains, tune = starts.shape[0], programs.tune
    total = tune + draws
    args = tuple(jax.numpy.asarray(inputs[name]) for name in template.input_names)
    key = prng_key(seed)
    states = [programs.init([jax.numpy.asarray(v) for v in split_flat(template, s)], jax.random.fold_in(key, c),
                            args) for c, s in enumerate(starts)]
    for c, state in enumerate(states):
        if not np.isfinite(float(state.potential_energy)):
            raise ValueError(f"the log-density is not finite at the start point of chain {c}.")
    records: list[list] = [[] for _ in range(chains)]
    stop = threading.Event()
    bar = tqdm(total=chains * total, desc=f"NUTS (numpyro), {chains} chain(s)", disable=None if progressbar else True,
               unit="it", leave=False)

    def run(c: int) -> None:
        state, done = states[c], 0
        while done < total and not stop.is_set():
            n = min(CHUNK, total - done)
            state, chunk = programs.advance(state, np.int64(n), args)
            records[c].append(jax.tree.map(lambda r: np.asarray(r)[:n], chunk))
            done += n
            bar.update(n)

    with ThreadPoolExecutor(max_workers=min(chains, _cores())) as pool:
        futures = [pool.submit(run, c) for c in range(chains)]
        try:
            pending = futures
            while pending:
                finished, pending = wait(pending, timeout=0.2, return_when=FIRST_EXCEPTION)
                for f in finished:
                    f.result()
        except BaseException:
            stop.set()
            raise
        finally:
            bar.close()
    return _assemble(records, template, tune)


def prng_key(seed: int) -> np.ndarray:
    """The threefry key of a seed in [0, 2**64): its high and low 32-bit words.

    The same key as ``jax.random.PRNGKey(seed)`` (which refuses seeds of
    2**63 and more) wherever that accepts the seed.
    """
    return np.array([seed >> 32, seed & 0xFFFFFFFF], dtype=np.uint32)


def _assemble(records, template: ModelTemplate, tune: int):
    chains = [_concatenate_chunks(r) for r in records]
    values = [np.stack([c[0][i][tune:] for c in chains]) for i in range(len(template.value_names))]
    stats = {name: np.stack([c[1 + j] for c in chains]) for j, name in enumerate(STATS)}
    return values, {k: v[:, tune:] for k, v in stats.items()}, {k: v[:, :tune] for k, v in stats.items()}


def _concatenate_chunks(chunks: list) -> tuple:
    """Concatenate a chain's chunks of records along the iteration axis."""
    values = [np.concatenate([c[0][i] for c in chunks]) for i in range(len(chunks[0][0]))]
    return (values, *(np.concatenate([c[j] for c in chunks]) for j in range(1, len(chunks[0]))))


def stats_dataset(stats: dict, max_tree_depth: int = MAX_TREE_DEPTH) -> xr.Dataset:
    """ArviZ's sample_stats names: tree depth and saturation derived from the leapfrog steps.

    A tree of depth j holds at most 2^j - 1 leapfrog steps, so the depth is the
    bit length of ``n_steps``; the maximum depth is reached when ``n_steps``
    is 2^max_tree_depth - 1.
    """
    n_steps = stats["n_steps"].astype(np.int64)
    dims = ("chain", "draw")
    data = {name: (dims, values) for name, values in stats.items()}
    data["tree_depth"] = (dims, np.floor(np.log2(np.maximum(n_steps, 1))).astype(np.int64) + 1)
    data["reached_max_treedepth"] = (dims, n_steps == 2 ** max_tree_depth - 1)
    data["diverging"] = (dims, stats["diverging"].astype(bool))
    return xr.Dataset(data, coords={"chain": np.arange(n_steps.shape[0]), "draw": np.arange(n_steps.shape[1])})

"""NUTS backends: the template's density is the model's, compiled once, cached on disk, sampled by numpyro.

References: the PyMC model with constants (``GMM.pymc_model``: PyMC's own
log-density and gradient), the model's transforms, and numpyro's kernel run
by hand. Short runs only; the exactness runs for every backend are in
``tests/test_mcmc.py`` (slow tier).
"""

import io
import re
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

import gmmflow
from conftest import COV_TYPES
from gmmflow.exceptions import SamplingError
from gmmflow.models.pymc_template import data_layout, model_template, split_flat
from gmmflow.workflows import compile_cache, nuts_backends, numpyro_nuts

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning", "ignore::FutureWarning")

FAITHFUL = gmmflow.load_dataset("faithful")


def standardised():
    return ((FAITHFUL - FAITHFUL.mean("obs_id")) / FAITHFUL.std("obs_id")).values


def user_prior(t, d):
    """A prior whose every hyper-parameter differs from the default (so that each input matters)."""
    scale = {"full": [[1.5, 0.3], [0.3, 0.8]], "tied": [[1.5, 0.3], [0.3, 0.8]], "diag": [1.5, 0.8],
             "spherical": 1.2}[t]
    return gmmflow.Prior(alpha=2.5, mean=[0.3, -0.2], shrinkage=0.4, dof=d + 4.5, scale=scale)


def random_points(template, n, seed):
    rng = np.random.default_rng(seed)
    return [split_flat(template, 0.7 * rng.standard_normal(template.size)) for _ in range(n)]


@pytest.mark.parametrize("t, kind", [(t, "complete") for t in COV_TYPES]
                         + [("full", "missing_cells"), ("spherical", "missing_cells"), ("tied", "noise"),
                            ("diag", "noise")])  # each case compiles PyMC's model 4 times: two types each
def test_one_compiled_template_is_the_model_for_every_data_set_and_prior(t, kind):
    """Two data sets and two priors through ONE jaxified template: log-density and gradient equal PyMC's
    own (the model with the data and hyper-parameters as constants) to 1e-10. With missing cells the
    template is for the missingness layout (patterns and their row counts), and the second data set has
    the same layout with its rows in another order. A noise model's template takes its -log V as an
    input: two volumes through one template."""
    import jax

    jax.config.update("jax_enable_x64", True)
    X1 = standardised()
    incomplete, noise = kind == "missing_cells", kind == "noise"
    if incomplete:
        X1 = X1.copy()
        X1[np.random.default_rng(3).random(X1.shape) < 0.15] = np.nan
        X1 = X1[~np.isnan(X1).all(axis=1)]
    X2 = X1[::-1] * np.array([1.3, 0.7]) + 0.2
    missing = "marginalize" if incomplete else "error"
    template = model_template(gmmflow.GMM(3, t, noise=noise), *X1.shape, data_layout(X1))
    assert (template.layout is None) != incomplete
    density = numpyro_nuts.jax_log_density(template)
    value_and_grad = jax.jit(jax.value_and_grad(lambda v, a: density(v, a)))
    for X, prior, log_volume in ((X1, "default", 2.5), (X2, user_prior(t, 2), 4.0)):
        spec = gmmflow.GMM(3, t, prior=prior, noise=noise)
        hyper = spec.prior.resolve(np.nan_to_num(X), covariance_type=t, n_components=3)
        reference = spec.pymc_model(X, hyperparameters=hyper, missing=missing,
                                    noise_log_volume=log_volume if noise else None)
        logp, dlogp = reference.compile_logp(), reference.compile_dlogp()
        inputs = template.input_values(X, hyper, -log_volume if noise else None)
        args = tuple(inputs[k] for k in template.input_names)
        for values in random_points(template, 3, seed=len(X)):
            point = dict(zip(template.value_names, values))
            lp, grad = value_and_grad([jax.numpy.asarray(v) for v in values], args)
            np.testing.assert_allclose(float(lp), logp(point), rtol=1e-10)
            flat_grad = np.concatenate([np.ravel(g) for g in grad])
            np.testing.assert_allclose(flat_grad, dlogp(point), rtol=1e-9, atol=1e-9 * np.abs(flat_grad).max())


def test_the_compiled_template_has_no_cholesky_decomposition():
    """The IW scale enters as its tagged Cholesky factor: logp and gradient hold no Cholesky op."""
    import pytensor
    from pytensor.compile import mode
    from pytensor.graph.fg import FunctionGraph
    from pytensor.graph.replace import clone_replace
    from pytensor.tensor.slinalg import Cholesky

    template = model_template(gmmflow.GMM(2, "full"), 272, 2)
    model = template.model
    arguments = [c.type(name=c.name) for c in template.data_containers]
    for argument, container in zip(arguments, template.data_containers):
        argument.tag.lower_triangular = getattr(container.tag, "lower_triangular", False)
    [logp] = clone_replace([model.logp()], replace=dict(zip(template.data_containers, arguments)))
    graph = FunctionGraph([*model.value_vars, *arguments], [logp, *pytensor.grad(logp, model.value_vars)],
                          clone=True)
    mode.JAX.optimizer.rewrite(graph)
    ops = [getattr(node.op, "core_op", node.op) for node in graph.apply_nodes]
    assert not any(isinstance(op, Cholesky) for op in ops)


def test_template_refuses_data_of_another_shape_or_type():
    template = model_template(gmmflow.GMM(2), 272, 2)
    hyper = gmmflow.GMM(2).prior.resolve(standardised(), n_components=2)
    with pytest.raises(ValueError, match=re.escape("the template is for data of shape (272, 2), got (10, 2).")):
        template.input_values(np.zeros((10, 2)), hyper)
    diag = gmmflow.GMM(2, "diag").prior.resolve(standardised(), covariance_type="diag", n_components=2)
    with pytest.raises(ValueError, match=re.escape("hyper-parameters for 'diag', template for 'full'.")):
        template.input_values(standardised(), diag)


@pytest.mark.parametrize("t", COV_TYPES)
def test_batched_point_maps_equal_the_maps_of_one_point_and_invert_them(t):
    from gmmflow.models.pymc_model import constrained_point_function, unconstrained_point_function

    template = model_template(gmmflow.GMM(3, t), 20, 2)
    to_values = constrained_point_function(template.model)
    to_values_batched = constrained_point_function(template.model, batch_ndim=2)
    to_point = unconstrained_point_function(template.model)
    draws = np.stack([np.stack([0.5 * np.random.default_rng(10 * c + s).standard_normal(template.size)
                                for s in range(3)]) for c in range(2)])  # (chain, draw, size)
    batched = to_values_batched(dict(zip(template.value_names, split_flat(template, draws))))
    for c in range(2):
        for s in range(3):
            point = dict(zip(template.value_names, split_flat(template, draws[c, s])))
            one = to_values(point)
            for name, value in one.items():
                np.testing.assert_allclose(batched[name][c, s], value, rtol=1e-14)
            back = to_point(one)
            for name, value in point.items():
                np.testing.assert_allclose(back[name], value, rtol=1e-9, atol=1e-12)


def test_tree_depth_and_saturation_follow_the_leapfrog_steps():
    stats = {"n_steps": np.array([[1, 2, 3, 4, 7, 1023]]), "diverging": np.zeros((1, 6), bool)}
    ds = numpyro_nuts.stats_dataset(stats, max_tree_depth=10)
    assert ds.tree_depth.values.tolist() == [[1, 2, 2, 3, 3, 10]]
    assert ds.reached_max_treedepth.values.tolist() == [[False] * 5 + [True]]


def short_run(X, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return gmmflow.sample_posterior(gmmflow.GMM(2), X, **({"draws": 30, "tune": 30, "chains": 2, "seed": 5,
                                                                "progressbar": False} | kwargs))


def test_numpyro_compiles_once_for_every_data_set_of_a_shape():
    compile_cache.clear()
    before = compile_cache.builds.copy()
    X = standardised()
    first = short_run(X, sampler="numpyro")
    second = short_run(X[::-1] + 0.5, sampler="numpyro", seed=6)
    built = compile_cache.builds - before
    assert built and set(built.values()) == {1}, built  # every key built once, by the first call
    # the density (the PyMC graph as JAX) is built only when no earlier process stored the programs
    assert {"template", "numpyro"} <= {k[0] for k in built} <= {"template", "numpyro density", "numpyro"}
    assert first.attrs["sampler"] == second.attrs["sampler"] == "numpyro"
    for name in ("diverging", "tree_depth", "reached_max_treedepth", "step_size", "energy", "acceptance_rate",
                 "n_steps", "lp", "relabel_permutation"):
        assert first.sample_stats[name].dims[:2] == ("chain", "draw"), name
    assert (first.sample_stats.tree_depth.values ==
            np.floor(np.log2(first.sample_stats.n_steps.values)).astype(int) + 1).all()
    assert gmmflow.diagnose(first).loc["chains", "value"] == 2


def test_a_chains_draws_do_not_depend_on_how_many_chains_run():
    X = standardised()
    em = gmmflow.fit_em(gmmflow.GMM(2), X, n_init=2, seed=0)
    one, two = (short_run(X, em=em, chains=c, relabel=False, sampler="numpyro") for c in (1, 2))
    np.testing.assert_array_equal(one.posterior.mu.isel(chain=0).values, two.posterior.mu.isel(chain=0).values)
    assert not np.array_equal(two.posterior.mu.isel(chain=0).values, two.posterior.mu.isel(chain=1).values)


def test_a_start_point_off_the_support_is_a_sampling_error(monkeypatch):
    monkeypatch.setattr(nuts_backends, "start_points",
                        lambda maps, start, chains, rng: np.full((chains, maps.template.size), np.nan))
    with pytest.raises(SamplingError, match=re.escape("NUTS (numpyro) failed: the log-density is not finite at the "
                                                      "start point of chain 0.")) as info:
        short_run(standardised(), sampler="numpyro")
    assert info.value.partial.attrs["sampling_status"].startswith("failed: the log-density is not finite")


def test_progress_bar_on_a_terminal_only(monkeypatch):
    class Terminal(io.StringIO):
        def isatty(self):
            return True

    for stream, shown in ((Terminal(), True), (io.StringIO(), False)):
        monkeypatch.setattr(sys, "stderr", stream)
        short_run(standardised(), sampler="numpyro", progressbar=True)
        assert ("NUTS (numpyro), 2 chain(s)" in stream.getvalue()) is shown
    monkeypatch.setattr(sys, "stderr", stream := Terminal())
    short_run(standardised(), sampler="numpyro", progressbar=False)
    assert stream.getvalue() == ""


def test_auto_takes_the_first_installed_backend(monkeypatch):
    assert nuts_backends.available_sampler("auto") == "numpyro"
    missing = {"numpyro"}
    monkeypatch.setattr(nuts_backends, "installed", lambda b: b not in missing)
    assert nuts_backends.available_sampler("auto") == "nutpie"
    missing.add("nutpie")
    assert nuts_backends.available_sampler("auto") == "pymc"
    with pytest.raises(ImportError, match=re.escape("sampler='numpyro' needs jax and numpyro (gmmflow dependencies): "
                                                    "pip install jax and numpyro, or use sampler='auto'.")):
        nuts_backends.available_sampler("numpyro")


def test_compiled_code_goes_to_the_user_cache_directory_not_the_working_directory(tmp_path):
    """Fresh processes with XDG_CACHE_HOME set: the first traces the NUTS programs and stores them in
    $XDG_CACHE_HOME/gmmflow/programs, JAX's compiled programs in .../jax; the second reads the stored
    programs (PyMC's graph is never turned into JAX: pymc.sampling.jax is not imported), hits JAX's
    cache for them, and draws the same numbers."""
    work, cache = tmp_path / "work", tmp_path / "cache"
    work.mkdir()
    code = ("import sys, numpy as np, gmmflow; X = gmmflow.load_dataset('faithful').values; "
            "i = gmmflow.sample_posterior(gmmflow.GMM(1), X, draws=5, tune=5, chains=1, seed=0, "
            "progressbar=False, sampler='numpyro', em_kwargs={'n_init': 1}); "
            "print('pymc.sampling.jax' in sys.modules, repr(i.posterior.mu.values.ravel().tolist()))")
    env = {k: v for k, v in __import__("os").environ.items() if k != "JAX_COMPILATION_CACHE_DIR"}
    env |= {"XDG_CACHE_HOME": str(cache), "PYTHONPATH": str(Path(gmmflow.__file__).parents[1])}
    runs = []
    for _ in range(2):
        done = subprocess.run([sys.executable, "-W", "ignore", "-c", code], cwd=work, env=env, check=True,
                              capture_output=True, text=True)
        runs.append(done.stdout.split(maxsplit=1))
        if not runs[1:]:
            compiled = sorted(p.name for p in (cache / "gmmflow" / "jax").iterdir())
    assert list(work.iterdir()) == []
    assert len(list((cache / "gmmflow" / "programs").iterdir())) == 1
    assert sum(name.startswith("jit_call") for name in compiled) == 2  # the chain's start and its advance
    assert sorted(p.name for p in (cache / "gmmflow" / "jax").iterdir()) == compiled  # all hits the 2nd time
    assert [r[0] for r in runs] == ["True", "False"]
    assert runs[0][1] == runs[1][1]


@pytest.fixture
def program_cache(tmp_path, monkeypatch):
    """gmmflow's stored programs in a fresh directory (JAX's own cache stays where it is)."""
    monkeypatch.setattr(compile_cache, "cache_directory", lambda: tmp_path)
    return tmp_path / "programs"


def test_stored_programs_are_read_instead_of_traced_and_damaged_ones_are_replaced(program_cache):
    import jax

    jax.config.update("jax_enable_x64", True)
    template = model_template(gmmflow.GMM(2, "full"), 272, 2)
    density = numpyro_nuts.jax_log_density(template)
    traced = []

    def build():
        traced.append(1)
        return density

    def refuse():
        raise AssertionError("traced although stored")

    first = numpyro_nuts.compile_programs(build, template, 20)
    [stored] = program_cache.iterdir()
    second = numpyro_nuts.compile_programs(refuse, template, 20)
    assert traced == [1]
    stored.write_bytes(stored.read_bytes()[:100])  # truncated: rebuilt and replaced
    third = numpyro_nuts.compile_programs(build, template, 20)
    assert traced == [1, 1] and stored.stat().st_size > 100
    numpyro_nuts.compile_programs(build, template, 20, stored=False)
    assert traced == [1, 1, 1]
    starts = np.zeros((1, template.size))
    inputs = template.input_values(standardised(), gmmflow.GMM(2).prior.resolve(standardised(), covariance_type="full", n_components=2))
    draws = [numpyro_nuts.run_chains(p, starts, inputs, template, 10, 3, False)[0] for p in (first, second, third)]
    for values in draws[1:]:
        for a, b in zip(draws[0], values):
            np.testing.assert_array_equal(a, b)


def test_a_program_key_changes_with_what_the_program_depends_on(monkeypatch):
    import jax

    template = model_template(gmmflow.GMM(2, "full"), 272, 2)
    other = model_template(gmmflow.GMM(2, "diag"), 272, 2)
    values = [jax.ShapeDtypeStruct(s, np.float64) for s in template.value_shapes]
    key = numpyro_nuts.program_key(template, 20, values, ())
    assert key == numpyro_nuts.program_key(template, 20, values, ())
    assert key != numpyro_nuts.program_key(template, 21, values, ())
    assert key != numpyro_nuts.program_key(other, 20, values, ())
    monkeypatch.setattr(compile_cache.metadata, "version", lambda name: "0" if name == "jax" else "1")
    assert key != numpyro_nuts.program_key(template, 20, values, ())
    monkeypatch.undo()
    monkeypatch.setattr(compile_cache, "source_digest", lambda: "edited")
    assert key != numpyro_nuts.program_key(template, 20, values, ())


def test_a_stored_program_is_whole_or_absent(program_cache, monkeypatch):
    blobs = [b"first", b"", b"x" * 1000]
    assert compile_cache.read_program("k") is None
    assert compile_cache.store_program("k", blobs)
    assert compile_cache.read_program("k") == blobs
    data = (program_cache / "k").read_bytes()
    (program_cache / "k").write_bytes(data[:-1])
    assert compile_cache.read_program("k") is None

    def fail(*args):
        raise OSError("disk full")

    monkeypatch.setattr(compile_cache.os, "replace", fail)
    assert not compile_cache.store_program("k2", blobs)
    assert sorted(p.name for p in program_cache.iterdir()) == ["k"]  # no temporary file left behind


def test_the_chain_key_is_jaxs_for_every_64_bit_seed():
    """``PRNGKey`` where it accepts the seed; the two 32-bit words of the seed beyond (gmmflow takes 64 bits)."""
    import jax

    jax.config.update("jax_enable_x64", True)
    for seed in (0, 7, 2**32 + 5, 2**63 - 1):
        np.testing.assert_array_equal(numpyro_nuts.prng_key(seed), np.asarray(jax.random.PRNGKey(seed)))
    assert numpyro_nuts.prng_key(2**64 - 1).tolist() == [2**32 - 1, 2**32 - 1]
    assert numpyro_nuts.prng_key(2**63).tolist() == [2**31, 0]

"""The compiled EM loop (``kernels.em_loop``, numba) against the numpy driver it must reproduce.

Both paths run the same starts through ``core.em_driver.run_starts`` (``compiled=True``
/ ``False``) and must stop at the same iteration with the same converged flag, with
objective traces and parameters equal to 1e-10 (relative to each array's largest
entry): the loop adds in another order (rows one by one, its own ``exp``), so the
paths agree to rounding, not bit for bit. Cases: the bundled Faithful, iris, geyser
and galaxies (d = 1) and random 5-d data; the four covariance types, MLE and MAP;
no weights, one weight per row, one row of weights per start (bootstrap replicates);
the noise component. Then the error paths (the same exceptions and messages as
numpy's), the dispatch, and numpy's path when numba is missing.
"""

from __future__ import annotations

import dataclasses
import math
import re
import sys
import warnings

import numpy as np
import pytest

import gmmflow
from conftest import COV_TYPES, mixture_data
from gmmflow.core import em_driver
from gmmflow.core.em_driver import best_restart, em_kernel, fit_replicates, run_starts
from gmmflow.core.em_steps import Params
from gmmflow.core.initialization import StartingPoints
from gmmflow.core.missing_data import MissingBlocks
from gmmflow.core.row_blocks import ArrayBlocks
from gmmflow.exceptions import ConvergenceWarning, NotPositiveDefiniteError
from gmmflow.workflows.em_fit import noise_log_density

pytest.importorskip("numba")
from gmmflow.kernels import em_loop  # noqa: E402

N_STARTS = 6
TOL = 1e-8


def dataset(name: str) -> np.ndarray:
    if name == "random 5-d":
        return mixture_data(seed=4, n_per=60, d=5, K=3, spread=2.5)
    X = np.asarray(gmmflow.load_dataset(name).values, dtype=np.float64)
    return X[:, None] if X.ndim == 1 else X


def setup(X, K, t, prior, sample_weight=None, noise=False, seed=5):
    """Blocks in the shifted frame, the prior in the data's frame and N_STARTS starts
    (hc and k-means++), as fit_em prepares them."""
    model = gmmflow.GMM(K, t, prior=prior, noise=noise)
    blocks = ArrayBlocks(X, sample_weight)
    mean, cov = blocks.moments()
    hyper = model.hyperparameters(mean, cov, float(X.shape[0] if sample_weight is None else sample_weight.sum()))
    log_noise = noise_log_density(model, blocks, cov)
    blocks = blocks.with_shift(mean)
    starts = StartingPoints.from_blocks(blocks, seed, K, t, hyper, model.reg_covar, None, log_noise)
    rngs = [np.random.default_rng(c) for c in np.random.SeedSequence(seed).spawn(N_STARTS)]
    inits = starts.draw_all(["hc"] + ["kmeans++"] * (N_STARTS - 1), rngs)
    return blocks, inits, hyper, model.reg_covar


def assert_same_runs(compiled, reference):
    """Same stops; traces, objective parts and parameters to 1e-10 of each array's scale."""
    assert [(r.n_iter, r.converged) for r in compiled] == [(r.n_iter, r.converged) for r in reference]
    for a, b in zip(compiled, reference):
        scale = abs(b.objective)
        np.testing.assert_allclose(a.trace, b.trace, rtol=0, atol=1e-10 * scale)
        for name in ("objective", "log_likelihood", "log_prior"):
            assert abs(getattr(a, name) - getattr(b, name)) <= 1e-10 * scale, name
        for name in ("weights", "means", "cov", "chol"):
            u, v = getattr(a.params, name), getattr(b.params, name)
            assert u.shape == v.shape, name
            np.testing.assert_allclose(u, v, rtol=0, atol=1e-10 * np.abs(v).max(), err_msg=name)
        assert a.params.log_noise_density == b.params.log_noise_density


def both_paths(blocks, inits, hyper, reg_covar, max_iter=1000):
    return (run_starts(blocks, inits, hyper, reg_covar, max_iter, TOL, compiled=True),
            run_starts(blocks, inits, hyper, reg_covar, max_iter, TOL, compiled=False))


DATASETS = ("faithful", "iris", "geyser", "galaxies", "random 5-d")


@pytest.mark.parametrize("name", DATASETS)
@pytest.mark.parametrize("t", COV_TYPES)
@pytest.mark.parametrize("prior", [None, "default"])
@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "row weights"])
def test_compiled_equals_numpy(name, t, prior, weighted):
    X = dataset(name)
    sw = np.random.default_rng(1).uniform(0.2, 3.0, X.shape[0]) if weighted else None
    compiled, reference = both_paths(*setup(X, 3, t, prior, sw))
    assert_same_runs(compiled, reference)


@pytest.mark.parametrize("name", ["faithful", "iris"])
@pytest.mark.parametrize("t", COV_TYPES)
@pytest.mark.parametrize("prior", [None, "default"])
def test_compiled_equals_numpy_with_noise(name, t, prior):
    compiled, reference = both_paths(*setup(dataset(name), 2, t, prior, noise=True))
    assert compiled[0].params.has_noise
    assert_same_runs(compiled, reference)


@pytest.mark.parametrize("t", COV_TYPES)
@pytest.mark.parametrize("prior", [None, "default"])
def test_replicates_with_their_own_weights(t, prior):
    """Bootstrap replicates: one row of weights (B, n) per start, as fit_replicates runs them."""
    X = dataset("faithful")
    blocks, inits, hyper, reg_covar = setup(X, 3, t, prior)
    start = inits[0].shifted(blocks.shift)  # the data's frame, as bootstrap passes its pivot
    W = np.random.default_rng(2).multinomial(X.shape[0], np.full(X.shape[0], 1 / X.shape[0]), size=5).astype(float)
    reps = ArrayBlocks(X, W, shift=blocks.shift)
    compiled = fit_replicates(reps, start, 5, hyper, reg_covar, 1000, TOL, compiled=True)
    reference = fit_replicates(reps, start, 5, hyper, reg_covar, 1000, TOL, compiled=False)
    assert_same_runs(compiled, reference)
    assert len({r.objective for r in reference}) == 5  # five different data sets


def test_starts_stop_at_different_iterations():
    """The comparisons above cover batches whose starts stop at different iterations
    (numpy drops a start from the batch when it stops; the loop runs each alone)."""
    compiled, reference = both_paths(*setup(dataset("faithful"), 4, "diag", None))
    assert len({r.n_iter for r in reference}) >= 3
    assert_same_runs(compiled, reference)


def test_compiled_runs_are_bit_identical():
    blocks, inits, hyper, reg_covar = setup(dataset("iris"), 3, "full", "default")
    first = run_starts(blocks, inits, hyper, reg_covar, 1000, TOL, compiled=True)
    again = run_starts(blocks, inits, hyper, reg_covar, 1000, TOL, compiled=True)
    for a, b in zip(first, again):
        np.testing.assert_array_equal(a.trace, b.trace)
        np.testing.assert_array_equal(a.params.cov, b.params.cov)


def test_max_iter_reached_warns_as_numpy():
    blocks, inits, hyper, reg_covar = setup(dataset("faithful"), 4, "full", None)
    compiled, reference = both_paths(blocks, inits, hyper, reg_covar, max_iter=5)
    assert_same_runs(compiled, reference)
    assert [r.n_iter for r in compiled] == [5] * N_STARTS and not any(r.converged for r in compiled)
    with pytest.warns(ConvergenceWarning, match=re.escape("EM did not converge: the best restart stopped at "
                                                          f"max_iter=5 (0 of {N_STARTS} restarts converged)")):
        best_restart(compiled)


def collapsing_start(X):
    """An MLE start (reg_covar 0): the first component on the 100 standard normal rows, the
    second on the three rows far from them (identical rows: its covariance becomes exactly 0
    at the first M-step)."""
    means = np.array([X[:100].mean(axis=0), X[-3:].mean(axis=0)])
    return Params.from_cov([0.97, 0.03], means, np.stack([np.eye(2), 0.01 * np.eye(2)]), "full")


def test_collapse_raises_numpys_error():
    rng = np.random.default_rng(0)
    X = np.concatenate([rng.normal(size=(100, 2)), np.full((3, 2), 40.0)])
    blocks = ArrayBlocks(X)
    init = collapsing_start(X)
    out = em_loop.run_batch("full", X, np.ones((1, X.shape[0])), np.zeros(1, dtype=np.int64), init.weights[None],
                            init.means[None], init.cov[None], 0.0, None, 0.0, 100, TOL)
    assert out["status"].tolist() == [em_loop.NOT_SPD] and out["n_iter"].tolist() == [1]  # the loop saw it
    messages = []
    for compiled in (True, False):
        with pytest.raises(NotPositiveDefiniteError) as err:
            run_starts(blocks, [init, init], None, 0.0, 100, TOL, compiled=compiled)
        messages.append(str(err.value))
    assert messages[0] == messages[1]
    assert messages[0].startswith("Fitting the mixture model failed because some components have ill-defined "
                                  "empirical covariance (covariance of component 1 is not positive definite.)")


def test_failed_replicate_is_none_as_numpy():
    """A replicate whose weights drop the three far rows leaves the second component empty
    (its covariance 0 at the first M-step): that replicate is None, the others are fitted,
    on both paths."""
    rng = np.random.default_rng(0)
    X = np.concatenate([rng.normal(size=(100, 2)), 40.0 + 0.1 * rng.normal(size=(3, 2))])
    W = np.ones((3, X.shape[0]))
    W[1, -3:] = 0.0
    init = collapsing_start(X)
    found = {c: fit_replicates(ArrayBlocks(X, W), init, 3, None, 0.0, 100, TOL, compiled=c) for c in (True, False)}
    assert [r is None for r in found[False]] == [False, True, False]
    assert [r is None for r in found[True]] == [False, True, False]
    assert_same_runs([found[True][0], found[True][2]], [found[False][0], found[False][2]])


def test_non_finite_objective_raises_numpys_error():
    """With alpha < 1 an empty component's MAP weight ``(n_k + alpha - 1) / ...`` is negative:
    the objective's log-weight is NaN after the first M-step. (The public ``Prior`` refuses
    alpha < 1; the core driver takes the hyper-parameters as they are.)"""
    X = mixture_data(seed=1, n_per=50, d=2, K=2)
    model = gmmflow.GMM(2, "diag", prior="default")
    blocks = ArrayBlocks(X)
    mean, cov = blocks.moments()
    hyper = dataclasses.replace(model.hyperparameters(mean, cov, X.shape[0]), alpha=0.5)
    blocks = blocks.with_shift(mean)
    far = Params.from_cov([0.5, 0.5], np.array([[0.0, 0.0], [1e3, 1e3]]), np.ones((2, 2)), "diag")
    prior = em_driver._kernel_prior(hyper.shifted(blocks.shift), 2, 2)
    out = em_loop.run_batch("diag", blocks.X - blocks.shift, np.ones((1, X.shape[0])), np.zeros(1, dtype=np.int64),
                            far.weights[None], far.means[None], em_driver._as_matrices(far.cov[None], "diag", 2, 2),
                            0.0, prior, model.reg_covar, 100, TOL)
    assert out["status"].tolist() == [em_loop.NOT_FINITE]
    messages = []
    for compiled in (True, False):
        with pytest.raises(FloatingPointError) as err, warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # numpy's log of a negative weight
            run_starts(blocks, [far], hyper, model.reg_covar, 100, TOL, compiled=compiled)
        messages.append(str(err.value))
    assert messages[0] == messages[1] == ("The EM objective became nan after 1 iterations. "
                                          "Scale the input data or use the default prior.")


def test_dispatch():
    X = dataset("faithful")
    small = ArrayBlocks(X)
    assert em_kernel(small, 3) is em_loop
    assert em_kernel(small, 3, compiled=False) is None
    big = ArrayBlocks(np.zeros((100_000, 8)))  # n (K + 1) d^2 = 5.8e7: numpy's batches are faster
    assert em_kernel(big, 8) is None
    assert em_kernel(big, 8, compiled=True) is em_loop
    with_missing = X.copy()
    with_missing[0, 0] = np.nan
    assert em_kernel(MissingBlocks(with_missing), 3, compiled=True) is None  # never for missing cells


def test_numpy_path_without_numba(monkeypatch):
    """Where numba cannot be imported the numpy driver runs (and ``compiled=True`` says why)."""
    monkeypatch.setitem(sys.modules, "gmmflow.kernels.em_loop", None)  # the import raises ImportError
    monkeypatch.delattr("gmmflow.kernels.em_loop", raising=False)
    blocks, inits, hyper, reg_covar = setup(dataset("iris"), 3, "full", "default")
    assert em_kernel(blocks, 3) is None
    with pytest.raises(ImportError):
        em_kernel(blocks, 3, compiled=True)
    reference = run_starts(blocks, inits, hyper, reg_covar, 1000, TOL, compiled=False)
    fallback = run_starts(blocks, inits, hyper, reg_covar, 1000, TOL)
    for a, b in zip(fallback, reference):  # the same path: the same bits
        np.testing.assert_array_equal(a.trace, b.trace)
        np.testing.assert_array_equal(a.params.cov, b.params.cov)


def test_exp_within_one_ulp_of_the_c_library():
    """The loop's branch-free exp: within 1 unit in the last place of math.exp on [-600, 0],
    exactly 0 below -600 and at -inf, NaN for NaN."""
    v = np.concatenate([-np.geomspace(1e-300, 600.0, 20_000), -np.random.default_rng(0).uniform(0, 600, 20_000),
                        [0.0, -0.5 * math.log(2.0), -600.0]])
    ours = np.array([em_loop._exp_floored(x) for x in v])
    ref = np.array([math.exp(x) for x in v])
    assert np.all(np.abs(ours - ref) <= np.spacing(ref))
    assert [em_loop._exp_floored(x) for x in (-600.0000001, -1e300, -np.inf)] == [0.0, 0.0, 0.0]
    assert math.isnan(em_loop._exp_floored(np.nan))

"""The one EM driver: restarts, seeding, the iteration and convergence.

Every backend (in-memory :class:`~gmmflow.core.row_blocks.ArrayBlocks`,
dask :class:`~gmmflow.core.dask_blocks.DaskBlocks`) differs only in its
blocks object; the loop below is the same for all.

Restarts advance together: their parameters are stacked on a leading batch
axis and every E- and M-step is one vectorised call for the whole batch, so a
small data set pays numpy's per-call overhead once per iteration, not once per
restart and iteration. A restart leaves the batch when it converges; its
numbers are those it would have had alone (to rounding: the batched and the
one-by-one runs agree to ~1e-12, tested), and the same inputs give the same
bits on every run.

Convergence: ``|f_t - f_{t-1}| <= tol * |f_t|`` (relative change of the
objective ``log p(X | theta) + log p(theta)``, which EM never decreases).
Restart ``r`` draws its start from child ``r`` of ``SeedSequence(seed)``;
all restarts are kept, the one with the highest objective is the estimate.

On small in-memory data the same iterations run compiled
(:mod:`gmmflow.kernels.em_loop`, when numba imports): each start to its end in
one loop over the rows, without numpy's per-call cost, to the same results up
to rounding. :func:`em_kernel` decides where (``compiled=None``): in-memory
rows (:class:`~gmmflow.core.row_blocks.ArrayBlocks`, not rows with missing
cells nor dask) whose work per start and iteration, ``n (K + 1) d^2`` (here
``d^2`` counts the full and tied types' triangular products; the diagonal types
cost less), is at most :data:`COMPILED_MAX_WORK`, the crossover measured by
``bench/em_kernel_scale.py``. A start the loop cannot finish (a covariance not
SPD, a non-finite objective) sends the batch back to numpy, which raises its
own error (or, for bootstrap replicates, finds which replicates fail).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from threadpoolctl import ThreadpoolController

from gmmflow.core.em_steps import Params, SuffStats, log_objective_parts, m_step
from gmmflow.core.gaussian import full_covariances
from gmmflow.core.hyperparameters import Hyperparameters
from gmmflow.core.initialization import StartingPoints
from gmmflow.core.prior_density import log_prior_constant
from gmmflow.core.row_blocks import ArrayBlocks
from gmmflow.exceptions import ConvergenceWarning, NotPositiveDefiniteError


_CONTROLLER: list[ThreadpoolController] = []
COMPILED_MAX_WORK = 1_500_000  # n (K + 1) d^2: see em_kernel


def one_blas_thread():
    """Context holding BLAS to one thread. The controller (a scan of the loaded
    libraries, ~2 ms) is made once, not on every fit."""
    if not _CONTROLLER:
        _CONTROLLER.append(ThreadpoolController())
    return _CONTROLLER[0].limit(limits=1, user_api="blas")


@dataclass(eq=False)
class EMResult:
    """One EM run: final parameters, objective parts and the objective trace.

    ``trace[0]`` is the objective at the initial parameters, ``trace[t]`` after
    the t-th M-step; ``n_iter = len(trace) - 1``. ``start`` names where the run
    started (``"hc"``, ``"kmeans++"``, ``"user"``, ...).
    """

    params: Params
    objective: float
    log_likelihood: float
    log_prior: float
    converged: bool
    n_iter: int
    trace: np.ndarray = field(repr=False)
    start: str = ""


def _check_finite(objective: np.ndarray, iteration: int) -> None:
    if not np.isfinite(objective).all():
        bad = objective[~np.isfinite(objective)][0]
        raise FloatingPointError(
            f"The EM objective became {float(bad)!r} after {iteration} iterations. "
            "Scale the input data or use the default prior."
        )


def run_em(
    e_step: Callable[[Params, np.ndarray], SuffStats],
    init: Params,
    hyper: Hyperparameters | None,
    reg_covar: float,
    max_iter: int,
    tol: float,
) -> list[EMResult]:
    """Iterate E- and M-steps from a batch of starts until each objective settles.

    ``init`` holds R starting points stacked on a leading axis. ``e_step(params,
    batch)`` maps a batch of parameters to summed statistics of all rows (a
    blocks object's ``e_step``); ``batch`` holds the positions in ``init`` of the
    entries still running (blocks with one row of weights per entry use it).
    ``hyper`` must be in the same frame as ``init``. Returns one result per start.
    """
    t = init.covariance_type
    active = np.arange(init.batch_shape[0])
    params = init
    stats = e_step(params, active)
    ll, lp = log_objective_parts(stats, params, hyper)
    objective = np.asarray(ll + lp, dtype=np.float64)
    history = [objective]  # every start's objective after each iteration (NaN once it has stopped)
    results: list[EMResult | None] = [None] * active.size
    for iteration in range(1, max_iter + 1):
        params = m_step(stats, t, hyper, reg_covar, init.log_noise_density)
        stats = e_step(params, active)
        ll, lp = log_objective_parts(stats, params, hyper)
        previous, objective = objective, np.asarray(ll + lp, dtype=np.float64)
        _check_finite(objective, iteration)
        history.append(np.full(len(results), np.nan))
        history[-1][active] = objective
        converged = np.abs(objective - previous) <= tol * np.abs(objective)
        stop = converged | (iteration == max_iter)
        if not stop.any():
            continue
        traces = np.stack(history)
        for j in np.flatnonzero(stop):
            results[active[j]] = EMResult(params.take(j), float(objective[j]), float(ll[j]), float(lp[j]),
                                          bool(converged[j]), iteration, traces[:, active[j]].copy())
        if stop.all():
            break
        keep = np.flatnonzero(~stop)
        params, stats, active, objective = params.take(keep), stats.take(keep), active[keep], objective[keep]
    return results


def _run_batches(e_step, shift: np.ndarray, inits: list[Params], hyper: Hyperparameters | None,
                 reg_covar: float, max_iter: int, tol: float, batch_size: int | None) -> list[EMResult]:
    """EM from ``inits`` (in the frame shifted by ``shift``), ``batch_size`` at a time;
    results in the data's frame."""
    h = None if hyper is None else hyper.shifted(shift)
    size = batch_size or len(inits)
    results = []
    for a in range(0, len(inits), size):
        results += run_em(e_step, Params.stack(inits[a:a + size]), h, reg_covar, max_iter, tol)
    for r in results:
        r.params = r.params.shifted(shift)
    return results


def em_kernel(blocks, n_components: int, compiled: bool | None = None):
    """The compiled EM loop (:mod:`gmmflow.kernels.em_loop`) when it should run on ``blocks``, else None.

    ``compiled``: None (default) the loop on in-memory rows whose work per start
    and iteration is at most :data:`COMPILED_MAX_WORK` (see the module
    docstring), when numba imports; False never; True on any in-memory rows
    (ImportError without numba). Rows with missing cells and dask blocks always
    take the numpy path.
    """
    if compiled is False or type(blocks) is not ArrayBlocks:
        return None
    work = blocks.n_rows * (n_components + 1) * blocks.n_features ** 2
    if compiled is None and work > COMPILED_MAX_WORK:
        return None
    try:
        from gmmflow.kernels import em_loop
    except ImportError:
        if compiled:
            raise
        return None
    return em_loop


def _as_matrices(cov: np.ndarray, covariance_type: str, n_components: int, d: int) -> np.ndarray:
    """A batch's covariances as the compiled loop's matrices (R, Kc, d, d), Kc = 1 for tied."""
    if covariance_type == "tied":
        return cov[:, None]
    return full_covariances(cov, covariance_type, n_components, d)


def _from_matrices(C: np.ndarray, covariance_type: str) -> np.ndarray:
    """Inverse of :func:`_as_matrices` (a spherical variance is read, not averaged, from the diagonal)."""
    if covariance_type == "full":
        return C
    if covariance_type == "tied":
        return C[:, 0]
    if covariance_type == "diag":
        return np.diagonal(C, axis1=-2, axis2=-1).copy()
    return C[..., 0, 0].copy()


def _kernel_prior(hyper: Hyperparameters | None, n_components: int, n_weights: int):
    """The prior as :func:`gmmflow.kernels.em_loop.run_batch` takes it (the scale as a matrix)."""
    if hyper is None:
        return None
    t, d = hyper.covariance_type, hyper.n_features
    scale = hyper.scale if t in ("full", "tied") else hyper.scale * np.eye(d)  # diag: diag(s2), spherical: s2 I
    scale_chol = hyper.scale_chol if t in ("full", "tied") else np.zeros((d, d))
    return (float(hyper.alpha), float(hyper.shrinkage), float(hyper.dof), hyper.mean, scale, scale_chol,
            log_prior_constant(hyper, n_components, n_weights))


def _run_compiled(kernel, blocks, inits: list[Params], hyper: Hyperparameters | None, reg_covar: float,
                  max_iter: int, tol: float) -> list[EMResult | None]:
    """EM from ``inits`` (blocks' frame) by the compiled loop; results in the data's frame,
    None for a start the loop could not finish (see the module docstring).

    Rows of weights (B, n) go one to each start, as in :func:`fit_replicates`.
    """
    init = Params.stack(inits)
    t, (R, K, d) = init.covariance_type, init.means.shape
    shift, sw = blocks.shift, blocks.sample_weight
    if sw is None:
        sw = np.ones(blocks.n_rows)
    rows = np.arange(R) if sw.ndim == 2 else np.zeros(R, dtype=np.int64)
    prior = _kernel_prior(None if hyper is None else hyper.shifted(shift), K, init.weights.shape[-1])
    noise = init.log_noise_density
    out = kernel.run_batch(t, blocks.X - shift, np.atleast_2d(sw), rows, init.weights, init.means,
                           _as_matrices(init.cov, t, K, d), 0.0 if noise is None else noise, prior,
                           reg_covar, max_iter, tol)
    ok = out["status"] == 0
    results: list[EMResult | None] = [None] * R
    if not ok.any():
        return results
    try:
        params = Params.from_cov(out["weights"][ok], out["means"][ok], _from_matrices(out["cov"][ok], t), t,
                                 check_symmetric=False, log_noise_density=noise)
    except NotPositiveDefiniteError:  # numpy's factorisation disagrees at the edge: numpy decides
        return results
    for j, r in enumerate(np.flatnonzero(ok)):
        ll, lp, n_iter = float(out["log_likelihood"][r]), float(out["log_prior"][r]), int(out["n_iter"][r])
        results[r] = EMResult(params.take(j).shifted(shift), ll + lp, ll, lp, bool(out["converged"][r]), n_iter,
                              out["trace"][r, :n_iter + 1].copy())
    return results


def run_starts(blocks, inits: list[Params], hyper: Hyperparameters | None, reg_covar: float, max_iter: int,
               tol: float, batch_size: int | None = None, compiled: bool | None = None) -> list[EMResult]:
    """EM from each of ``inits`` (blocks' frame; ``hyper`` in the data's) on ``blocks``: the compiled
    loop where :func:`em_kernel` chooses it, else (and when a start fails in it, so that the error
    is numpy's) numpy's batches of ``batch_size``. Results in the data's frame."""
    kernel = em_kernel(blocks, inits[0].means.shape[-2], compiled)
    results = None if kernel is None else _run_compiled(kernel, blocks, inits, hyper, reg_covar, max_iter, tol)
    if results is None or None in results:
        results = _run_batches(blocks.e_step, blocks.shift, inits, hyper, reg_covar, max_iter, tol, batch_size)
    return results


def fit_restarts(
    blocks,
    starts: StartingPoints,
    hyper: Hyperparameters | None,
    reg_covar: float,
    methods: list[str],
    max_iter: int,
    tol: float,
    seed: int,
    batch_size: int | None = None,
    compiled: bool | None = None,
) -> list[EMResult]:
    """One restart per entry of ``methods`` (its start method), each from its own child seed.

    Restarts run ``batch_size`` at a time (default: all together). ``hyper`` is
    in the data's frame; the iterations run in the blocks' frame and the
    returned parameters are back in the data's frame. ``compiled`` chooses
    the compiled loop or numpy (:func:`em_kernel`; the compiled loop runs each
    restart alone whatever ``batch_size``).

    BLAS is held to one thread: the E-step's GEMMs are small (one row block
    each) and a multi-threaded BLAS spends more time waking its threads than
    computing (measured 4x slower here); blocks run on a thread pool instead.
    """
    with one_blas_thread():
        rngs = [np.random.default_rng(child) for child in np.random.SeedSequence(seed).spawn(len(methods))]
        inits = starts.draw_all(methods, rngs)
        results = run_starts(blocks, inits, hyper, reg_covar, max_iter, tol, batch_size, compiled)
    for r, method in zip(results, methods):
        r.start = method
    return results


def fit_replicates(
    blocks,
    start: Params,
    n_replicates: int,
    hyper: Hyperparameters | None,
    reg_covar: float,
    max_iter: int,
    tol: float,
    compiled: bool | None = None,
) -> list[EMResult | None]:
    """``n_replicates`` EM runs from one start (data's frame), advanced as one batch.

    Each batch entry sees the blocks' own row of weights (bootstrap
    replicates: ``blocks.sample_weight`` is (n_replicates, n)). A replicate
    whose fit fails (a covariance collapses, the objective overflows) is
    ``None``: when the batch fails, its entries are rerun one at a time to find
    which. ``compiled`` as :func:`fit_restarts`; a replicate the compiled loop
    cannot finish is rerun alone by numpy.
    """
    init = start.shifted(-blocks.shift)
    kernel = em_kernel(blocks, init.means.shape[-2], compiled)
    if kernel is not None:
        found = _run_compiled(kernel, blocks, [init] * n_replicates, hyper, reg_covar, max_iter, tol)
        return [r if r is not None else _one_replicate(blocks, init, b, hyper, reg_covar, max_iter, tol)
                for b, r in enumerate(found)]
    with one_blas_thread():
        try:
            return _run_batches(blocks.e_step, blocks.shift, [init] * n_replicates, hyper, reg_covar, max_iter,
                                tol, None)
        except (NotPositiveDefiniteError, FloatingPointError):
            if n_replicates == 1:
                return [None]
        return [_one_replicate(blocks, init, b, hyper, reg_covar, max_iter, tol) for b in range(n_replicates)]


def _one_replicate(blocks, init: Params, b: int, hyper, reg_covar, max_iter, tol) -> EMResult | None:
    """Batch entry ``b`` alone (its own row of weights), or None if its fit fails."""
    def e_step(params, batch):
        return blocks.e_step(params, np.array([b]))

    try:
        return _run_batches(e_step, blocks.shift, [init], hyper, reg_covar, max_iter, tol, None)[0]
    except (NotPositiveDefiniteError, FloatingPointError):
        return None


def best_restart(restarts: list[EMResult]) -> int:
    """Index of the restart with the highest objective; warns if it did not converge."""
    best = int(np.argmax([r.objective for r in restarts]))
    if not restarts[best].converged:
        n_conv = sum(r.converged for r in restarts)
        warnings.warn(
            f"EM did not converge: the best restart stopped at max_iter={restarts[best].n_iter} "
            f"({n_conv} of {len(restarts)} restarts converged). Increase max_iter, loosen tol, "
            "or check the data; the result has converged=False.",
            ConvergenceWarning,
            stacklevel=4,
        )
    return best

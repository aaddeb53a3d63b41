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
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from threadpoolctl import ThreadpoolController

from gmmflow.core.em_steps import Params, SuffStats, log_objective_parts, m_step
from gmmflow.core.hyperparameters import Hyperparameters
from gmmflow.core.initialization import StartingPoints
from gmmflow.exceptions import ConvergenceWarning, NotPositiveDefiniteError


_CONTROLLER: list[ThreadpoolController] = []


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
) -> list[EMResult]:
    """One restart per entry of ``methods`` (its start method), each from its own child seed.

    Restarts run ``batch_size`` at a time (default: all together). ``hyper`` is
    in the data's frame; the iterations run in the blocks' frame and the
    returned parameters are back in the data's frame.

    BLAS is held to one thread: the E-step's GEMMs are small (one row block
    each) and a multi-threaded BLAS spends more time waking its threads than
    computing (measured 4x slower here); blocks run on a thread pool instead.
    """
    with one_blas_thread():
        rngs = [np.random.default_rng(child) for child in np.random.SeedSequence(seed).spawn(len(methods))]
        inits = starts.draw_all(methods, rngs)
        results = _run_batches(blocks.e_step, blocks.shift, inits, hyper, reg_covar, max_iter, tol, batch_size)
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
) -> list[EMResult | None]:
    """``n_replicates`` EM runs from one start (data's frame), advanced as one batch.

    Each batch entry sees the blocks' own row of weights (bootstrap
    replicates: ``blocks.sample_weight`` is (n_replicates, n)). A replicate
    whose fit fails (a covariance collapses, the objective overflows) is
    ``None``: when the batch fails, its entries are rerun one at a time to find
    which.
    """
    init = start.shifted(-blocks.shift)
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

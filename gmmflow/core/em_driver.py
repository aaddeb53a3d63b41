"""The one EM driver: restarts, seeding, the iteration and convergence.

Every backend (in-memory :class:`~gmmflow.core.row_blocks.ArrayBlocks`,
dask :class:`~gmmflow.core.dask_blocks.DaskBlocks`) differs only in its
blocks object; the loop below is the same for all.

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
from threadpoolctl import threadpool_limits

from gmmflow.core.em_steps import Params, SuffStats, log_objective_parts, m_step
from gmmflow.core.hyperparameters import Hyperparameters
from gmmflow.core.initialization import StartingPoints
from gmmflow.exceptions import ConvergenceWarning


@dataclass(eq=False)
class EMResult:
    """One EM run: final parameters, objective parts and the objective trace.

    ``trace[0]`` is the objective at the initial parameters, ``trace[t]`` after
    the t-th M-step; ``n_iter = len(trace) - 1``.
    """

    params: Params
    objective: float
    log_likelihood: float
    log_prior: float
    converged: bool
    n_iter: int
    trace: np.ndarray = field(repr=False)


def run_em(
    e_step: Callable[[Params], SuffStats],
    init: Params,
    hyper: Hyperparameters | None,
    reg_covar: float,
    max_iter: int,
    tol: float,
) -> EMResult:
    """Iterate E- and M-steps from ``init`` until the objective settles.

    ``e_step`` maps parameters to summed statistics of all rows (a blocks
    object's ``e_step``); ``hyper`` must be in the same frame as ``init``.
    """
    t = init.covariance_type
    params = init
    stats = e_step(params)
    ll, lp = log_objective_parts(stats, params, hyper)
    trace = [ll + lp]
    converged = False
    for _ in range(max_iter):
        params = m_step(stats, t, hyper, reg_covar)
        stats = e_step(params)
        ll, lp = log_objective_parts(stats, params, hyper)
        trace.append(ll + lp)
        if not np.isfinite(trace[-1]):
            raise FloatingPointError(
                f"The EM objective became {trace[-1]!r} after {len(trace) - 1} iterations. "
                "Scale the input data or use the default prior."
            )
        if abs(trace[-1] - trace[-2]) <= tol * abs(trace[-1]):
            converged = True
            break
    return EMResult(params, trace[-1], ll, lp, converged, len(trace) - 1, np.asarray(trace))


def fit_restarts(
    blocks,
    starts: StartingPoints,
    hyper: Hyperparameters | None,
    reg_covar: float,
    n_init: int,
    max_iter: int,
    tol: float,
    seed: int,
) -> list[EMResult]:
    """All ``n_init`` restarts on ``blocks``, each from its own child seed.

    ``hyper`` is in the data's frame; the iterations run in the blocks' frame
    and the returned parameters are back in the data's frame.

    BLAS is held to one thread: the E-step's GEMMs are small (one row block
    each) and a multi-threaded BLAS spends more time waking its threads than
    computing (measured 4x slower here); blocks run on a thread pool instead.
    """
    shift = blocks.shift
    h = None if hyper is None else hyper.shifted(shift)
    results = []
    with threadpool_limits(limits=1, user_api="blas"):
        for child in np.random.SeedSequence(seed).spawn(n_init):
            init_params = starts.draw(np.random.default_rng(child))
            r = run_em(blocks.e_step, init_params, h, reg_covar, max_iter, tol)
            r.params = r.params.shifted(shift)
            results.append(r)
    return results


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

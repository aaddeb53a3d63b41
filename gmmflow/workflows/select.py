"""Choosing the number of components: EM criteria (BIC, ICL) and, optionally, PSIS-LOO.

Every (covariance type, K) cell of the grid is fitted by EM with restarts;
with ``mcmc=True`` the posterior of each cell is sampled with NUTS (from
that EM estimate) and scored by ELPD-LOO. A cell that fails is a row with
its error; the grid goes on.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable

import arviz as az
import numpy as np
import pandas as pd

from gmmflow._validation import as_data_matrix, check_int, check_seed
from gmmflow.exceptions import ConvergenceWarning, SamplingWarning
from gmmflow.models.spec import COVARIANCE_TYPES, GMM
from gmmflow.resources import check_memory, em_bytes, posterior_bytes
from gmmflow.workflows.em import aic, bic, fit_em, icl
from gmmflow.workflows.mcmc import available_sampler, diagnose, sample_posterior

CRITERIA = ("bic", "icl", "loo")


def check_ks(ks, n_rows: int) -> list[int]:
    """Validate a grid of component counts: whole numbers in [1, n_rows], at least one."""
    if isinstance(ks, (int, np.integer)):
        ks = [ks]
    if not isinstance(ks, Iterable) or isinstance(ks, str):
        raise TypeError(f"ks must be an iterable of whole numbers such as range(1, 7); got {ks!r}.")
    ks = [check_int(k, "every entry of ks", 1) for k in ks]
    if not ks:
        raise ValueError("ks is empty; give at least one number of components, e.g. range(1, 7).")
    too_big = [k for k in ks if k > n_rows]
    if too_big:
        raise ValueError(f"ks contains {too_big} but X has only {n_rows} rows; every K must be at most "
                         "the number of rows.")
    return sorted(set(ks))


def check_covariance_types(types) -> list[str]:
    if isinstance(types, str):
        types = [types]
    types = list(types)
    bad = [t for t in types if t not in COVARIANCE_TYPES]
    if bad or not types:
        raise ValueError(f"covariance_types must be a non-empty list drawn from {COVARIANCE_TYPES}; got {types!r}.")
    return list(dict.fromkeys(types))


def _cell_seeds(seed: int, n: int) -> list[int]:
    return [int(s.generate_state(1)[0]) for s in np.random.SeedSequence(seed).spawn(n)]


def _em_row(idata) -> dict:
    est = idata["em_estimate"]
    return {
        "objective": float(est["objective"]), "log_likelihood": float(est["log_likelihood"]),
        "converged": bool(est["converged"]),
        "bic": bic(idata), "icl": icl(idata), "aic": aic(idata),
    }


def _loo_row(idata) -> dict:
    loo = az.loo(idata, pointwise=True)
    checks = diagnose(idata)["value"]
    return {
        "elpd_loo": float(loo["elpd_loo"]), "elpd_loo_se": float(loo["se"]), "p_loo": float(loo["p_loo"]),
        "n_pareto_k_above_0.7": int((loo["pareto_k"].values > 0.7).sum()),
        "max_r_hat": float(checks["max r_hat"]), "divergences": int(checks["divergences"]),
    }


def _fit_cell(data, model, seed, mcmc, em_kwargs, mcmc_kwargs):
    """One grid cell: (row, fit). Exceptions propagate to the caller, which records them."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        if mcmc:
            fit = sample_posterior(model, data, seed=seed, em_kwargs=em_kwargs, **mcmc_kwargs)
        else:
            fit = fit_em(model, data, seed=seed, **em_kwargs)
    row = {"n_parameters": model.n_parameters(data.shape[1]), **_em_row(fit)}
    if mcmc:
        row.update(_loo_row(fit))
    ours = (ConvergenceWarning, SamplingWarning)
    row["warnings"] = " | ".join(dict.fromkeys(str(w.message) for w in caught if issubclass(w.category, ours)))
    return row, fit


def _compare_loo(fits: dict) -> pd.DataFrame:
    """``arviz.compare`` of the sampled cells: elpd difference to the best, its se, stacking weight."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        table = az.compare({f"{t}:{k}": fit for (t, k), fit in fits.items()})
    keys = [tuple(name.split(":")) for name in table.index]
    return pd.DataFrame({
        "covariance_type": [t for t, _ in keys], "k": [int(k) for _, k in keys],
        "elpd_diff": table["elpd_diff"].values, "dse": table["dse"].values,
        "loo_weight": table["weight"].values,
    })


def mark_best(table: pd.DataFrame) -> pd.DataFrame:
    """Add ``best_bic``, ``best_icl`` (lowest) and, when LOO was run, ``best_loo``.

    ``best_loo`` follows the one-standard-error rule: among the cells whose
    ELPD is within one standard error of the difference (``dse``) of the
    best, the one with the fewest parameters. Overfitted mixtures (an extra,
    nearly empty component) predict almost as well as the true one, so the
    raw maximum would pick them about half the time.
    """
    table = table.copy()
    ok = table["status"] == "ok"
    for criterion in ("bic", "icl"):
        table[f"best_{criterion}"] = False
        if ok.any():
            table.loc[table.loc[ok, criterion].idxmin(), f"best_{criterion}"] = True
    if "elpd_diff" in table:
        table["best_loo"] = False
        near = table[ok & (table["elpd_diff"] <= table["dse"].fillna(0.0))]
        if len(near):
            table.loc[near.sort_values(["n_parameters", "k"]).index[0], "best_loo"] = True
    return table


def select_components(
    X,
    ks: Iterable[int] = range(1, 7),
    covariance_types: Iterable[str] = ("full",),
    *,
    prior="default",
    reg_covar: float = 1e-6,
    mcmc: bool = False,
    n_init: int = 10,
    seed: int | None = None,
    draws: int = 1000,
    tune: int = 1000,
    chains: int = 4,
    sampler: str = "auto",
    progressbar: bool = False,
    posterior_predictive: bool = False,
    return_fits: bool = False,
    em_kwargs: dict | None = None,
):
    """Fit every (covariance type, K) and tabulate BIC, ICL and, with ``mcmc``, ELPD-LOO.

    Parameters
    ----------
    X : array_like (n, d), DataFrame or DataArray
    ks : iterable of int, default range(1, 7)
    covariance_types : iterable of str, default ("full",)
    prior : "default", Prior or None
        As in :class:`GMM`; ``None`` (MLE) is not allowed with ``mcmc=True``.
    reg_covar : float, default 1e-6
        As in :class:`GMM` (used by the MLE only).
    mcmc : bool, default False
        Also sample each cell's posterior with NUTS and score it by PSIS-LOO
        (``arviz.loo``), compared across cells with ``arviz.compare``.
    n_init : int, default 10
        EM restarts per cell.
    seed : int, optional
        Each cell gets its own seed spawned from this one (same seed, same table).
    draws, tune, chains, sampler, progressbar, posterior_predictive
        Passed to :func:`gmmflow.sample_posterior` when ``mcmc=True``.
    return_fits : bool, default False
        Also return a dict ``{(covariance_type, k): InferenceData}`` of the successful fits.
    em_kwargs : dict, optional
        More ``fit_em`` options (``max_iter``, ``tol``, ``init``...).

    Returns
    -------
    table : pandas.DataFrame
        One row per cell: ``covariance_type``, ``k``, ``status`` ("ok" or
        "failed"), ``error``, ``n_parameters``, ``objective``,
        ``log_likelihood``, ``bic``, ``icl``, ``aic`` (lower is better),
        ``converged``, ``warnings``; with ``mcmc`` also ``elpd_loo``,
        ``elpd_loo_se``, ``p_loo``, ``n_pareto_k_above_0.7``, ``max_r_hat``,
        ``divergences``, ``elpd_diff``, ``dse``, ``loo_weight``. Boolean
        columns ``best_bic``, ``best_icl`` (and ``best_loo``, see
        :func:`mark_best`) mark the choice of each criterion.
    fits : dict, only if ``return_fits``
    """
    data = as_data_matrix(X)
    ks = check_ks(ks, data.shape[0])
    types = check_covariance_types(covariance_types)
    GMM(1, types[0], prior=prior, reg_covar=reg_covar)  # validates prior and reg_covar before any work
    if mcmc and prior is None:
        raise ValueError("mcmc=True needs a prior (NUTS samples the posterior); use prior='default'.")
    n_init = check_int(n_init, "n_init", 1)
    seed = check_seed(seed)
    em_kwargs = {"n_init": n_init} | dict(em_kwargs or {})
    mcmc_kwargs = {}
    n, d = data.shape
    if mcmc:
        mcmc_kwargs = {"draws": check_int(draws, "draws", 1), "tune": check_int(tune, "tune", 0),
                       "chains": check_int(chains, "chains", 1), "sampler": available_sampler(sampler),
                       "progressbar": progressbar, "posterior_predictive": bool(posterior_predictive)}
    per_cell = [posterior_bytes(n, d, k, chains, draws, posterior_predictive) if mcmc else em_bytes(n, d, k) for k in ks]
    needed = len(types) * sum(per_cell) if return_fits or mcmc else max(per_cell)
    check_memory(needed, f"select_components over K={ks} x {types}",
                 "use fewer K values, fewer draws, or fewer rows")

    grid = [(t, k) for t in types for k in ks]
    rows, fits = [], {}
    for (t, k), cell_seed in zip(grid, _cell_seeds(seed, len(grid))):
        base = {"covariance_type": t, "k": k}
        try:
            model = GMM(k, t, prior=prior, reg_covar=reg_covar)
            row, fit = _fit_cell(data, model, cell_seed, mcmc, em_kwargs, mcmc_kwargs)
        except (ValueError, ArithmeticError, RuntimeError, np.linalg.LinAlgError) as err:
            rows.append({**base, "status": "failed", "error": f"{type(err).__name__}: {err}"})
            continue
        rows.append({**base, "status": "ok", "error": "", **row})
        if return_fits or mcmc:
            fits[(t, k)] = fit
    table = pd.DataFrame(rows)
    if mcmc and fits:
        table = table.merge(_compare_loo(fits), on=["covariance_type", "k"], how="left")
    table = mark_best(table)
    return (table, fits) if return_fits else table

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

from gmmflow import defaults
from gmmflow import schema as S
from gmmflow.checks import check_int, check_seed, summarize_value, summarize_values
from gmmflow.core.gaussian import COVARIANCE_TYPES
from gmmflow.exceptions import ConvergenceWarning, SamplingWarning
from gmmflow.inputs.matrix import as_data_matrix
from gmmflow.models.spec import GMM
from gmmflow.resources import check_memory, describe_ks, em_bytes, posterior_bytes
from gmmflow.workflows.criteria import aic, bic, icl
from gmmflow.workflows.diagnostics import diagnose
from gmmflow.workflows.em_fit import fit_em
from gmmflow.workflows.nuts_backends import available_sampler
from gmmflow.workflows.posterior_sampling import sample_posterior
from gmmflow.workflows.sampler_options import SamplerOptions

CRITERIA = ("bic", "icl", "loo")


class SelectionTable(pd.DataFrame):
    """The table of :func:`select_components`: a DataFrame with the fits it was made from.

    ``fits`` maps ``(covariance_type, k)`` to the cell's ``InferenceData``;
    it is filled when the fits were kept (``keep_fits=True``, always with
    ``mcmc=True``) and empty otherwise. Rows and columns selected from the
    table keep the same ``fits``.
    """

    _metadata = ["fits"]

    @property
    def _constructor(self):
        return SelectionTable

    def chosen(self, criterion: str) -> tuple[str, int]:
        """(covariance_type, k) marked ``best_<criterion>``."""
        flag = f"best_{criterion}"
        best = self[self[flag]] if flag in self else self.iloc[0:0]
        if best.empty:
            errors = [f"K={r.k}: {r.error}" for r in self.itertuples() if r.status != "ok"]
            shown = "; ".join(errors[:3]) + (f"; ... and {len(errors) - 3} more" if len(errors) > 3 else "")
            raise RuntimeError(f"no K could be chosen by {criterion}: every fit failed ({shown}).")
        row = best.iloc[0]
        return row["covariance_type"], int(row["k"])


def check_ks(ks, n_rows: int) -> list[int]:
    """Validate a grid of component counts: whole numbers in [1, n_rows], at least one.

    Bounded by the number of rows before anything is materialised: a
    ``range`` is checked by its ends (``range(1, 10**20)`` costs nothing),
    any other iterable one value at a time, keeping only distinct valid
    values (at most ``n_rows`` of them) and the first ``MAX_REPORTED`` too large.
    """
    if isinstance(ks, (int, np.integer)):
        ks = [ks]
    if not isinstance(ks, Iterable) or isinstance(ks, str):
        raise TypeError(f"ks must be an iterable of whole numbers such as range(1, 7); got {summarize_value(ks)}.")
    if isinstance(ks, range):
        ks = ks if ks.step > 0 else ks[::-1]
        if not ks:
            raise ValueError(f"ks is empty ({ks}); give at least one number of components, e.g. range(1, 7).")
        check_int(ks[0], "every entry of ks", 1)
        first_too_big = max(0, -(-(n_rows + 1 - ks.start) // ks.step))
        _refuse_too_big(ks[first_too_big:], n_rows)
        return list(ks)
    valid, too_big = set(), set()
    for k in ks:
        k = check_int(k, "every entry of ks", 1)
        (valid if k <= n_rows else too_big).add(k)
        if len(too_big) >= MAX_REPORTED:
            break
    if not valid and not too_big:
        raise ValueError("ks is empty; give at least one number of components, e.g. range(1, 7).")
    _refuse_too_big(sorted(too_big), n_rows, more=len(too_big) >= MAX_REPORTED)
    return sorted(valid)


MAX_REPORTED = 1000  # too-large K values collected before the grid is refused


def _refuse_too_big(too_big, n_rows: int, more: bool = False) -> None:
    if too_big:
        raise ValueError(f"ks contains {summarize_values(too_big)}{' and more' if more else ''} but X has only "
                         f"{n_rows} rows; every K must be at most the number of rows.")


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
    est = idata[S.EM_ESTIMATE]
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


def _fit_cell(data, model, seed, sampling: SamplerOptions | None, posterior_predictive, em_kwargs):
    """One grid cell: (row, fit). Exceptions propagate to the caller, which records them.

    ``sampling`` None: EM only; else also the posterior with these options.
    """
    mcmc = sampling is not None
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        if mcmc:
            fit = sample_posterior(model, data, seed=seed, em_kwargs=em_kwargs,
                                   posterior_predictive=posterior_predictive, **vars(sampling))
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
    reg_covar: float = defaults.REG_COVAR,
    mcmc: bool = False,
    n_init: int = defaults.N_INIT,
    seed: int | None = None,
    posterior_predictive: bool = False,
    keep_fits: bool = False,
    em_kwargs: dict | None = None,
    **sampling,
) -> SelectionTable:
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
    posterior_predictive : bool, default False
        Passed to :func:`gmmflow.sample_posterior` when ``mcmc=True``.
    keep_fits : bool, default False
        Keep every successful cell's InferenceData in the table's ``fits``
        (always kept with ``mcmc=True``).
    em_kwargs : dict, optional
        More ``fit_em`` options (``max_iter``, ``tol``, ``init``...).
    **sampling
        With ``mcmc=True``: the sampling options of ``sample_posterior``
        (``draws``, ``tune``, ``chains``, ``sampler``, ``progressbar``;
        ``progressbar`` defaults to False here).

    Returns
    -------
    SelectionTable
        A DataFrame with one row per cell: ``covariance_type``, ``k``,
        ``status`` ("ok" or "failed"), ``error``, ``n_parameters``,
        ``objective``, ``log_likelihood``, ``bic``, ``icl``, ``aic`` (lower is
        better), ``converged``, ``warnings``; with ``mcmc`` also
        ``elpd_loo``, ``elpd_loo_se``, ``p_loo``, ``n_pareto_k_above_0.7``,
        ``max_r_hat``, ``divergences``, ``elpd_diff``, ``dse``,
        ``loo_weight``. Boolean columns ``best_bic``, ``best_icl`` (and
        ``best_loo``, see :func:`mark_best`) mark the choice of each
        criterion; ``table.fits`` holds the kept fits.
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
    options = SamplerOptions.from_kwargs("select_components", {"progressbar": False} | sampling)
    sampling_options = options.with_sampler(available_sampler(options.sampler)) if mcmc else None
    n, d = data.shape
    restarts = check_int(em_kwargs["n_init"], "n_init", 1)
    per_cell = [posterior_bytes(n, d, k, options.chains, options.draws, posterior_predictive, t, restarts,
                                loo=True) if mcmc else em_bytes(n, d, k, restarts, t) for t in types for k in ks]
    needed = sum(per_cell) if keep_fits or mcmc else max(per_cell)
    check_memory(needed, f"select_components over {describe_ks(ks)} x {types} with {restarts} restart(s) each",
                 "use fewer K values, fewer restarts, fewer draws, or fewer rows")

    grid = [(t, k) for t in types for k in ks]
    rows, fits = [], {}
    for (t, k), cell_seed in zip(grid, _cell_seeds(seed, len(grid))):
        base = {"covariance_type": t, "k": k}
        try:
            model = GMM(k, t, prior=prior, reg_covar=reg_covar)
            row, fit = _fit_cell(data, model, cell_seed, sampling_options, posterior_predictive, em_kwargs)
        except (ValueError, ArithmeticError, RuntimeError, np.linalg.LinAlgError) as err:
            rows.append({**base, "status": "failed", "error": f"{type(err).__name__}: {err}"})
            continue
        rows.append({**base, "status": "ok", "error": "", **row})
        if keep_fits or mcmc:
            fits[(t, k)] = fit
    table = pd.DataFrame(rows)
    if mcmc and fits:
        table = table.merge(_compare_loo(fits), on=["covariance_type", "k"], how="left")
    table = SelectionTable(mark_best(table))
    table.fits = fits
    return table

"""The main job: EM, NUTS, comparison, plots and report into one output directory."""

from __future__ import annotations

import os
from pathlib import Path

import arviz as az
import pandas as pd

from gmmflow import io
from gmmflow._validation import as_data_matrix, check_int, check_seed
from gmmflow.models.spec import GMM
from gmmflow.resources import check_memory, posterior_bytes
from gmmflow.workflows.mcmc import available_sampler, sample_posterior
from gmmflow.workflows.report import write_report_into
from gmmflow.workflows.select import CRITERIA, check_covariance_types, check_ks, select_components

RESULT_FILE = "run.nc"


def run(
    X,
    out_dir: str | os.PathLike,
    *,
    ks=2,
    covariance_type: str = "full",
    criterion: str = "bic",
    n_init: int = 10,
    draws: int = 1000,
    tune: int = 1000,
    chains: int = 4,
    sampler: str = "auto",
    seed: int | None = None,
    progressbar: bool = True,
    overwrite: bool = False,
) -> tuple[az.InferenceData, pd.DataFrame | None]:
    """Fit, sample, compare and report; write ``out_dir/run.nc``, the PNGs and ``report.html``.

    With one K: EM (``n_init`` restarts) then NUTS from the EM estimate,
    with posterior predictive draws. With several K: every K is fitted by
    EM and sampled by NUTS (:func:`select_components` with ``mcmc=True``),
    the K chosen by ``criterion`` is reported, and the whole table is stored
    in ``run.nc`` (group ``model_selection``) and drawn.

    ``out_dir`` is written whole or not at all: everything is built in a
    temporary directory that is renamed into place at the end, so a failure
    or an interrupt (Ctrl-C) leaves no partial output.

    Returns
    -------
    (InferenceData, table or None)
        The chosen fit (as saved) and the selection table when several K were given.
    """
    out_dir = Path(out_dir)
    io.check_output_directory(out_dir, overwrite)
    data = as_data_matrix(X)
    ks = check_ks(ks, data.shape[0])
    covariance_type = check_covariance_types([covariance_type])[0]
    if criterion not in CRITERIA:
        raise ValueError(f"criterion must be one of {', '.join(map(repr, CRITERIA))}; got {criterion!r}.")
    GMM(ks[0], covariance_type)
    draws, chains = check_int(draws, "draws", 1), check_int(chains, "chains", 1)
    tune, n_init = check_int(tune, "tune", 0), check_int(n_init, "n_init", 1)
    sampler, seed = available_sampler(sampler), check_seed(seed)
    n, d = data.shape
    check_memory(sum(posterior_bytes(n, d, k, chains, draws, True) for k in ks),
                 f"gmmflow run with K in {ks}", "use fewer K values, fewer draws or chains, or fewer rows")

    sampling = {"draws": draws, "tune": tune, "chains": chains, "sampler": sampler,
                "progressbar": progressbar}
    with io.atomic_directory(out_dir, overwrite) as tmp:
        if len(ks) == 1:
            table = None
            idata = sample_posterior(GMM(ks[0], covariance_type), data, seed=seed, posterior_predictive=True,
                                     em_kwargs={"n_init": n_init}, **sampling)
        else:
            table, fits = select_components(data, ks, [covariance_type], mcmc=True, n_init=n_init, seed=seed,
                                            return_fits=True, posterior_predictive=True, **sampling)
            idata = io.with_selection(fits[chosen_cell(table, criterion)], table)
        io.save(idata, tmp / RESULT_FILE)
        write_report_into(idata, tmp, table)
    return idata, table


def chosen_cell(table: pd.DataFrame, criterion: str) -> tuple[str, int]:
    """(covariance_type, k) marked ``best_<criterion>`` in a selection table."""
    flag = f"best_{criterion}"
    best = table[table[flag]] if flag in table else table.iloc[0:0]
    if best.empty:
        errors = "; ".join(f"K={r.k}: {r.error}" for r in table.itertuples() if r.status != "ok")
        raise RuntimeError(f"no K could be chosen by {criterion}: every fit failed ({errors}).")
    row = best.iloc[0]
    return row["covariance_type"], int(row["k"])

"""The main job: EM, NUTS, comparison, plots and report into one output directory."""

from __future__ import annotations

import os
from pathlib import Path

import arviz as az
import numpy as np
import pandas as pd

from gmmflow import defaults
from gmmflow import schema as S
from gmmflow.checks import check_int, check_missing, check_seed
from gmmflow.inputs.matrix import as_data_matrix
from gmmflow.models.spec import GMM
from gmmflow.report.page import write_report_into
from gmmflow.resources import check_memory, describe_ks, posterior_bytes
from gmmflow.results.files import atomic_directory, check_output_directory, result_file_bytes, write_result
from gmmflow.results.to_idata import with_selection
from gmmflow.workflows.model_selection import CRITERIA, check_covariance_types, check_ks, select_components
from gmmflow.workflows.nuts_backends import available_sampler
from gmmflow.workflows.posterior_sampling import sample_posterior
from gmmflow.workflows.sampler_options import SamplerOptions

RESULT_FILE = "run.nc"


def run(
    X,
    out_dir: str | os.PathLike,
    *,
    ks=2,
    covariance_type: str = "full",
    criterion: str = "bic",
    n_init: int = defaults.N_INIT,
    seed: int | None = None,
    overwrite: bool = False,
    inputs=(),
    missing: str = defaults.MISSING,
    **sampling,
) -> tuple[az.InferenceData, pd.DataFrame | None]:
    """Fit, sample, compare and report; write ``out_dir/run.nc``, the PNGs and ``report.html``.

    With one K: EM (``n_init`` restarts) then NUTS from the EM estimate,
    with posterior predictive draws. With several K: every K is fitted by
    EM and sampled by NUTS (:func:`select_components` with ``mcmc=True``),
    the K chosen by ``criterion`` is reported, and the whole table is stored
    in ``run.nc`` (group ``model_selection``) and drawn.

    ``out_dir`` is written whole or not at all: everything is built in a
    temporary directory next to it that is renamed into place at the end, so
    a failure or an interrupt (Ctrl-C, SIGTERM) leaves no partial output.
    Before any work, ``out_dir`` is checked (``results.placement``): with
    ``overwrite`` only a directory gmmflow wrote is replaced; it may not be,
    contain or lie inside any of ``inputs`` (the files the data came from;
    the CLI passes ``--data``); its filesystem must be writable and hold the
    result file. One that appears while the run works is not replaced
    without ``overwrite``: the run fails and names where its output is kept.

    ``**sampling`` are the sampling options of ``sample_posterior``
    (``draws``, ``tune``, ``chains``, ``sampler``, ``progressbar``).
    ``missing="marginalize"`` fits data with NaN cells on their observed
    values (as ``fit_em``'s and ``sample_posterior``'s option); one K only.

    Returns
    -------
    (InferenceData, table or None)
        The chosen fit (as saved) and the selection table when several K were given.
    """
    out_dir = Path(out_dir)
    inputs = list(inputs)
    data = as_data_matrix(X, missing=check_missing(missing) == "marginalize")
    ks = check_ks(ks, data.shape[0])
    if len(ks) > 1 and np.isnan(data.values).any():
        raise ValueError(f"X has missing values: choosing K from {describe_ks(ks)} with missing='marginalize' is "
                         "not supported yet. Give one K (e.g. --k 3), or drop the incomplete rows.")
    covariance_type = check_covariance_types([covariance_type])[0]
    if criterion not in CRITERIA:
        raise ValueError(f"criterion must be one of {', '.join(map(repr, CRITERIA))}; got {criterion!r}.")
    GMM(ks[0], covariance_type)
    options = SamplerOptions.from_kwargs("run", sampling)
    options = options.with_sampler(available_sampler(options.sampler))
    n_init, seed = check_int(n_init, "n_init", 1), check_seed(seed)
    n, d = data.shape
    check_memory(sum(posterior_bytes(n, d, k, options.chains, options.draws, True, covariance_type, n_init,
                                     loo=True) for k in ks),
                 f"gmmflow run with {describe_ks(ks)} and {n_init} restart(s)",
                 "use fewer K values, fewer restarts, fewer draws or chains, or fewer rows")
    check_output_directory(out_dir, overwrite, inputs,
                           size=result_file_bytes(n, d, options.chains * options.draws, True))

    with atomic_directory(out_dir, overwrite, inputs) as tmp:
        if len(ks) == 1:
            table = None
            idata = sample_posterior(GMM(ks[0], covariance_type), data, seed=seed, posterior_predictive=True,
                                     em_kwargs={"n_init": n_init}, missing=missing, **vars(options))
        else:
            table = select_components(data, ks, [covariance_type], mcmc=True, n_init=n_init, seed=seed,
                                      posterior_predictive=True, **vars(options))
            idata = with_selection(table.fits[table.chosen(criterion)], table)
            idata.attrs[S.SELECTION_CRITERION_ATTR] = criterion
        write_result(idata, tmp / RESULT_FILE)
        write_report_into(idata, tmp, table)
    return idata, table

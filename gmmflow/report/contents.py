"""What the report shows about a result: its tables, each computed once, and the verdict built from them.

:func:`gather` reads the result (and its model-selection table) and runs
the workflows' tables (``diagnose``, the three kinds of ``compare``);
:func:`findings` turns them into the verdict's sentences. The page layout
lives in ``html_page``.
"""

from __future__ import annotations

import json
import platform
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version

import numpy as np
import pandas as pd
import xarray as xr

from gmmflow import schema as S
from gmmflow.models.spec import GMM
from gmmflow.report.number_format import plural
from gmmflow.report.verdict import (
    Finding,
    assignment_findings,
    calibration_findings,
    em_findings,
    parameter_findings,
    predictive_findings,
    sampling_findings,
    selection_findings,
)
from gmmflow.results.from_idata import (calibration_group, em_arrays, model_from_idata, noise_log_volume,
                                        stored_responsibilities)
from gmmflow.workflows.compare import comparable, compare
from gmmflow.workflows.diagnostics import diagnose

PACKAGES = ("gmmflow", "numpy", "scipy", "pandas", "xarray", "pymc", "pytensor", "arviz", "nutpie",
            "matplotlib", "dask")


def versions() -> dict[str, str]:
    """Python's and each package's version in the environment writing the report."""
    found = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            found[name] = "not installed"
    return found


@dataclass(frozen=True)
class Contents:
    """Everything the page shows, as numbers and tables (``None``: the result has no such part)."""

    model: GMM
    features: list[str]
    n_obs: int
    restarts: pd.DataFrame  # objective, converged, n_iter, chosen: one row per EM restart
    estimate: tuple  # EM weights (K,), means (K, d), full covariances (K, d, d)
    checks: pd.DataFrame | None  # diagnose()
    modes: pd.DataFrame | None  # find_modes(), when diagnose finds more than one mode
    stacking: xr.Dataset | None  # the chain_stacking group, when stack_chains was run
    parameters: pd.DataFrame | None  # compare(..., "parameters")
    assignments: pd.DataFrame | None  # compare(..., "assignments")
    predictive: pd.DataFrame | None  # compare(..., "predictive")
    selection: pd.DataFrame | None  # select_components()
    criterion: str | None  # the criterion K was chosen by, when recorded
    settings: dict[str, str]
    specification: str  # the model spec, JSON
    prior: str  # the resolved prior, JSON, or "none (MLE)"
    versions: dict[str, str]


def restart_table(idata) -> pd.DataFrame:
    """One row per EM restart: ``objective``, ``converged``, ``n_iter``, ``chosen``."""
    restarts = idata[S.EM_RESTARTS]
    best = int(idata[S.EM_ESTIMATE]["best_restart"])
    return pd.DataFrame({
        "objective": restarts["objective"].values.astype(float),
        "converged": restarts["converged"].values.astype(bool),
        "n_iter": restarts["n_iter"].values.astype(int),
        "chosen": np.arange(restarts.sizes[S.RESTART]) == best,
    })


def missing_cells(attrs, n_obs: int, n_features: int) -> dict[str, str]:
    """The count of missing cells of a ``missing="marginalize"`` fit, in words (nothing when none)."""
    n_missing = int(attrs.get(S.N_MISSING_ATTR, 0))
    if n_missing == 0:
        return {}
    share = n_missing / (n_obs * n_features)
    return {"missing values": f"{n_missing} of {n_obs * n_features} cells ({share:.1%}) missing, marginalized: "
                              "each row is fitted on its observed values"}


def settings(idata, model: GMM, features: list[str], n_obs: int, n_restarts: int) -> dict[str, str]:
    """The run's settings in words, from the result's attrs (what was not recorded is left out)."""
    attrs = idata.attrs
    hyper = attrs.get(S.HYPERPARAMETERS_ATTR, "null")
    found = {
        "data": f"{n_obs} observations of {plural(len(features), 'feature')}: {', '.join(features)}",
        "model": f"{plural(model.n_components, 'component')}, {model.covariance_type} covariances",
        **missing_cells(attrs, n_obs, len(features)),
        "prior": "none: maximum likelihood" if hyper == "null" else "conjugate (resolved hyper-parameters below)",
        "EM": ", ".join([plural(n_restarts, "restart")] + [f"{k} {attrs[k]}" for k in ("init", "max_iter", "tol")
                                                          if k in attrs]),
    }
    if model.noise:
        found["noise"] = noise_setting(idata, model)
    if "sampler" in attrs:
        found["sampling"] = (f"{attrs['sampler']}: {plural(int(attrs.get('chains', 0)), 'chain')} \u00d7 "
                             f"{attrs.get('draws', '?')} draws after {attrs.get('tune', '?')} tuning steps")
        if attrs.get("chain_init") == "restarts":
            found["sampling"] += (", chains started at EM restart optima (restarts "
                                  f"{', '.join(map(str, json.loads(attrs['chain_init_restarts'])))})")
    if S.SELECTION_CRITERION_ATTR in attrs:
        found["K chosen by"] = str(attrs[S.SELECTION_CRITERION_ATTR]).upper()
    for key, name in (("seed", "seed"), ("em_seed", "EM seed"), ("created_at", "created"),
                      (S.VERSION_ATTR, "written by gmmflow")):
        if key in attrs:
            found[name] = str(attrs[key])
    return found


def noise_setting(idata, model: GMM) -> str:
    """A noise model's uniform component in words: its weight, how many rows are most probably noise,
    and the volume of its region (given, or mclust's hypervolume of the data)."""
    weight = float(idata[S.EM_ESTIMATE][S.NOISE_WEIGHT])
    log_volume = noise_log_volume(idata)
    text = f"uniform component, EM weight {weight:.3g}"
    resp = stored_responsibilities(idata)
    if resp is not None:
        text += f", {plural(int((resp.argmax(axis=1) == model.n_components).sum()), 'row')} most probably noise"
    origin = "given" if model.noise_volume is not None else "the data's hypervolume, as mclust's hypvol"
    return f"{text}; region volume V = {np.exp(log_volume):.4g} (log V = {log_volume:.4g}; {origin})"


def gather(idata, selection: pd.DataFrame | None = None) -> Contents:
    """Compute every table the report shows, once."""
    model = model_from_idata(idata)
    w, mu, cov, features = em_arrays(idata)
    restarts = restart_table(idata)
    n_obs = int(idata.attrs.get("n_obs", idata[S.OBSERVED_DATA].sizes[S.OBS] if S.has_groups(
        idata, S.OBSERVED_DATA) else 0))
    sampled = S.has_groups(idata, S.POSTERIOR)
    hyper = idata.attrs.get(S.HYPERPARAMETERS_ATTR, "null")
    criterion = idata.attrs.get(S.SELECTION_CRITERION_ATTR)
    checks = diagnose(idata) if sampled else None
    return Contents(
        model=model, features=features, n_obs=n_obs, restarts=restarts, estimate=(w, mu, cov),
        checks=checks, modes=None if checks is None else checks.attrs.get("modes"),
        stacking=idata[S.CHAIN_STACKING] if S.has_groups(idata, S.CHAIN_STACKING) else None,
        parameters=compare(idata) if sampled else None,
        assignments=compare(idata, "assignments") if comparable(idata, "assignments") else None,
        predictive=compare(idata, "predictive") if comparable(idata, "predictive") else None,
        selection=selection, criterion=str(criterion) if criterion else None,
        settings=settings(idata, model, features, n_obs, len(restarts)),
        specification=json.dumps(json.loads(idata.attrs[S.MODEL_ATTR]), indent=2),
        prior="none (MLE)" if hyper == "null" else json.dumps(json.loads(hyper), indent=2),
        versions=versions(),
    )


def findings(contents: Contents) -> list[Finding]:
    """The verdict: selection, EM, sampling, parameters, assignments, prediction, in that order."""
    found = []
    if contents.selection is not None:
        found += selection_findings(contents.selection, contents.model.n_components, contents.criterion)
    found += em_findings(contents.restarts, contents.estimate[0], contents.n_obs, len(contents.features))
    if contents.checks is not None:
        found += sampling_findings(contents.checks)
        found += parameter_findings(contents.parameters)
        if contents.assignments is not None:
            found += assignment_findings(contents.assignments)
        if contents.predictive is not None:
            found += predictive_findings(contents.predictive, contents.n_obs)
    return found


def title(contents: Contents) -> str:
    """The page title: what was fitted."""
    model = contents.model
    method = "EM and NUTS" if contents.checks is not None else "EM"
    return (f"gmmflow report: {model.n_components}-component {model.covariance_type} Gaussian mixture "
            f"({method}, {contents.n_obs} observations)")


# --------------------------------------------------------------------------
# A calibration result (gmmflow.calibrate)
# --------------------------------------------------------------------------
@dataclass(frozen=True)
class CalibrationContents:
    """What the page of a :func:`gmmflow.calibrate` result shows."""

    model: GMM
    table: pd.DataFrame  # one row per quantity: p_value, p_value_chi2, passed
    alpha: float
    n_sims: int
    n_unhealthy: int  # simulations whose posterior failed a sampling check
    settings: dict[str, str]
    specification: str
    sampling_specification: str
    versions: dict[str, str]


def calibration_table(idata) -> pd.DataFrame:
    """One row per quantity (index): ``p_value`` (ECDF band), ``p_value_chi2``, ``passed`` at the recorded level."""
    cal = calibration_group(idata)
    alpha = float(cal.attrs["alpha"])
    table = pd.DataFrame({"p_value": cal[S.P_VALUE].values, "p_value_chi2": cal[S.P_VALUE_CHI2].values},
                         index=[str(q) for q in cal[S.QUANTITY].values])
    table["passed"] = table["p_value"] >= alpha
    return table


def _json(text: str) -> str:
    return json.dumps(json.loads(text), indent=2)


def gather_calibration(idata) -> CalibrationContents:
    """The tables of a calibration page, computed once."""
    cal = calibration_group(idata)
    attrs = idata.attrs
    status = cal[S.SAMPLING_STATUS_ATTR].values
    found = {
        "simulations": f"{cal.sizes[S.SIMULATION]} of {attrs.get('n_obs', '?')} observations each",
        "sampler": f"{attrs.get('sampler', '?')}: {plural(int(attrs.get('chains', 0)), 'chain')} \u00d7 "
                   f"{attrs.get('draws', '?')} draws after {attrs.get('tune', '?')} tuning steps",
        "ranks": f"among {attrs.get('n_ranked', '?')} draws evenly spaced over the chains "
                 f"(ranks 0..{attrs.get('n_ranked', '?')}), {cal.attrs['n_bins']} chi-square bins",
        "test level": f"{cal.attrs['alpha']:g} (ECDF band p-values from {cal.attrs['n_null']} null replicates)",
        "sampled under the simulating model": "yes" if attrs.get(S.SAMPLING_MODEL_ATTR) == attrs[S.MODEL_ATTR]
        and attrs.get(S.SAMPLING_HYPERPARAMETERS_ATTR) == attrs[S.HYPERPARAMETERS_ATTR] else
        "no: a different model or prior (a negative control)",
    }
    for key, name in (("seed", "seed"), ("wall_seconds", "wall time (s)"), ("created_at", "created"),
                      (S.VERSION_ATTR, "written by gmmflow")):
        if key in attrs:
            found[name] = str(attrs[key])
    return CalibrationContents(
        model=model_from_idata(idata), table=calibration_table(idata), alpha=float(cal.attrs["alpha"]),
        n_sims=int(cal.sizes[S.SIMULATION]), n_unhealthy=int(np.sum(status != "ok")), settings=found,
        specification=_json(attrs[S.MODEL_ATTR]) + "\n" + _json(attrs[S.HYPERPARAMETERS_ATTR]),
        sampling_specification=_json(attrs[S.SAMPLING_MODEL_ATTR]) + "\n"
        + _json(attrs[S.SAMPLING_HYPERPARAMETERS_ATTR]),
        versions=versions(),
    )


def calibration_verdict(contents: CalibrationContents) -> list[Finding]:
    return calibration_findings(contents.table, contents.alpha, contents.n_sims, contents.n_unhealthy)

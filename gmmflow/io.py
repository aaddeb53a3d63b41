"""The only module that builds, reads and writes ``InferenceData``.

Schema (DESIGN.md): dims ``obs_id``, ``feature``, ``feature2``, ``component``,
``chain``, ``draw``, ``restart``, ``iteration``; covariances are always stored
as full (d, d) matrices. Root attrs hold only netCDF-storable types (str,
int, float): the package version, the model spec and the resolved prior as
JSON, the seed, the covariance type and the creation time as ISO text.

Files are netCDF4 (HDF5) with one group per InferenceData group, the layout
``arviz.from_netcdf`` reads. Writes go to a temporary file in the target
directory and are renamed into place; reads load everything into memory and
close the file, so a result can be saved over the path it came from.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path

import arviz as az
import h5netcdf
import numpy as np
import xarray as xr

from gmmflow._validation import DataMatrix
from gmmflow._version import __version__
from gmmflow.core.em import EMResult, Params
from gmmflow.core.gaussian import compact_covariances, full_covariances
from gmmflow.models.priors import Hyperparameters
from gmmflow.models.spec import GMM

ENGINE = "h5netcdf"
VERSION_ATTR = "gmmflow_version"


class NotAGmmflowFileError(ValueError):
    """The file is not a readable gmmflow result."""


# --------------------------------------------------------------------------
# Building groups
# --------------------------------------------------------------------------
def _coords(features, n_components, **extra):
    coords = {
        "component": np.arange(n_components),
        "feature": list(features),
        "feature2": list(features),
    }
    coords.update(extra)
    return coords


def _param_vars(params: Params, n_features: int) -> dict:
    K = params.weights.shape[-1]
    cov = full_covariances(params.cov, params.covariance_type, K, n_features)
    return {
        "w": (("component",), params.weights),
        "mu": (("component", "feature"), params.means),
        "cov": (("component", "feature", "feature2"), cov),
    }


def _stack_restarts(results: list[EMResult], n_features: int) -> dict:
    per_restart = [_param_vars(r.params, n_features) for r in results]
    return {
        name: (("restart",) + dims, np.stack([p[name][1] for p in per_restart]))
        for name, (dims, _) in per_restart[0].items()
    }


def _scalars(results: list[EMResult], lead: tuple = ()) -> dict:
    pick = (lambda f: np.array([f(r) for r in results])) if lead else (lambda f: f(results[0]))
    return {
        "objective": (lead, pick(lambda r: float(r.objective))),
        "log_likelihood": (lead, pick(lambda r: float(r.log_likelihood))),
        "log_prior": (lead, pick(lambda r: float(r.log_prior))),
        "converged": (lead, pick(lambda r: bool(r.converged))),
        "n_iter": (lead, pick(lambda r: int(r.n_iter))),
    }


def root_attrs(model: GMM, hyper: Hyperparameters | None, seed: int, **extra) -> dict:
    attrs = {
        VERSION_ATTR: __version__,
        "inference_library": "gmmflow",
        "arviz_version": az.__version__,
        "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "model": model.to_json(),
        "hyperparameters": "null" if hyper is None else hyper.to_json(),
        "covariance_type": model.covariance_type,
        "n_components": model.n_components,
        "seed": int(seed),
    }
    for key, value in extra.items():
        if value is None or isinstance(value, (bool, dict, list, tuple)):
            value = json.dumps(value)
        attrs[key] = value
    return attrs


def em_inference_data(
    *,
    model: GMM,
    data: DataMatrix,
    hyper: Hyperparameters | None,
    restarts: list[EMResult],
    best: int,
    responsibilities: np.ndarray,
    seed: int,
    sample_weight: np.ndarray | None = None,
    store_observed: bool = True,
    fit_options: dict | None = None,
) -> az.InferenceData:
    """InferenceData with ``observed_data``, ``em_estimate``, ``em_restarts``, ``em_trace``."""
    d = len(data.features)
    K = model.n_components
    coords = _coords(data.features, K, obs_id=data.obs_id,
                     restart=np.arange(len(restarts)))
    chosen = restarts[best]

    estimate = _param_vars(chosen.params, d)
    estimate.update(_scalars([chosen]))
    estimate["best_restart"] = ((), int(best))
    if responsibilities is not None:
        estimate["responsibilities"] = (("obs_id", "component"), responsibilities)

    restart_vars = _stack_restarts(restarts, d)
    restart_vars.update(_scalars(restarts, ("restart",)))

    n_trace = max(r.trace.shape[0] for r in restarts)
    trace = np.full((len(restarts), n_trace), np.nan)
    for i, r in enumerate(restarts):
        trace[i, : r.trace.shape[0]] = r.trace

    def ds(variables, **more):
        used = {dim for dims, _ in variables.values() for dim in dims}
        return xr.Dataset(variables, coords={k: v for k, v in {**coords, **more}.items() if k in used})

    groups = {
        "em_estimate": ds(estimate),
        "em_restarts": ds(restart_vars),
        "em_trace": ds({"objective": (("restart", "iteration"), trace)},
                       iteration=np.arange(n_trace)),
    }
    if store_observed:
        groups["observed_data"] = ds({"x": (("obs_id", "feature"), data.values)})
    if sample_weight is not None and store_observed:
        groups["constant_data"] = ds({"sample_weight": (("obs_id",), sample_weight)})
    attrs = root_attrs(model, hyper, seed, method="em", n_obs=int(data.values.shape[0]),
                       observed_data_stored=int(store_observed), **(fit_options or {}))
    return az.InferenceData(attrs=attrs, **groups)


def posterior_inference_data(
    *,
    model: GMM,
    data: DataMatrix,
    hyper: Hyperparameters,
    em: az.InferenceData,
    shape: tuple[int, int],
    w: np.ndarray,
    mu: np.ndarray,
    cov: np.ndarray,
    permutation: np.ndarray,
    log_likelihood: np.ndarray,
    assignment: np.ndarray,
    sample_stats: xr.Dataset,
    predictive: np.ndarray | None,
    seed: int,
    sampler: str,
    draws: int,
    tune: int,
    relabelled: bool,
) -> az.InferenceData:
    """One InferenceData for a NUTS run: posterior groups plus the EM groups of its start.

    Draw arrays come with chains stacked (S = chains * draws, ...) and are
    reshaped to (chain, draw, ...).
    """
    C, D = shape
    K = model.n_components
    coords = _coords(data.features, K, obs_id=data.obs_id, chain=np.arange(C), draw=np.arange(D))
    cd = ("chain", "draw")

    def ds(variables):
        used = {dim for dims, _ in variables.values() for dim in dims}
        return xr.Dataset({k: (dims, v.reshape(C, D, *v.shape[1:]) if dims[:2] == cd else v)
                           for k, (dims, v) in variables.items()},
                          coords={k: v for k, v in coords.items() if k in used})

    stats = sample_stats.drop_vars([v for v in sample_stats.data_vars
                                    if sample_stats[v].dims[:2] != cd], errors="ignore")
    stats = stats.assign_coords(chain=np.arange(C), draw=np.arange(D))
    stats = stats.assign(relabel_permutation=(cd + ("component",), permutation.reshape(C, D, K)))
    stats = stats.assign_coords(component=np.arange(K))
    groups = {
        "posterior": ds({
            "w": (cd + ("component",), w),
            "mu": (cd + ("component", "feature"), mu),
            "cov": (cd + ("component", "feature", "feature2"), cov),
        }),
        "sample_stats": stats,
        "log_likelihood": ds({"x": (cd + ("obs_id",), log_likelihood)}),
        "observed_data": ds({"x": (("obs_id", "feature"), data.values)}),
        "posterior_assignment": ds({"posterior_assignment": (("obs_id", "component"), assignment)}),
    }
    if predictive is not None:
        groups["posterior_predictive"] = ds({"x": (cd + ("obs_id", "feature"), predictive)})
    for name in ("em_estimate", "em_restarts", "em_trace"):
        groups[name] = em[name]
    attrs = root_attrs(model, hyper, seed, method="nuts", sampler=sampler, chains=C, draws=draws,
                       tune=tune, relabelled=int(relabelled), n_obs=int(data.values.shape[0]),
                       em_seed=int(em.attrs.get("seed", -1)))
    return az.InferenceData(attrs=attrs, **groups)


def with_selection(idata: az.InferenceData, table) -> az.InferenceData:
    """A copy of ``idata`` with a ``model_selection`` group: the table of ``select_components``.

    One entry per table row along the ``candidate`` dim; booleans are kept as
    0/1 integers and text as strings, which netCDF stores.
    """
    columns = {}
    for name in table.columns:
        values = table[name].to_numpy()
        if values.dtype == bool:
            values = values.astype(np.int8)
        elif values.dtype.kind not in "iuf":
            values = np.array(["" if v is None or (isinstance(v, float) and np.isnan(v)) else str(v)
                               for v in values], dtype=object).astype(str)
        columns[name] = (("candidate",), values)
    out = idata.copy()
    out.add_groups(model_selection=xr.Dataset(columns, coords={"candidate": np.arange(len(table))}))
    return out


def selection_from_idata(idata: az.InferenceData):
    """The ``select_components`` table stored by :func:`with_selection`, or None."""
    if "model_selection" not in idata.groups():
        return None
    table = idata["model_selection"].to_dataframe().reset_index(drop=True)
    for name in [c for c in table.columns if c.startswith("best_") or c == "converged"]:
        table[name] = table[name].astype(bool)
    return table


# --------------------------------------------------------------------------
# Reading results back
# --------------------------------------------------------------------------
def model_from_idata(idata: az.InferenceData) -> GMM:
    """The :class:`GMM` spec a result was made with."""
    if not isinstance(idata, az.InferenceData):
        raise TypeError(f"expected a gmmflow result (arviz.InferenceData from fit_em or sample_posterior), "
                        f"got {type(idata).__name__}.")
    try:
        return GMM.from_json(idata.attrs["model"])
    except (KeyError, AttributeError, TypeError) as err:
        raise NotAGmmflowFileError(
            "This InferenceData has no gmmflow model spec in its attrs; it was not "
            "made by gmmflow (fit_em / sample_posterior)."
        ) from err


def hyperparameters_from_idata(idata: az.InferenceData) -> Hyperparameters | None:
    text = idata.attrs.get("hyperparameters", "null")
    return None if text == "null" else Hyperparameters.from_dict(json.loads(text))


def em_params(idata: az.InferenceData) -> tuple[GMM, Params, list]:
    """(model, EM estimate as core parameters, feature names) of a result."""
    model = model_from_idata(idata)
    if "em_estimate" not in idata.groups():
        raise ValueError("This result has no em_estimate group; run gmmflow.fit_em first.")
    est = idata["em_estimate"]
    t = model.covariance_type
    params = Params.from_cov(
        est["w"].values, est["mu"].values, compact_covariances(est["cov"].values, t), t
    )
    return model, params, [str(f) for f in est["feature"].values]


# --------------------------------------------------------------------------
# Files
# --------------------------------------------------------------------------
def check_destination(path: str | os.PathLike, overwrite: bool,
                      overwrite_hint: str = "overwrite=True (CLI: --overwrite)") -> None:
    """Raise before any work if ``path`` cannot be written as a result file.

    An existing file needs ``overwrite``; a directory or a missing parent
    directory is an error. ``overwrite_hint`` names the switch in the message.
    """
    path = Path(path)
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path} already exists; pass {overwrite_hint} to replace it.")
    if path.is_dir():
        raise IsADirectoryError(f"{path} is a directory; give a file name such as {path / 'result.nc'}.")
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        raise FileNotFoundError(f"Directory {parent} does not exist; create it first.")


def save(idata: az.InferenceData, path: str | os.PathLike, *, overwrite: bool = False) -> Path:
    """Write a result to one netCDF file, atomically.

    Parameters
    ----------
    idata : arviz.InferenceData
    path : str or path-like
    overwrite : bool, default False
        Replace an existing file. Without it an existing file is an error and
        is left untouched.

    Returns
    -------
    pathlib.Path
        The path written.
    """
    path = Path(path)
    if not isinstance(idata, az.InferenceData):
        raise TypeError(f"save() needs an arviz.InferenceData, got {type(idata).__name__}.")
    check_destination(path, overwrite)
    parent = path.parent if str(path.parent) else Path(".")
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=parent)
    os.close(fd)
    os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes it private; give it the usual permissions
    try:
        _write(idata, tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def check_output_directory(path: str | os.PathLike, overwrite: bool,
                           overwrite_hint: str = "overwrite=True (CLI: --overwrite)") -> None:
    """Raise before any work if ``path`` cannot become an output directory."""
    path = Path(path)
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path} already exists; pass {overwrite_hint} to replace it.")
    if path.exists() and not path.is_dir():
        raise NotADirectoryError(f"{path} exists and is not a directory; choose another output directory.")


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextmanager
def atomic_directory(path: str | os.PathLike, overwrite: bool):
    """Yield a fresh temporary directory that becomes ``path`` only if the block succeeds.

    The temporary directory is made next to ``path`` (or in its nearest
    existing ancestor, so the final rename stays on one filesystem). On any
    exception, including KeyboardInterrupt, it is removed and ``path`` is
    untouched; on success a previous ``path`` (with ``overwrite``) is
    replaced and missing parent directories are created.
    """
    path = Path(path)
    check_output_directory(path, overwrite)
    anchor = path.absolute().parent
    while not anchor.exists():
        anchor = anchor.parent
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".partial", dir=anchor))
    os.chmod(tmp, 0o777 & ~_umask())  # mkdtemp makes it private; give it the usual permissions
    try:
        yield tmp
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".old", dir=path.parent))
            os.replace(path, old / "previous")
            try:
                os.replace(tmp, path)
            except BaseException:
                os.replace(old / "previous", path)  # put the previous directory back
                raise
            finally:
                shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _write(idata: az.InferenceData, filename: str) -> None:
    attrs = dict(idata.attrs)
    for key, value in attrs.items():
        if value is None or isinstance(value, (bool, dict, list, tuple, datetime)):
            raise TypeError(f"root attr {key!r} has type {type(value).__name__}, which netCDF cannot store.")
    xr.Dataset(attrs=attrs).to_netcdf(filename, mode="w", engine=ENGINE)
    for group in idata.groups():
        idata[group].to_netcdf(filename, mode="a", group=group, engine=ENGINE)


def load(path: str | os.PathLike) -> az.InferenceData:
    """Read a result written by :func:`save` fully into memory.

    Raises
    ------
    FileNotFoundError
    NotAGmmflowFileError
        Truncated or foreign files, with the reason.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"No such result file: {path}.")
    try:
        with h5netcdf.File(path, "r") as f:
            attrs = {k: _plain(v) for k, v in f.attrs.items()}
            group_names = list(f.groups)
    except Exception as err:  # h5py raises OSError subclasses with HDF5 jargon
        raise NotAGmmflowFileError(
            f"{path} is not a readable netCDF4/HDF5 file (truncated, corrupt or another format): {err}"
        ) from err
    if VERSION_ATTR not in attrs:
        raise NotAGmmflowFileError(
            f"{path} is a netCDF file but not a gmmflow result (no {VERSION_ATTR!r} attribute); "
            "open it with xarray or arviz.from_netcdf instead."
        )
    written_by = attrs[VERSION_ATTR]
    try:
        groups = {}
        for name in group_names:
            with xr.open_dataset(path, group=name, engine=ENGINE) as ds:
                groups[name] = ds.load()
        idata = az.InferenceData(attrs=attrs, **groups)
        _check_readable(idata)
    except Exception as err:
        reason = " ".join(str(err).split())
        if written_by != __version__:
            raise NotAGmmflowFileError(
                f"{path} was written by gmmflow {written_by} and cannot be read by gmmflow {__version__} "
                f"({reason}); re-create it with this version, or read it with gmmflow=={written_by}."
            ) from err
        raise NotAGmmflowFileError(f"{path} is a damaged gmmflow result: {reason}") from err
    return idata


def _check_readable(idata: az.InferenceData) -> None:
    """What every gmmflow result must have: a model spec and prior this version can parse."""
    model_from_idata(idata)
    hyperparameters_from_idata(idata)
    if "em_estimate" not in idata.groups():
        raise ValueError("it has no em_estimate group")


def _plain(value):
    """h5netcdf attrs come back as numpy scalars; store plain Python values."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, bytes):
        return value.decode()
    return value

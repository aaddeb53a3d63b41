"""Result files: one netCDF4 (HDF5) file per result, written atomically.

Files have one group per InferenceData group, the layout ``arviz.from_netcdf``
reads. Writes go to a temporary file in the target directory and are renamed
into place; reads load everything into memory and close the file, so a result
can be saved over the path it came from. Output directories (``gmmflow run``,
``write_report``) are built under a temporary name and renamed whole.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path

import arviz as az
import h5netcdf
import numpy as np
import xarray as xr

from gmmflow import schema as S
from gmmflow._version import __version__
from gmmflow.exceptions import NotAGmmflowFileError
from gmmflow.results.from_idata import hyperparameters_from_idata, model_from_idata

ENGINE = "h5netcdf"
VERSION_ATTR = S.VERSION_ATTR

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
    if not S.has_groups(idata, S.EM_ESTIMATE):
        raise ValueError(f"it has no {S.EM_ESTIMATE} group")


def _plain(value):
    """h5netcdf attrs come back as numpy scalars; store plain Python values."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, bytes):
        return value.decode()
    return value

"""Result files: one compressed netCDF4 (HDF5) file per result, built in memory, placed safely.

Files have one group per InferenceData group, the layout ``arviz.from_netcdf``
reads. Numeric arrays of 16 KiB or more go through HDF5's shuffle filter and
zlib at level :data:`COMPRESSION_LEVEL` (standard HDF5 filters: any netCDF4
reader opens them). ``bench/netcdf_compression.py`` on ``run.nc`` of Old
Faithful (27.1 MB uncompressed): zlib alone saves 7 to 8 % at any level,
shuffle + zlib 15 % (23.1 MB at level 1, 22.9 MB at level 9) for 1.8x
(level 1) to 2.7x (level 9) the CPU time of an uncompressed build; so level
1. The draws dominate the file and have random mantissas: only their
exponent bytes compress. The whole file is built in memory by
h5netcdf and written with plain Python I/O (:func:`placement.write_bytes`):
HDF5 never touches the disk, so a full disk is an ``OSError`` like any other,
not an HDF5 error in an object's deallocator that leaves the library in a
state that crashes the interpreter (h5py issue 914: exit 139 and a left-over
temporary file). Paths are checked and placed by :mod:`placement`: never over
an input, atomically, without replacing what appeared meanwhile unless
``overwrite``. Reads load everything into memory and close the file, so a
result can be saved over the path it came from.
"""

from __future__ import annotations

import io
import os
from datetime import datetime
from pathlib import Path

import arviz as az
import h5netcdf
import numpy as np
import xarray as xr

from gmmflow import schema as S
from gmmflow._version import __version__
from gmmflow.exceptions import NotAGmmflowFileError
from gmmflow.results import placement
from gmmflow.results.from_idata import check_schema, hyperparameters_from_idata, model_from_idata

ENGINE = "h5netcdf"
VERSION_ATTR = S.VERSION_ATTR
COMPRESSION_LEVEL = 1
MIN_COMPRESSED_BYTES = 1 << 14
FLOAT = 8  # bytes


# --------------------------------------------------------------------------
def check_destination(path: str | os.PathLike, overwrite: bool, inputs=(), *, size: float = 0.0,
                      overwrite_hint: str = placement.OVERWRITE_HINT) -> Path:
    """Raise before any work if ``path`` cannot be written as a result file; return it resolved.

    See :func:`placement.check_file_destination`: an existing file needs
    ``overwrite``; a directory, a FIFO or device, a missing or read-only
    directory, too little free space for ``size`` bytes, and a path that is
    one of ``inputs`` (or inside one) are errors.
    """
    return placement.check_file_destination(path, overwrite, inputs, size=size, overwrite_hint=overwrite_hint)


def check_output_directory(path: str | os.PathLike, overwrite: bool, inputs=(), *, size: float = 0.0,
                           overwrite_hint: str = placement.OVERWRITE_HINT) -> Path:
    """Raise before any work if ``path`` cannot become an output directory; return it resolved.

    See :func:`placement.check_directory_destination`.
    """
    return placement.check_directory_destination(path, overwrite, inputs, size=size, overwrite_hint=overwrite_hint)


atomic_directory = placement.atomic_directory


def result_file_bytes(n: int, d: int, draws_total: int = 0, predictive: bool = False) -> float:
    """A lower bound of the size of a sampled result file, for the free-space check before work.

    Only the arrays that grow with the draws count: pointwise
    log-likelihoods (``draws_total n``) and predictive draws (``draws_total n
    d``), float64, times 0.75, below every compressed-to-raw ratio
    ``bench/netcdf_compression.py`` measured on them (0.82 to 0.87 on Old
    Faithful: draws have random mantissas; the shuffle filter gains on the
    shared exponent bytes only). Everything else (data, responsibilities,
    which can compress far more) counts 0, so a refusal is never a false alarm.
    """
    return 0.75 * FLOAT * draws_total * n * (1 + (d if predictive else 0))


def save(idata: az.InferenceData, path: str | os.PathLike, *, overwrite: bool = False, inputs=()) -> Path:
    """Write a result to one compressed netCDF file, atomically.

    Parameters
    ----------
    idata : arviz.InferenceData
    path : str or path-like
    overwrite : bool, default False
        Replace an existing file. Without it an existing file is an error and
        is left untouched, also when it appears while the file is built (the
        new file is then kept next to it and the error names it).
    inputs : sequence of paths, optional
        Files the result was computed from (the CLI passes ``--data``);
        ``path`` may not be, or lie inside, any of them, even with ``overwrite``.

    Returns
    -------
    pathlib.Path
        The path written.

    Raises
    ------
    FileExistsError, IsADirectoryError, FileNotFoundError, PermissionError
        Before any work, for what is at ``path``.
    gmmflow.UnsafeOutputError
        ``path`` is an input, or a FIFO, device or socket.
    gmmflow.OutOfSpaceError
        Too little free space, checked before writing, or ENOSPC while writing
        (no temporary file is left).
    """
    if not isinstance(idata, az.InferenceData):
        raise TypeError(f"save() needs an arviz.InferenceData, got {type(idata).__name__}.")
    _check_attrs(idata.attrs)
    target = check_destination(path, overwrite, inputs)
    placement.write_bytes(netcdf_bytes(idata), target, overwrite, inputs, shown=path)
    return Path(path)


def write_result(idata: az.InferenceData, path: Path) -> None:
    """Write a result into a fresh temporary directory (the main job's); no destination checks."""
    _check_attrs(idata.attrs)
    placement.write_bytes(netcdf_bytes(idata), path, overwrite=False)


def _check_attrs(attrs) -> None:
    for key, value in attrs.items():
        if value is None or isinstance(value, (bool, dict, list, tuple, datetime)):
            raise TypeError(f"root attr {key!r} has type {type(value).__name__}, which netCDF cannot store.")


def _compression(ds: xr.Dataset, level: int, shuffle: bool) -> dict:
    """zlib after HDF5's byte shuffle for numeric arrays of at least ``MIN_COMPRESSED_BYTES``.

    Smaller arrays are stored as they are: the chunk index a compressed
    array needs outweighs what zlib saves on them (an EM result grew from 62
    to 93 kB when every array was compressed). Strings are not compressed.
    """
    return {name: {"zlib": True, "complevel": level, "shuffle": shuffle} for name, var in ds.data_vars.items()
            if var.dtype.kind in "biuf" and var.nbytes >= MIN_COMPRESSED_BYTES}


def netcdf_bytes(idata: az.InferenceData, level: int = COMPRESSION_LEVEL, shuffle: bool = True) -> memoryview:
    """The netCDF4 file of ``idata``, built in memory (``level`` 0: uncompressed)."""
    buffer = io.BytesIO()
    xr.Dataset(attrs=dict(idata.attrs)).to_netcdf(buffer, mode="w", engine=ENGINE)
    for group in idata.groups():
        ds = idata[group].copy()
        for var in ds.variables.values():
            var.encoding = {}  # a loaded file's chunking and filters do not carry over
        ds.to_netcdf(buffer, mode="a", group=group, engine=ENGINE,
                     encoding=_compression(ds, level, shuffle) if level else None)
    return buffer.getbuffer()


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
    """What every gmmflow result must have: a model spec and prior this version can parse, and every group
    its method needs with the variables and dims of the schema (``from_idata.check_schema``)."""
    model_from_idata(idata)
    hyperparameters_from_idata(idata)
    check_schema(idata)  # the groups of its method (``em_estimate`` when it names none)


def _plain(value):
    """h5netcdf attrs come back as numpy scalars; store plain Python values."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, bytes):
        return value.decode()
    return value

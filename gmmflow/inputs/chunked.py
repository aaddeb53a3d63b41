"""Chunked data: dask arrays, dask-backed DataArrays and zarr stores.

:func:`as_chunked_matrix` checks such input (shape, dtype, and one pass
over the chunks for NaN and inf naming the first bad chunk (NaN accepted as
missing cells with ``missing=True``, checked as in memory), for values
float64 cannot carry, and for the fingerprint hash) and returns a
:class:`ChunkedMatrix`: a float64 dask array chunked by rows only, with its
feature names. The EM itself runs on it through ``core.dask_blocks``.

Column names of a zarr store: a zarr array has no column names of its own;
gmmflow reads them from the array's ``feature_names`` attribute (a list of
one string per column: ``z.attrs["feature_names"] = ["height", "weight"]``)
and otherwise names the columns ``x0, x1, ...``. ``columns=`` (CLI
``--columns``) selects and orders columns by those names.

dask is imported when chunked input is given, not when gmmflow is.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from gmmflow.checks import summarize_values
from gmmflow.inputs.fingerprint import DataFingerprint, block_digest, combine_digests
from gmmflow.inputs.matrix import _check_dtype, data_label, check_exact_integers, check_ranges, default_feature_names, \
    first_inexact_integer
from gmmflow.inputs.missing_cells import MISSING_HINT, check_observed_counts, empty_rows_error
from gmmflow.schema import FEATURE

FEATURE_NAMES_ATTR = "feature_names"  # zarr array attribute holding the column names


@dataclass(frozen=True, eq=False)
class ChunkedMatrix:
    """Validated (n, d) float64 dask array, chunked by rows only, with its labels, fingerprint and
    count of missing (NaN) cells (0 unless accepted by ``missing=True``)."""

    values: Any  # dask.array.Array
    features: list
    named: bool
    fingerprint: DataFingerprint
    n_missing: int = 0

    @property
    def shape(self) -> tuple[int, int]:
        return tuple(int(s) for s in self.values.shape)


def is_chunked(X) -> bool:
    """True for dask arrays, dask-backed DataArrays and zarr store paths."""
    if isinstance(X, (str, os.PathLike)):
        return Path(X).suffix == ".zarr"
    data = getattr(X, "data", None)
    return type(X).__module__.startswith("dask") or type(data).__module__.startswith("dask")


def zarr_feature_names(path, n_features: int) -> tuple[list[str], bool]:
    """(names, named) of a zarr array's columns: its ``feature_names`` attribute, else ``x0, x1, ...``."""
    import zarr

    names = zarr.open_array(str(path), mode="r").attrs.get(FEATURE_NAMES_ATTR)
    if names is None:
        return default_feature_names(n_features), False
    if not isinstance(names, list) or len(names) != n_features or len(set(map(str, names))) != n_features:
        raise ValueError(
            f"{path}: its {FEATURE_NAMES_ATTR!r} attribute must list {n_features} distinct column names, got "
            f"{summarize_values(names) if isinstance(names, list) else repr(names)}. Fix it with "
            f"zarr.open_array({str(path)!r}, mode='r+').attrs[{FEATURE_NAMES_ATTR!r}] = [...]."
        )
    return [str(n) for n in names], True


def open_zarr(path, chunks: int | None = None, columns: list[str] | None = None):
    """A zarr store of shape (n, d) as a dask array chunked by rows, with its column names.

    Returns
    -------
    (dask.array.Array, list of str, bool)
        The array (only ``columns``, in that order, when given), its column
        names, and whether they are names (from the store's ``feature_names``
        or from ``columns``) rather than positions.

    Raises
    ------
    FileNotFoundError, ValueError
        No such store; not a zarr array (a group, a damaged store); not 2-D;
        ``columns`` names a column the store does not have.
    """
    import dask.array as da

    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"No such zarr store: {path}.")
    try:
        arr = da.from_zarr(str(path))
    except Exception as err:  # zarr's own errors name its store classes, not the problem
        reason = " ".join(str(err).split()) or type(err).__name__
        raise ValueError(
            f"{path} is not a readable zarr array ({type(err).__name__}: {reason}). gmmflow reads one 2-D "
            f"array of shape (rows, features), e.g. written with zarr.save_array({str(path)!r}, X)."
        ) from None
    if arr.ndim != 2:
        raise ValueError(f"{path} holds a {arr.ndim}-D array of shape {arr.shape}; gmmflow needs a 2-D "
                         "array of shape (rows, features).")
    names, named = zarr_feature_names(path, arr.shape[1])
    if columns:
        missing = [c for c in columns if c not in names]
        if missing:
            how = "" if named else f" (it has no {FEATURE_NAMES_ATTR!r} attribute, so they are x0, x1, ...)"
            raise ValueError(f"{path} has no column(s) {summarize_values(missing)}; its columns are "
                             f"{summarize_values(names)}{how}.")
        arr = arr[:, [names.index(c) for c in columns]]
        names, named = list(columns), True  # the selection names the columns, x0, x1, ... included
    if chunks:
        arr = arr.rechunk({0: int(chunks), 1: -1})
    return arr, names, named


class ChunkScan(NamedTuple):
    """What one pass learns of a chunk (:func:`_scan_block`)."""

    has_nan: bool
    has_inf: bool
    digest: bytes
    low: np.ndarray  # column minima of the observed values (+inf where a column has none)
    high: np.ndarray  # column maxima (-inf where none)
    inexact: Any  # the first integer float64 would round, or None
    observed: np.ndarray  # observed (non-NaN) values per column
    empty_rows: np.ndarray  # rows (within the chunk) with every value NaN


def _scan_block(block: np.ndarray) -> ChunkScan:
    """One chunk's :class:`ChunkScan`."""
    inexact = first_inexact_integer(block)
    block = block.astype(np.float64, copy=False)
    nan = np.isnan(block)
    observed = ~nan
    return ChunkScan(bool(nan.any()), bool(np.isinf(block).any()), block_digest(block),
                     np.min(block, axis=0, initial=np.inf, where=observed),
                     np.max(block, axis=0, initial=-np.inf, where=observed),
                     inexact, observed.sum(axis=0), np.flatnonzero(nan.all(axis=1)))


def _scan_cell(block: np.ndarray) -> np.ndarray:
    """:func:`_scan_block` in a (1, 1) object array: one cell per chunk of the dask graph."""
    cell = np.empty((1, 1), dtype=object)
    cell[0, 0] = _scan_block(block)
    return cell


def _check_finite_chunks(parts: list[ChunkScan], starts: np.ndarray, what: str, missing: bool) -> None:
    """Refuse inf, and NaN unless ``missing``, naming the first chunk that holds them."""
    bad = [c for c, p in enumerate(parts) if p.has_inf or (p.has_nan and not missing)]
    if bad:
        c = bad[0]
        kind = "inf" if parts[c].has_inf else "NaN"
        raise ValueError(
            f"{what} contains {kind} in chunk {c} (rows {starts[c]} to {starts[c + 1] - 1}). "
            + (MISSING_HINT if kind == "NaN" else "Remove the rows with infinite values or rescale the data.")
        )


def _check_missing_chunks(parts: list[ChunkScan], starts: np.ndarray, what: str, features) -> int:
    """:func:`~gmmflow.inputs.missing_cells.check_missing_cells` from the chunks' scans (the first
    all-missing row named by its number and chunk); the count of missing cells."""
    empty = [c for c, p in enumerate(parts) if p.empty_rows.size]
    if empty:
        c = empty[0]
        row = starts[c] + parts[c].empty_rows[0]
        raise empty_rows_error(what, sum(p.empty_rows.size for p in parts),
                               f"row {row}, in chunk {c} (rows {starts[c]} to {starts[c + 1] - 1})")
    observed = np.sum([p.observed for p in parts], axis=0)
    check_observed_counts(observed, what, features)
    return int(starts[-1] * len(features) - observed.sum())


def _scan_chunks(X, features, what: str, missing: bool = False) -> tuple[DataFingerprint, int]:
    """One pass over the chunks: NaN/inf (the first bad chunk named; NaN accepted with ``missing``,
    checked as in memory), ranges of the observed values, and the hash; and the count of missing cells."""
    parts = list(X.map_blocks(_scan_cell, chunks=(1, 1), dtype=object).compute().ravel())
    starts = np.concatenate([[0], np.cumsum(X.chunks[0])])
    inexact = [p.inexact for p in parts if p.inexact is not None]
    if inexact:
        check_exact_integers(np.array(inexact[:1], dtype=X.dtype), what)
    _check_finite_chunks(parts, starts, what, missing)
    n_missing = _check_missing_chunks(parts, starts, what, features) if missing else 0
    low, high = np.min([p.low for p in parts], axis=0), np.max([p.high for p in parts], axis=0)

    def locate(j: int, value: float) -> str:
        c = next(c for c, p in enumerate(parts) if value in (p.low[j], p.high[j]))
        return f"chunk {c}, rows {starts[c]} to {starts[c + 1] - 1}"

    check_ranges(low, high, X.shape[0], what, features, locate)
    fingerprint = DataFingerprint(int(X.shape[0]), tuple(features), False,
                                  combine_digests([p.digest for p in parts]), int(X.chunks[0][0]))
    return fingerprint, n_missing


@dataclass(frozen=True, eq=False)
class ChunkedSource:
    """Chunked input opened and rechunked by rows, its shape and dtype checked, not yet read."""

    values: Any  # dask.array.Array, original dtype
    features: list
    named: bool
    what: str  # how messages call it: the zarr path, the DataArray's path attr, or "X"

    @property
    def shape(self) -> tuple[int, int]:
        return tuple(int(s) for s in self.values.shape)

    @property
    def chunk_rows(self) -> int:
        return int(self.values.chunks[0][0])


def open_chunked(X, chunk_size: int | None = None) -> ChunkedSource:
    """Open chunked input ``X`` (dask array, dask-backed DataArray, zarr path) and rechunk it by rows
    (``chunk_size`` rows per chunk if given), without reading any chunk.

    Raises
    ------
    TypeError, ValueError
        Not numeric, not 2-D, empty, unnamed feature axis, not a zarr array.
    """
    features, named, what = None, False, "X"
    if isinstance(X, (str, os.PathLike)):
        what = str(X)
        X, features, named = open_zarr(X, chunk_size)
    elif hasattr(X, "dims") and hasattr(X, "data"):  # xarray.DataArray
        what = data_label(X)
        if FEATURE not in X.dims:
            raise ValueError(f"{what} has dims {X.dims}; name the feature axis {FEATURE!r}.")
        obs = next(d for d in X.dims if d != FEATURE)
        X = X.transpose(obs, FEATURE)
        if FEATURE in X.coords:
            features, named = [str(f) for f in X[FEATURE].values], True
        X = X.data
    if X.ndim != 2:
        raise ValueError(f"{what} must be 2-D (n_samples, n_features); got {X.ndim}-D with shape {X.shape}.")
    _check_dtype(X.dtype, what)
    if X.shape[0] == 0 or X.shape[1] == 0:
        raise ValueError(f"{what} is empty or has no features (shape {X.shape}).")
    X = X.rechunk({0: chunk_size or X.chunks[0][0], 1: -1})
    return ChunkedSource(X, features or default_feature_names(X.shape[1]), named, what)


def as_chunked_matrix(X, chunk_size: int | None = None, missing: bool = False) -> ChunkedMatrix:
    """Check chunked input ``X`` in one pass over its chunks (a :class:`ChunkedSource`, or anything
    :func:`open_chunked` takes) and return it as float64 with its fingerprint.

    ``missing=True`` accepts NaN for missing cells, checked as in memory
    (``inputs.missing_cells``: no row all missing, every feature observed
    twice); inf is always refused.

    Raises
    ------
    TypeError, ValueError
        As :func:`open_chunked`; NaN (unless ``missing``) or inf (the chunk is named), a row with
        every value missing (its number and chunk named), values whose squares overflow float64,
        integers float64 would round.
    """
    source = X if isinstance(X, ChunkedSource) else open_chunked(X, chunk_size)
    scanned, n_missing = _scan_chunks(source.values, source.features, source.what, missing)
    fingerprint = DataFingerprint(scanned.n_obs, scanned.features, source.named, scanned.values_hash,
                                  scanned.block_rows)
    return ChunkedMatrix(source.values.astype(np.float64), source.features, source.named, fingerprint, n_missing)

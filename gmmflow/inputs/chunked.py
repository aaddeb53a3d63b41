"""Chunked data: dask arrays, dask-backed DataArrays and zarr stores.

:func:`as_chunked_matrix` checks such input (shape, dtype, one pass for NaN
and inf naming the first bad chunk) and returns a :class:`ChunkedMatrix`:
a float64 dask array chunked by rows only, with its feature names. The EM
itself runs on it through ``core.dask_blocks``.

dask is imported when chunked input is given, not when gmmflow is.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from gmmflow.schema import FEATURE


@dataclass(frozen=True, eq=False)
class ChunkedMatrix:
    """Validated (n, d) float64 dask array, chunked by rows only, with its labels."""

    values: Any  # dask.array.Array
    features: list

    @property
    def shape(self) -> tuple[int, int]:
        return tuple(int(s) for s in self.values.shape)


def is_chunked(X) -> bool:
    """True for dask arrays, dask-backed DataArrays and zarr store paths."""
    if isinstance(X, (str, os.PathLike)):
        return Path(X).suffix == ".zarr"
    data = getattr(X, "data", None)
    return type(X).__module__.startswith("dask") or type(data).__module__.startswith("dask")


def open_zarr(path, chunks: int | None = None):
    """A zarr store of shape (n, d) as a dask array chunked by rows."""
    import dask.array as da

    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"No such zarr store: {path}.")
    arr = da.from_zarr(str(path))
    if chunks:
        arr = arr.rechunk({0: int(chunks), 1: -1})
    return arr


def _check_chunks_finite(X) -> None:
    """One pass: the first chunk holding NaN or inf is named in the error."""
    flags = X.map_blocks(lambda b: np.array([[np.isfinite(b).all()]]), chunks=(1, 1), dtype=bool)
    ok = flags.compute().ravel()
    if not ok.all():
        chunk = int(np.argmin(ok))
        start = int(np.sum(X.chunks[0][:chunk]))
        raise ValueError(
            f"X contains NaN or inf in chunk {chunk} (rows {start} to {start + X.chunks[0][chunk] - 1}). "
            "Remove or impute missing values before fitting."
        )


def as_chunked_matrix(X, chunk_size: int | None = None) -> ChunkedMatrix:
    """Check chunked input ``X`` and rechunk it by rows (``chunk_size`` rows per chunk if given).

    Raises
    ------
    TypeError, ValueError
        Not numeric, not 2-D, empty, unnamed feature axis, NaN or inf (the chunk is named).
    """
    features = None
    if isinstance(X, (str, os.PathLike)):
        X = open_zarr(X, chunk_size)
    elif hasattr(X, "dims") and hasattr(X, "data"):  # xarray.DataArray
        if FEATURE not in X.dims:
            raise ValueError(f"X has dims {X.dims}; name the feature axis {FEATURE!r}.")
        obs = next(d for d in X.dims if d != FEATURE)
        X = X.transpose(obs, FEATURE)
        if FEATURE in X.coords:
            features = [str(f) for f in X[FEATURE].values]
        X = X.data
    if X.ndim != 2:
        raise ValueError(f"X must be 2-D (n_samples, n_features); got {X.ndim}-D with shape {X.shape}.")
    if X.dtype.kind not in "iuf":
        raise TypeError(f"X must be numeric (integer or float), got dtype {X.dtype}.")
    if X.shape[0] == 0 or X.shape[1] == 0:
        raise ValueError(f"X is empty or has no features (shape {X.shape}).")
    X = X.astype(np.float64).rechunk({0: chunk_size or X.chunks[0][0], 1: -1})
    _check_chunks_finite(X)
    return ChunkedMatrix(X, features or [f"x{j}" for j in range(X.shape[1])])

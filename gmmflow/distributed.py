"""EM on chunked data (dask arrays, dask-backed DataArrays, zarr stores)."""

from __future__ import annotations


def is_chunked(X) -> bool:
    """True for dask arrays, dask-backed DataArrays and zarr store paths."""
    return False


def fit_em_chunked(model, X, **options):
    raise TypeError("Chunked (dask) input is not supported yet.")

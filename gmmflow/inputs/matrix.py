"""In-memory data: user input checked and turned into a :class:`DataMatrix`.

Run before any work starts; messages name what was wrong, the value seen,
and how to fix it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import xarray as xr

from gmmflow.checks import as_array
from gmmflow.schema import FEATURE as FEATURE_DIM


@dataclass(frozen=True, eq=False)
class DataMatrix:
    """Validated (n, d) float64 data with its labels."""

    values: np.ndarray
    features: list
    obs_id: np.ndarray
    name: str | None = None

    @property
    def shape(self) -> tuple[int, int]:
        return self.values.shape


def _check_dtype(dtype, what: str, column: str | None = None) -> None:
    where = f" (column {column!r})" if column is not None else ""
    if dtype.kind == "c":
        raise TypeError(f"{what}{where} is complex ({dtype}); a Gaussian mixture needs real numbers. "
                        "Pass the real and imaginary parts as separate features.")
    if dtype.kind not in "iuf":
        raise TypeError(
            f"{what}{where} must be numeric (integer or float), got dtype {dtype}. "
            "Select the numeric columns or convert them, e.g. with pandas.to_numeric."
        )


def _check_finite(values: np.ndarray, what: str, features) -> None:
    bad = ~np.isfinite(values)
    if bad.any():
        i, j = np.argwhere(bad)[0]
        kind = "NaN" if np.isnan(values[i, j]) else "inf"
        raise ValueError(
            f"{what} contains {int(bad.sum())} non-finite value(s); the first is {kind} at "
            f"row {int(i)}, feature {features[j]!r}. "
            + ("Remove or impute missing values before fitting (PyMC would silently impute them)."
               if kind == "NaN" else "Remove the rows with infinite values or rescale the data.")
        )


def _check_shape(shape, what: str) -> None:
    if len(shape) != 2:
        hint = " For one feature use X.reshape(-1, 1)." if len(shape) == 1 else ""
        raise ValueError(
            f"{what} must be 2-D (n_samples, n_features); got {len(shape)}-D with shape "
            f"{tuple(shape)}.{hint}"
        )
    if shape[0] == 0:
        raise ValueError(f"{what} is empty: it has 0 rows (shape {tuple(shape)}).")
    if shape[1] == 0:
        raise ValueError(f"{what} has 0 features (shape {tuple(shape)}); it needs at least one column.")


def as_data_matrix(X, what: str = "X") -> DataMatrix:
    """Validate ``X`` and convert it to a :class:`DataMatrix`.

    Accepts a numpy array (or nested lists), a pandas DataFrame (feature names
    from the columns, obs_id from the index) or an xarray DataArray with a
    ``feature`` dim (the other dim is taken as observations).

    Raises
    ------
    TypeError
        Non-numeric, complex or object data.
    ValueError
        Not 2-D, empty, no features, NaN or inf.
    """
    if isinstance(X, DataMatrix):
        return X
    name = None
    if isinstance(X, pd.Series):
        X = X.to_frame()
    if isinstance(X, pd.DataFrame):
        _check_shape(X.shape, what)
        for col in X.columns:
            _check_dtype(X[col].dtype, what, str(col))
        features = [str(c) for c in X.columns]
        obs_id = np.asarray(X.index)
        values = X.to_numpy(dtype=np.float64)
    elif isinstance(X, xr.DataArray):
        name = X.name
        _check_shape(X.shape, what)
        if FEATURE_DIM not in X.dims:
            raise ValueError(
                f"{what} has dims {X.dims}; gmmflow does not guess which is which. Name the "
                f"feature axis {FEATURE_DIM!r}, e.g. X.rename({{{X.dims[1]!r}: {FEATURE_DIM!r}}})."
            )
        obs_dim = next(d for d in X.dims if d != FEATURE_DIM)
        X = X.transpose(obs_dim, FEATURE_DIM)
        _check_dtype(X.dtype, what)
        features = [str(f) for f in X[FEATURE_DIM].values] if FEATURE_DIM in X.coords \
            else [f"x{j}" for j in range(X.shape[1])]
        obs_id = X[obs_dim].values if obs_dim in X.coords else np.arange(X.shape[0])
        values = np.asarray(X.values, dtype=np.float64)
    else:
        if hasattr(X, "dask") or type(X).__module__.startswith("dask"):
            raise TypeError(f"{what} is a dask collection; this entry point needs in-memory data.")
        arr = as_array(X, what)
        _check_dtype(arr.dtype, what)
        _check_shape(arr.shape, what)
        values = arr.astype(np.float64, copy=False)
        features = [f"x{j}" for j in range(arr.shape[1])]
        obs_id = np.arange(arr.shape[0])
    _check_finite(values, what, features)
    if len(set(features)) != len(features):
        raise ValueError(f"{what} has duplicate feature names: {features}.")
    return DataMatrix(np.ascontiguousarray(values), features, obs_id, name)

"""In-memory data: user input checked and turned into a :class:`DataMatrix`.

Run before any work starts; messages name what was wrong, the value seen,
and how to fix it. Besides shape, dtype and finiteness, the values must be
ones float64 arithmetic can carry (:func:`check_representable`): integers
that float64 would round, and magnitudes whose squares overflow or whose
spread underflows, are refused rather than silently changed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import xarray as xr

from gmmflow.checks import as_array, summarize_values
from gmmflow.inputs.missing_cells import MISSING_HINT, check_missing_cells
from gmmflow.schema import FEATURE as FEATURE_DIM

FLOAT_MAX = float(np.finfo(np.float64).max)
# DataArrays read from a file by gmmflow (read_csv, the CLI's zarr input) carry its path in this attr;
# messages then name the file instead of "X"
PATH_ATTR = "path"
# a feature whose values all lie within this of each other (but not all equal) has squared deviations
# that are subnormal or zero in float64: its variance, and every density on it, would be noise
SMALLEST_SPREAD = 1e-150


@dataclass(frozen=True, eq=False)
class DataMatrix:
    """Validated (n, d) float64 data with its labels.

    ``named`` says whether the feature names came from the data (DataFrame
    columns, a DataArray ``feature`` coordinate) or were made up
    (``x0, x1, ...`` for a plain array); only given names are matched by name.
    """

    values: np.ndarray
    features: list
    obs_id: np.ndarray
    name: str | None = None
    named: bool = False

    @property
    def shape(self) -> tuple[int, int]:
        return self.values.shape


def data_label(X, what: str = "X") -> str:
    """How messages call ``X``: the file it was read from (its ``path`` attr), else ``what``."""
    attrs = getattr(X, "attrs", None)
    return str(attrs[PATH_ATTR]) if isinstance(attrs, dict) and PATH_ATTR in attrs and what == "X" else what


def default_feature_names(d: int) -> list[str]:
    """The names of unnamed columns: ``x0, x1, ...``."""
    return [f"x{j}" for j in range(d)]


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


def first_inexact_integer(values: np.ndarray) -> int | None:
    """The first integer in ``values`` that float64 would round (|v| > 2**53, not representable), or None."""
    values = np.asarray(values)
    if values.dtype.kind not in "iu" or values.size == 0:
        return None
    big = values[(values > 2**53) | (values < -(2**53))] if values.dtype.kind == "i" else values[values > 2**53]
    if big.size == 0:
        return None
    as_float = big.astype(np.float64)
    fits = np.abs(as_float) < (2.0**63 if values.dtype.kind == "i" else 2.0**64)
    exact = np.zeros(big.shape, bool)
    exact[fits] = as_float[fits].astype(values.dtype) == big[fits]
    return None if exact.all() else int(big[~exact][0])


def check_exact_integers(values: np.ndarray, what: str, column: str | None = None) -> None:
    """Raise if integer ``values`` hold a number float64 would round (see :func:`first_inexact_integer`)."""
    first = first_inexact_integer(values)
    if first is None:
        return
    where = f" (column {column!r})" if column is not None else ""
    raise ValueError(
        f"{what}{where} holds the integer {first}, which float64 cannot represent (integers above "
        f"2**53 = {2**53} are rounded: it would become {float(np.float64(first)):.17g}). Subtract a "
        "common offset first, or drop the column if it is an identifier."
    )


def check_representable(values: np.ndarray, what: str, features) -> None:
    """:func:`check_ranges` of in-memory ``values`` (n, d), naming the row of an offending value."""
    def locate(j: int, value: float) -> str:
        return f"row {int(np.argmax(values[:, j] == value))}"

    check_ranges(np.nanmin(values, axis=0), np.nanmax(values, axis=0), values.shape[0], what, features, locate)


def check_ranges(low: np.ndarray, high: np.ndarray, n: int, what: str, features, locate) -> None:
    """Raise if float64 sums of squares would overflow, or a feature's spread underflow.

    ``low``, ``high``: per-feature minimum and maximum over the ``n`` rows;
    ``locate(j, value)`` says where ``value`` of feature ``j`` is. The E- and
    M-steps square deviations from means and sum them over the rows; with
    ``|x| <= sqrt(max_float / (4 n))`` every deviation is at most twice that
    and a sum of n squares stays finite. A feature whose values differ by
    less than ``SMALLEST_SPREAD`` (but are not all equal) has squared
    deviations below the normal float64 range.
    """
    peak = np.maximum(np.abs(low), np.abs(high))
    limit = np.sqrt(FLOAT_MAX / (4.0 * n))
    if (peak > limit).any():
        j = int(np.argmax(peak))
        value = high[j] if abs(high[j]) >= abs(low[j]) else low[j]
        raise ValueError(
            f"{what} holds {value:.3g} ({locate(j, value)}, feature {features[j]!r}): with {n} rows, squares "
            f"of values above {limit:.2g} overflow float64 (sums of squares would be inf, probabilities NaN). "
            f"Rescale the data, e.g. divide by {10.0 ** np.floor(np.log10(peak[j])):.0e}: the mixture of "
            "rescaled data is the rescaled mixture."
        )
    spread = high - low
    tiny = (spread > 0) & (spread < SMALLEST_SPREAD)
    if tiny.any():
        j = int(np.argmax(tiny))
        raise ValueError(
            f"{what} feature {features[j]!r} varies by only {spread[j]:.3g}: squares of such differences "
            f"underflow float64 (spreads below {SMALLEST_SPREAD:.0e} are refused), so its variance would be "
            f"rounding noise. Rescale the data, e.g. multiply by {10.0 ** -np.floor(np.log10(spread[j])):.0e}: "
            "the mixture of rescaled data is the rescaled mixture."
        )


def _check_finite(values: np.ndarray, what: str, features, allow_nan: bool = False) -> None:
    bad = np.isinf(values) if allow_nan else ~np.isfinite(values)
    if bad.any():
        i, j = np.argwhere(bad)[0]
        kind = "NaN" if np.isnan(values[i, j]) else "inf"
        raise ValueError(
            f"{what} contains {int(bad.sum())} non-finite value(s); the first is {kind} at "
            f"row {int(i)}, feature {features[j]!r}. "
            + (MISSING_HINT if kind == "NaN" else "Remove the rows with infinite values or rescale the data.")
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


def _check_unique(features: list, what: str) -> None:
    if len(set(features)) != len(features):
        duplicated = sorted({f for f in features if features.count(f) > 1})
        raise ValueError(f"{what} has duplicate feature names {summarize_values(duplicated)}; give every "
                         "column its own name.")


def _from_frame(X: pd.DataFrame, what: str):
    _check_shape(X.shape, what)
    features = [str(c) for c in X.columns]
    _check_unique(features, what)
    for j, col in enumerate(features):
        column = X.iloc[:, j]
        _check_dtype(column.dtype, what, col)
        check_exact_integers(column.to_numpy(), what, col)
    return features, np.asarray(X.index), X.to_numpy(dtype=np.float64, na_value=np.nan), True


def _from_data_array(X: xr.DataArray, what: str):
    _check_shape(X.shape, what)
    if FEATURE_DIM not in X.dims:
        raise ValueError(
            f"{what} has dims {X.dims}; gmmflow does not guess which is which. Name the "
            f"feature axis {FEATURE_DIM!r}, e.g. X.rename({{{X.dims[1]!r}: {FEATURE_DIM!r}}})."
        )
    obs_dim = next(d for d in X.dims if d != FEATURE_DIM)
    X = X.transpose(obs_dim, FEATURE_DIM)
    _check_dtype(X.dtype, what)
    check_exact_integers(X.values, what)
    named = FEATURE_DIM in X.coords
    features = [str(f) for f in X[FEATURE_DIM].values] if named else default_feature_names(X.shape[1])
    obs_id = X[obs_dim].values if obs_dim in X.coords else np.arange(X.shape[0])
    return features, obs_id, np.asarray(X.values, dtype=np.float64), named


def _from_array(X, what: str):
    if hasattr(X, "dask") or type(X).__module__.startswith("dask"):
        raise TypeError(f"{what} is a dask collection; this entry point needs in-memory data "
                        f"(call .compute() on it if it fits in memory).")
    if isinstance(X, xr.Dataset):
        raise TypeError(f"{what} is an xarray.Dataset; pass one DataArray with dims (obs_id, feature), e.g. "
                        "ds.to_dataarray('feature').T or ds['x'].")
    arr = as_array(X, what)
    _check_dtype(arr.dtype, what)
    _check_shape(arr.shape, what)
    check_exact_integers(arr, what)
    return default_feature_names(arr.shape[1]), np.arange(arr.shape[0]), arr.astype(np.float64, copy=False), False


def as_data_matrix(X, what: str = "X", *, missing: bool = False) -> DataMatrix:
    """Validate ``X`` and convert it to a :class:`DataMatrix`.

    Accepts a numpy array (or nested lists), a pandas DataFrame (feature names
    from the columns, obs_id from the index) or an xarray DataArray with a
    ``feature`` dim (the other dim is taken as observations; names from the
    ``feature`` coordinate if it has one; messages name the file in its
    ``path`` attr, as set by ``read_csv``). A numpy masked array is accepted
    only when nothing is masked. ``missing=True`` accepts NaN for missing
    cells (``inputs.missing_cells``: no row all missing, every feature
    observed twice); inf is always refused.

    Raises
    ------
    TypeError
        Non-numeric, complex or object data; a masked array with masked values.
    ValueError
        Not 2-D, empty, no features, NaN or inf, integers float64 would round,
        values whose squares overflow or a spread that underflows, duplicate names.
    """
    if isinstance(X, DataMatrix):
        return X
    name = X.name if isinstance(X, xr.DataArray) else None
    what = data_label(X, what)
    if isinstance(X, pd.Series):
        X = X.to_frame()
    if isinstance(X, pd.DataFrame):
        features, obs_id, values, named = _from_frame(X, what)
    elif isinstance(X, xr.DataArray):
        features, obs_id, values, named = _from_data_array(X, what)
    else:
        features, obs_id, values, named = _from_array(X, what)
    _check_unique(features, what)
    _check_finite(values, what, features, allow_nan=missing)
    if missing:
        check_missing_cells(values, what, features, obs_id)
    check_representable(values, what, features)
    return DataMatrix(np.ascontiguousarray(values), features, obs_id, name, named)

"""Checks of scalar options and small arrays, shared by every entry point.

Messages name what was wrong, the value seen, and how to fix it. Data
matrices are checked in ``gmmflow.inputs``.
"""

from __future__ import annotations

import numbers

import numpy as np


def check_int(value, name: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer >= {minimum}, got {type(value).__name__} {value!r}.")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}.")
    return int(value)


def check_float(value, name: str, minimum: float = 0.0) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not np.isfinite(value):
        raise TypeError(f"{name} must be a finite number >= {minimum}, got {value!r}.")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}.")
    return float(value)


def check_probability(value, name: str) -> float:
    """A number strictly between 0 and 1 (an interval's probability mass)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not 0 < value < 1:
        raise ValueError(f"{name} must be a number in (0, 1), e.g. 0.94; got {value!r}.")
    return float(value)


def as_array(value, what: str) -> np.ndarray:
    try:
        return np.asarray(value)
    except ValueError as err:  # ragged nested lists
        raise ValueError(f"{what} could not be read as a numeric 2-D array: rows of different lengths? "
                         f"({err}) Give a rectangular array.") from None


def numeric_array(value, what: str) -> np.ndarray:
    """``value`` as a float64 array; a TypeError naming ``what`` if not numeric."""
    arr = as_array(value, what)
    if arr.dtype.kind not in "iuf":
        raise TypeError(f"{what} must be numeric, got dtype {arr.dtype}.")
    return arr.astype(np.float64)


def check_sample_weight(sample_weight, n_rows: int) -> np.ndarray | None:
    if sample_weight is None:
        return None
    sw = numeric_array(sample_weight, "sample_weight")
    if sw.shape != (n_rows,):
        raise ValueError(f"sample_weight must have shape ({n_rows},) (one weight per row), got {sw.shape}.")
    if not np.all(np.isfinite(sw)) or np.any(sw < 0):
        raise ValueError("sample_weight must be finite and >= 0.")
    if sw.sum() <= 0:
        raise ValueError("sample_weight sums to 0; at least one row needs a positive weight.")
    return sw


def check_seed(seed) -> int:
    """A concrete non-negative seed; ``None`` draws a fresh one (recorded in attrs)."""
    if seed is None:
        return int(np.random.SeedSequence().entropy) % (1 << 62)
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or seed < 0:
        raise TypeError(f"seed must be a non-negative integer or None, got {seed!r}.")
    return int(seed)

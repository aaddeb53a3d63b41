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
    refuse_masked(value, what)
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
    """Observation weights as relative importances, rescaled to sum to the number of weighted rows.

    ``w_i -> n_+ w_i / sum_j w_j`` with ``n_+`` the number of rows whose
    weight is positive. Only the ratios of the weights matter: multiplying
    every weight by a constant changes no estimate and no criterion, the
    prior weighs as much against the data as with unweighted rows, and BIC's
    ``n`` (the sum of the rescaled weights) is ``n_+``. A row of weight 0 is
    left out; to count a row twice, repeat it (integer weights are not
    frequencies: ``[2, 1, 1]`` is ``[1.5, 0.75, 0.75]``). The rescaling
    divides by the largest weight first, so weights near the float64 limits
    do not overflow.

    Raises
    ------
    TypeError, ValueError
        A masked array, non-numeric, wrong shape, NaN, inf, negative, all zero.
    """
    if sample_weight is None:
        return None
    refuse_masked(sample_weight, "sample_weight")
    sw = numeric_array(sample_weight, "sample_weight")
    if sw.shape != (n_rows,):
        raise ValueError(f"sample_weight must have shape ({n_rows},) (one weight per row), got {sw.shape}.")
    if not np.all(np.isfinite(sw)) or np.any(sw < 0):
        raise ValueError("sample_weight must be finite and >= 0.")
    if sw.max() <= 0:
        raise ValueError("sample_weight sums to 0; at least one row needs a positive weight.")
    relative = sw / sw.max()
    return relative * (np.count_nonzero(sw) / relative.sum())


def refuse_masked(value, what: str) -> None:
    """Raise if ``value`` is a numpy masked array with masked entries: numpy would drop the mask silently.

    (The missing-value work of issue 15 will add a way to say what a mask means.)
    """
    mask = np.ma.getmask(value) if isinstance(value, np.ma.MaskedArray) else np.ma.nomask
    if mask is np.ma.nomask or not mask.any():
        return
    first = np.argwhere(mask)[0]
    where = f"row {first[0]}" + (f", column {first[1]}" if first.size > 1 else "")
    fix = ("drop the masked rows with X[~X.mask.any(axis=1)] (or fill them with X.filled(value))"
           if np.ndim(mask) == 2 else f"give the masked rows weight 0 with {what}.filled(0)")
    raise TypeError(f"{what} is a numpy masked array with {int(mask.sum())} masked value(s), the first at "
                    f"{where}; gmmflow would ignore the mask. Say what the mask means: {fix}, and pass "
                    "the plain array.")


SEED_LIMIT = 1 << 64  # numpy's SeedSequence takes any size; nutpie and PyMC take 64-bit seeds


def check_seed(seed) -> int:
    """A concrete seed in ``[0, 2**64)``; ``None`` draws a fresh one (recorded in attrs).

    Every backend takes a 64-bit seed, so a larger one is refused here, not
    after the EM has run.
    """
    if seed is None:
        return int(np.random.SeedSequence().entropy) % (1 << 62)
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral):
        raise TypeError(f"seed must be an integer from 0 to 2**64 - 1 or None, got {type(seed).__name__} "
                        f"{summarize_value(seed)}.")
    if not 0 <= seed < SEED_LIMIT:
        raise ValueError(f"seed must be an integer from 0 to 2**64 - 1 = {SEED_LIMIT - 1} (every sampler "
                         f"takes 64 bits), got {summarize_value(int(seed))}.")
    return int(seed)


def summarize_value(value, limit: int = 60) -> str:
    """``repr(value)``, shortened in the middle to about ``limit`` characters."""
    text = repr(value)
    return text if len(text) <= limit else f"{text[: limit // 2]}...{text[-limit // 4:]} ({len(text)} characters)"


def summarize_values(values, limit: int = 8) -> str:
    """A list for a message: whole when short, else its first and last entries and the count.

    ``[273, 274, 275, ..., 99999, 100000] (99,728 values)``; a run of
    consecutive integers is written ``273..100000 (99,728 values)``.
    """
    if isinstance(values, range):
        count = max(0, (values.stop - values.start + values.step - (1 if values.step > 0 else -1)) // values.step)
        if count > limit:
            middle = ".." if values.step == 1 else f", {values[1]}, ..., "
            return f"{values[0]}{middle}{values[-1]} ({count:,} values)"
    values = [v.item() if isinstance(v, np.generic) else v for v in values]
    if len(values) <= limit:
        return repr(values)
    ints = all(isinstance(v, numbers.Integral) for v in values)
    if ints and all(b - a == 1 for a, b in zip(values, values[1:])):
        return f"{values[0]}..{values[-1]} ({len(values):,} values)"
    head = ", ".join(map(repr, values[: limit // 2 + 1]))
    tail = ", ".join(map(repr, values[-(limit // 2 - 1):]))
    return f"[{head}, ..., {tail}] ({len(values):,} values)"


MISSING_OPTIONS = ("error", "marginalize")


def check_missing(value) -> str:
    """The ``missing=`` option: ``"error"`` (NaN refused) or ``"marginalize"``."""
    if not isinstance(value, str) or value not in MISSING_OPTIONS:
        raise ValueError(f"missing must be one of {', '.join(map(repr, MISSING_OPTIONS))}; got "
                         f"{summarize_value(value)}.")
    return value


def check_noise_with_missing(noise: bool, incomplete: bool, task: str = "fit") -> None:
    """A noise component and missing cells are not used together (EM, PyMC model, prediction):
    refuse both at once. ``task`` is the verb of the message ("fit", "predict on")."""
    if noise and incomplete:
        raise ValueError(f"GMM(noise=True) cannot {task} data with missing values yet (missing='marginalize' "
                         "and a noise component): drop the incomplete rows, or fit without noise=True.")

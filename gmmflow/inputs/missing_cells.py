"""Missing cells (NaN) in data: what ``missing="marginalize"`` accepts.

Each row must observe at least one feature (a row with every value missing
carries no information about the mixture and is refused, never silently
dropped), and each feature at least two rows (else its variance, and the
default prior's scale, is undefined). Checked before any work starts, on
in-memory data here and on chunked data in the one pass over their chunks
(``inputs.chunked``), with the same messages.
"""

from __future__ import annotations

import numpy as np

# what every refusal of NaN says about the option that accepts them
MISSING_HINT = ("Pass missing='marginalize' to fit on each row's observed values (CLI: --missing marginalize), "
                "or remove or impute the missing values first.")


def empty_rows_error(what: str, count: int, first: str) -> ValueError:
    """The refusal of ``count`` rows with every value missing; ``first`` says where the first one is."""
    return ValueError(
        f"{what} has {count} row(s) with every value missing (the first is {first}); they carry no "
        "information about the mixture. Drop them first, e.g. X.dropna(how='all') for a DataFrame or "
        "X[~np.isnan(X).all(axis=1)] for an array (in a file: delete their lines)."
    )


def check_observed_counts(observed: np.ndarray, what: str, features) -> None:
    """Raise if a feature has fewer than two observed values (``observed``: per-feature counts)."""
    if (observed < 2).any():
        j = int(np.argmin(observed))
        raise ValueError(
            f"{what} feature {features[j]!r} has {int(observed[j])} observed value(s); at least 2 are needed "
            "to estimate its variance. Drop the feature."
        )


def check_missing_cells(values: np.ndarray, what: str, features, obs_id) -> int:
    """Raise if a row has no observed value or a feature fewer than two; return the count of missing cells."""
    missing = np.isnan(values)
    empty = np.flatnonzero(missing.all(axis=1))
    if empty.size:
        raise empty_rows_error(what, empty.size, f"row {empty[0]}, obs_id {obs_id[empty[0]]}")
    check_observed_counts((~missing).sum(axis=0), what, features)
    return int(missing.sum())

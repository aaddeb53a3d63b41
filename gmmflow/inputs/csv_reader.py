"""Reading a user's CSV file as a labelled ``(obs_id, feature)`` array."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from gmmflow.schema import FEATURE as FEATURE_DIM
from gmmflow.schema import OBS as OBS_DIM


def read_csv(path: str | os.PathLike, columns: list[str] | None = None) -> xr.DataArray:
    """Read numeric columns of a CSV file as a ``(obs_id, feature)`` DataArray.

    Raises
    ------
    FileNotFoundError, ValueError
        Missing file, empty file, unknown column, a non-numeric column (named)
        or a missing value (row and column named).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"No such data file: {path}.")
    try:
        frame = pd.read_csv(path)
    except pd.errors.EmptyDataError as err:
        raise ValueError(f"{path} is empty: no header and no rows.") from err
    if frame.shape[0] == 0:
        raise ValueError(f"{path} has a header but no data rows.")
    if columns:
        missing = [c for c in columns if c not in frame.columns]
        if missing:
            raise ValueError(f"{path} has no column(s) {missing}; its columns are {list(frame.columns)}.")
        frame = frame[list(columns)]
    for col in frame.columns:
        if frame[col].dtype.kind not in "iuf":
            bad = pd.to_numeric(frame[col], errors="coerce").isna() & frame[col].notna()
            row = int(np.argmax(bad.to_numpy())) if bad.any() else 0
            raise ValueError(
                f"{path}: column {col!r} is not numeric (row {row + 2} of the file holds "
                f"{frame[col].iloc[row]!r}). Choose numeric columns with --columns."
            )
    na = frame.isna().to_numpy()
    if na.any():
        i, j = np.argwhere(na)[0]
        raise ValueError(
            f"{path}: missing value in column {frame.columns[j]!r} at row {int(i) + 2} of the file "
            f"({int(na.sum())} missing in total). Remove or impute missing values first."
        )
    return xr.DataArray(
        frame.to_numpy(dtype=np.float64), dims=(OBS_DIM, FEATURE_DIM),
        coords={OBS_DIM: np.arange(len(frame)), FEATURE_DIM: [str(c) for c in frame.columns]},
        name=path.stem,
    )

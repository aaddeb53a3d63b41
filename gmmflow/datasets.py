"""Bundled datasets as labelled arrays, and reading user CSV files."""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from gmmflow._validation import FEATURE_DIM, OBS_DIM

# name -> (feature columns, label column carried as a coordinate, description)
DATASETS = {
    "faithful": (["eruptions", "waiting"], None,
                 "Old Faithful geyser: eruption duration and waiting time (min), 272 eruptions"),
    "geyser": (["waiting", "duration"], None,
               "Old Faithful geyser (MASS::geyser), 299 eruptions, August 1985"),
    "galaxies": (["velocity"], None, "Velocities (km/s) of 82 galaxies in Corona Borealis (MASS)"),
    "iris": (["sepal_length", "sepal_width", "petal_length", "petal_width"], "species",
             "Fisher's iris measurements (cm), 150 flowers"),
    "blobs": (["x1", "x2"], "source",
              "Two Gaussian blobs, N([0,0], I) and N([3,3], I), 100 each, np.random.seed(42)"),
}


def _data_dir() -> Path:
    bundled = resources.files("gmmflow") / "_bundled_data"
    if bundled.is_dir():  # installed wheel
        return Path(str(bundled))
    return Path(__file__).resolve().parent.parent / "data"  # source checkout


def list_datasets() -> list[str]:
    """Names accepted by :func:`load_dataset`."""
    return sorted(DATASETS)


def load_dataset(name: str) -> xr.DataArray:
    """Load a bundled dataset as a DataArray with dims ``(obs_id, feature)``.

    Parameters
    ----------
    name : {"faithful", "geyser", "galaxies", "iris", "blobs"}

    Returns
    -------
    xarray.DataArray
        float64 values, real feature names; iris carries ``species`` and blobs
        ``source`` as coordinates along ``obs_id``. Provenance in ``data/README.md``.
    """
    if name not in DATASETS:
        raise ValueError(f"Unknown dataset {name!r}; known datasets: {', '.join(list_datasets())}.")
    features, label, description = DATASETS[name]
    frame = pd.read_csv(_data_dir() / f"{name}.csv")
    coords = {OBS_DIM: np.arange(len(frame)), FEATURE_DIM: features}
    if label is not None:
        coords[label] = (OBS_DIM, frame[label].to_numpy())
    return xr.DataArray(
        frame[features].to_numpy(dtype=np.float64),
        dims=(OBS_DIM, FEATURE_DIM),
        coords=coords,
        name=name,
        attrs={"description": description, "source": "data/README.md"},
    )


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

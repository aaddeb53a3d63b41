"""Bundled datasets as labelled arrays (provenance in ``data/README.md``)."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from gmmflow.schema import FEATURE as FEATURE_DIM
from gmmflow.schema import OBS as OBS_DIM

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
    "wine": (["alcohol", "malic_acid", "ash", "alcalinity", "magnesium", "phenols", "flavanoids",
              "nonflavanoid", "proanthocyanins", "intensity", "hue", "od280", "proline"], "class",
             "Chemical analysis of 178 Italian wines from three cultivars (UCI, gclus::wine), 13 features"),
}


def _data_dir() -> Path:
    bundled = resources.files("gmmflow") / "_bundled_data"
    if bundled.is_dir():  # installed wheel
        return Path(str(bundled))
    return Path(__file__).resolve().parents[2] / "data"  # source checkout


def list_datasets() -> list[str]:
    """Names accepted by :func:`load_dataset`."""
    return sorted(DATASETS)


def load_dataset(name: str) -> xr.DataArray:
    """Load a bundled dataset as a DataArray with dims ``(obs_id, feature)``.

    Parameters
    ----------
    name : {"faithful", "geyser", "galaxies", "iris", "blobs", "wine"}

    Returns
    -------
    xarray.DataArray
        float64 values, real feature names; iris carries ``species``, blobs
        ``source`` and wine ``class`` (cultivar 1-3) as coordinates along ``obs_id``. Provenance in ``data/README.md``.
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

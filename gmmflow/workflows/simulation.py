"""Simulate data sets from the generative PyMC model."""

from __future__ import annotations

import pymc as pm
import xarray as xr

from gmmflow import schema as S
from gmmflow.checks import check_int, check_seed
from gmmflow.core.gaussian import full_covariances
from gmmflow.core.hyperparameters import Hyperparameters
from gmmflow.models.pymc_model import covariance_value_name
from gmmflow.models.spec import GMM
from gmmflow.resources import check_memory, sample_bytes


def simulate(model: GMM, n: int, seed: int | None = None,
             hyperparameters: Hyperparameters | None = None) -> xr.Dataset:
    """Draw parameters from the prior, then ``n`` rows from the mixture they define.

    Runs ``pm.sample_prior_predictive`` on the generative form of the model
    (``marginalized=False``): z explicit.

    Parameters
    ----------
    model : GMM
        Its prior must be fully specified (``Prior(mean=..., scale=...)``)
        unless ``hyperparameters`` is given: there is no data to take defaults from.
    n : int
        Number of rows.
    seed : int, optional
    hyperparameters : Hyperparameters, optional

    Returns
    -------
    xarray.Dataset
        ``x (obs_id, feature)``, the labels ``z (obs_id)`` and the true ``w``,
        ``mu`` and ``cov`` (full matrices) that made them.
    """
    n = check_int(n, "n", 1)
    check_memory(sample_bytes(n, 1), f"simulate of {n} rows", "simulate fewer rows")  # d >= 1: a lower bound
    seed = check_seed(seed)
    pm_model = model.pymc_model(marginalized=False, n_obs=n, hyperparameters=hyperparameters)
    with pm_model:
        draw = pm.sample_prior_predictive(draws=1, random_seed=seed, compile_kwargs={}).prior
    first = draw.isel(chain=0, draw=0)
    t = model.covariance_type
    d = first["x"].sizes[S.FEATURE]
    cov = full_covariances(first[covariance_value_name(t)].values, t, model.n_components, d)
    out = xr.Dataset(
        {
            "x": first["x"].drop_vars(list(S.SAMPLE_DIMS), errors="ignore"),
            "z": first["z"].drop_vars(list(S.SAMPLE_DIMS), errors="ignore"),
            "w": first["w"].drop_vars(list(S.SAMPLE_DIMS), errors="ignore"),
            "mu": first["mu"].drop_vars(list(S.SAMPLE_DIMS), errors="ignore"),
            "cov": ((S.COMPONENT, S.FEATURE, S.FEATURE2), cov),
        },
        attrs={"seed": seed, "model": model.to_json()},
    )
    return out.assign_coords({S.FEATURE2: out[S.FEATURE].values})

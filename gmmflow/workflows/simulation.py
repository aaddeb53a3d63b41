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
    out = prior_simulations(model, n, 1, seed, hyperparameters).isel({S.DRAW: 0}, drop=True)
    out.attrs = {"seed": seed, "model": model.to_json()}
    return out


def prior_simulations(model: GMM, n: int, n_sims: int, seed: int,
                      hyperparameters: Hyperparameters | None = None) -> xr.Dataset:
    """``n_sims`` independent (parameters, data) draws of the prior, from one compiled PyMC function.

    As :func:`simulate`, with a leading ``draw`` dim on every variable (arguments checked by the caller).
    """
    pm_model = model.pymc_model(marginalized=False, n_obs=n, hyperparameters=hyperparameters)
    with pm_model:
        draws = pm.sample_prior_predictive(draws=n_sims, random_seed=seed, compile_kwargs={}).prior
    draws = draws.isel({S.CHAIN: 0}, drop=True)
    t = model.covariance_type
    d = draws["x"].sizes[S.FEATURE]
    cov = full_covariances(draws[covariance_value_name(t)].values, t, model.n_components, d)
    out = xr.Dataset(
        {
            "x": draws["x"],
            "z": draws["z"],
            "w": draws["w"],
            "mu": draws["mu"],
            "cov": ((S.DRAW, S.COMPONENT, S.FEATURE, S.FEATURE2), cov),
        },
    )
    return out.assign_coords({S.FEATURE2: out[S.FEATURE].values})

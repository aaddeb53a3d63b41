"""Linear regression whose errors follow a Gaussian mixture (robust regression).

Most errors are small, some are outliers: y_i = b t_i + e_i with
e_i ~ sum_k w_k N(mu_k, sigma_k^2). The error mixture is gmmflow's GMM
(its prior from ``gmm_priors``, its likelihood ``GaussianMixture``); the
regression line shifts every row's component means (batched means). The
intercept lives in the components' means, so there is no separate one.

Run: python docs/examples/regression_errors.py
"""

import numpy as np
import pymc as pm

import gmmflow
from gmmflow.pymc import GaussianMixture, gmm_priors

TRUTH = {"b": 2.5, "w": np.array([0.85, 0.15]), "mu": np.array([1.0, 1.0]), "sigma": np.array([0.3, 3.0])}


def simulate(n: int = 300, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    t = np.linspace(-2, 2, n)
    k = (rng.random(n) < TRUTH["w"][1]).astype(int)
    y = TRUTH["b"] * t + rng.normal(TRUTH["mu"][k], TRUTH["sigma"][k])
    return {"t": t, "y": y}


def build_model(data: dict) -> pm.Model:
    t, y = data["t"], data["y"]
    # the error mixture: 2 components in 1 dimension; its prior's defaults come from the OLS residuals
    slope = np.polyfit(t, y, 1)[0]
    residuals = (y - slope * t)[:, None]
    with pm.Model(coords={"obs_id": np.arange(len(y))}) as model:
        b = pm.Normal("b", 0.0, 10.0)
        w, mu, cov, chol = gmm_priors(gmmflow.GMM(2), residuals, features=["error"])
        GaussianMixture("y", w, mu + (b * t)[:, None, None], chol=chol, observed=y[:, None],
                        dims=("obs_id", "feature"))
    return model


def start(data: dict) -> dict:
    """EM's MAP of the error mixture on the OLS residuals: a start for every chain (no label switching)."""
    slope = np.polyfit(data["t"], data["y"], 1)[0]
    fit = gmmflow.fit_em(gmmflow.GMM(2), (data["y"] - slope * data["t"])[:, None], seed=0)
    order = np.argsort(fit.em_estimate.cov.values[:, 0, 0])  # narrow component first
    return {"b": slope, "w": fit.em_estimate.w.values[order], "mu": fit.em_estimate.mu.values[order],
            "cov": fit.em_estimate.cov.values[order]}


def main(draws: int = 1000, tune: int = 1000, chains: int = 4, seed: int = 1, nuts_sampler: str = "numpyro"):
    data = simulate()
    model = build_model(data)
    with model:
        prior = pm.sample_prior_predictive(draws=100, random_seed=seed)
        idata = pm.sample(draws=draws, tune=tune, chains=chains, initvals=start(data), random_seed=seed,
                          nuts_sampler=nuts_sampler, progressbar=False)
        idata.extend(prior)
        pm.sample_posterior_predictive(idata, extend_inferencedata=True, random_seed=seed, progressbar=False)
    return idata


if __name__ == "__main__":
    import arviz as az

    print(az.summary(main(), var_names=["b", "w", "mu", "cov"]))

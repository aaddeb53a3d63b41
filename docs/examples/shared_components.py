"""Groups that share mixture components but not weights (a hierarchical mixture).

Three sites measure the same two kinds of objects in different proportions:
the components (means, covariances) are common, each site has its own weights
``w_site[g] ~ Dirichlet(concentration * w)``, drawn around the population
weights ``w`` of gmmflow's prior. Every observation's weights are its site's:
``GaussianMixture(w_site[site], mu, chol)`` (batched weights).

Run: python docs/examples/shared_components.py
"""

import numpy as np
import pymc as pm

import gmmflow
from gmmflow.pymc import GaussianMixture, gmm_priors

TRUTH = {"mu": np.array([[0.0, 0.0], [4.0, 3.0]]), "w_site": np.array([[0.8, 0.2], [0.5, 0.5], [0.2, 0.8]])}


def simulate(n_per_site: int = 150, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    sites, rows = [], []
    for g, weights in enumerate(TRUTH["w_site"]):
        k = rng.choice(2, size=n_per_site, p=weights)
        rows.append(TRUTH["mu"][k] + rng.normal(size=(n_per_site, 2)) @ np.array([[0.8, 0.0], [0.3, 0.6]]))
        sites.append(np.full(n_per_site, g))
    return {"X": np.concatenate(rows), "site": np.concatenate(sites)}


def build_model(data: dict) -> pm.Model:
    X, site = data["X"], data["site"]
    coords = {"site": np.arange(3), "obs_id": np.arange(len(X))}
    with pm.Model(coords=coords) as model:
        w, mu, cov, chol = gmm_priors(gmmflow.GMM(2), X, features=["x1", "x2"])
        concentration = pm.Gamma("concentration", 2.0, 0.1)
        w_site = pm.Dirichlet("w_site", concentration * w, dims=("site", "component"))
        GaussianMixture("x", w_site[site], mu, chol=chol, observed=X, dims=("obs_id", "feature"))
    return model


def start(data: dict) -> dict:
    """EM's MAP on the pooled data for the shared components: every chain starts there."""
    est = gmmflow.fit_em(gmmflow.GMM(2), data["X"], seed=0).em_estimate
    order = np.argsort(est.mu.values[:, 0])
    return {"mu": est.mu.values[order], "cov": est.cov.values[order], "w": est.w.values[order]}


def main(draws: int = 1000, tune: int = 1000, chains: int = 4, seed: int = 1, nuts_sampler: str = "numpyro"):
    data = simulate()
    with build_model(data):
        prior = pm.sample_prior_predictive(draws=100, random_seed=seed)
        idata = pm.sample(draws=draws, tune=tune, chains=chains, initvals=start(data), random_seed=seed,
                          nuts_sampler=nuts_sampler, progressbar=False)
        idata.extend(prior)
        pm.sample_posterior_predictive(idata, extend_inferencedata=True, random_seed=seed, progressbar=False)
    return idata


if __name__ == "__main__":
    import arviz as az

    print(az.summary(main(), var_names=["w_site", "mu"]))

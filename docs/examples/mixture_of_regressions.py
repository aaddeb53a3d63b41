"""A mixture of regressions: each component has its own line, y_i ~ sum_k w_k N(a_k + b_k t_i, s_k^2).

The component means depend on a covariate: a univariate ``GaussianMixture``
with batched means (one row of K means per observation). The intercepts are
ordered, which fixes the labels. Every chain starts at the lines that gmmflow's
EM finds in the joint (t, y) data: a Gaussian component of (t, y) implies the
regression of y on t within it (slope ``S_ty / S_tt``, residual variance
``S_yy - S_ty^2 / S_tt``).

Run: python docs/examples/mixture_of_regressions.py
"""

import numpy as np
import pymc as pm

import gmmflow
from gmmflow.pymc import GaussianMixture

TRUTH = {"w": np.array([0.4, 0.6]), "a": np.array([-2.0, 3.0]), "b": np.array([1.5, -1.0]),
         "sigma": np.array([0.5, 0.8])}


def simulate(n: int = 300, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    t = rng.uniform(-3, 3, n)
    k = (rng.random(n) < TRUTH["w"][1]).astype(int)
    y = TRUTH["a"][k] + TRUTH["b"][k] * t + rng.normal(0, TRUTH["sigma"][k])
    return {"t": t, "y": y}


def build_model(data: dict) -> pm.Model:
    t, y = data["t"], data["y"]
    with pm.Model(coords={"component": [0, 1], "obs_id": np.arange(len(y))}) as model:
        w = pm.Dirichlet("w", np.ones(2), dims="component")
        a = pm.Normal("a", 0.0, 5.0, dims="component", transform=pm.distributions.transforms.ordered)
        b = pm.Normal("b", 0.0, 5.0, dims="component")
        sigma = pm.HalfNormal("sigma", 2.0, dims="component")
        GaussianMixture("y", w, a + b * t[:, None], sigma=sigma, observed=y, dims="obs_id")
    return model


def start(data: dict) -> dict:
    """Each component's regression line implied by EM's MAP of a 2-component GMM on (t, y)."""
    est = gmmflow.fit_em(gmmflow.GMM(2), np.column_stack([data["t"], data["y"]]), seed=0).em_estimate
    mu, cov = est.mu.values, est.cov.values
    b = cov[:, 0, 1] / cov[:, 0, 0]
    a = mu[:, 1] - b * mu[:, 0]
    sigma = np.sqrt(cov[:, 1, 1] - cov[:, 0, 1] ** 2 / cov[:, 0, 0])
    order = np.argsort(a)
    return {"w": est.w.values[order], "a": a[order], "b": b[order], "sigma": sigma[order]}


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

    print(az.summary(main(), var_names=["w", "a", "b", "sigma"]))

"""Two mixtures in one model: two instruments, each with its own Gaussian mixture.

``gmm_priors(..., prefix=...)`` names every variable and dim of a mixture
after its prefix (``a_w``, ``a_mu``, ``a_cov`` on dims ``a_component``,
``a_feature``, ...), so the two live side by side; they share one parameter,
the ``shift`` between the instruments' readings of the same first component.

Run: python docs/examples/two_mixtures.py
"""

import numpy as np
import pymc as pm

import gmmflow
from gmmflow.pymc import GaussianMixture, gmm_priors

TRUTH = {"shift": 1.5, "a_mu": np.array([[0.0, 0.0], [5.0, 0.0]]), "b_mu": np.array([[1.5], [-4.0], [8.0]])}


def simulate(seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    ka, kb = rng.choice(2, size=200, p=[0.5, 0.5]), rng.choice(3, size=240, p=[0.4, 0.3, 0.3])
    A = TRUTH["a_mu"][ka] + 0.7 * rng.normal(size=(200, 2))
    B = TRUTH["b_mu"][kb] + 0.5 * rng.normal(size=(240, 1))
    return {"A": A, "B": B}


def build_model(data: dict) -> pm.Model:
    A, B = data["A"], data["B"]
    with pm.Model(coords={"a_obs": np.arange(len(A)), "b_obs": np.arange(len(B))}) as model:
        a = gmm_priors(gmmflow.GMM(2), A, prefix="a_", features=["u", "v"])
        b = gmm_priors(gmmflow.GMM(3, "spherical"), B, prefix="b_", features=["u"])
        # instrument B reads the first component of A's first feature shifted by `shift`
        pm.Deterministic("shift", b.mu[0, 0] - a.mu[0, 0])
        GaussianMixture("a_x", a.w, a.mu, chol=a.chol, observed=A, dims=("a_obs", "a_feature"))
        GaussianMixture("b_x", b.w, b.mu, chol=b.chol, observed=B, dims=("b_obs", "b_feature"))
    return model


def start(data: dict) -> dict:
    """Each mixture's EM MAP, components ordered along the first feature."""
    fa = gmmflow.fit_em(gmmflow.GMM(2), data["A"], seed=0).em_estimate
    fb = gmmflow.fit_em(gmmflow.GMM(3, "spherical"), data["B"], seed=0).em_estimate
    oa = np.argsort(fa.mu.values[:, 0])
    ob = np.argsort(np.abs(fb.mu.values[:, 0] - fa.mu.values[oa[0], 0]))  # B's first: nearest A's first
    return {"a_w": fa.w.values[oa], "a_mu": fa.mu.values[oa], "a_cov": fa.cov.values[oa],
            "b_w": fb.w.values[ob], "b_mu": fb.mu.values[ob], "b_var": fb.cov.values[ob, 0, 0]}


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

    print(az.summary(main(), var_names=["shift", "a_mu", "b_mu"]))

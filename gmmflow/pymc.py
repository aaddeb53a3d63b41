"""gmmflow's model definitions as PyMC building blocks, for any PyMC model.

* :class:`GaussianMixture` — a multivariate (or univariate) Gaussian mixture
  distribution with the labels summed out: ``observed=``, ``dims=``, batched
  parameters, random draws for prior and posterior predictive checks.
* :func:`GaussianNoiseMixture` — the same plus mclust's uniform noise component
  (weights K+1, the noise's last), the likelihood of ``GMM(K, noise=True)``.
* :class:`InverseWishart` — SPD matrices, sampled on the log-Cholesky scale.
* :func:`gmm_priors` — a mixture's prior (weights, means, covariances) as named,
  dimensioned variables, resolved from data through :meth:`gmmflow.Prior.resolve`;
  ``prefix=`` lets several mixtures share one model.

``gmmflow.GMM(K).pymc_model(X)`` is exactly ``gmm_priors`` plus a
``GaussianMixture`` likelihood: the model EM's MAP and the samplers use.
"""

from gmmflow.models.pymc_distributions import (
    CholeskyCovTransform,
    GaussianMixture,
    GaussianNoiseMixture,
    InverseWishart,
    mixture_logp,
    noise_mixture_logp,
)
from gmmflow.models.pymc_model import MixturePriors, component_cholesky, gmm_priors

__all__ = ["CholeskyCovTransform", "GaussianMixture", "GaussianNoiseMixture", "InverseWishart", "MixturePriors",
           "component_cholesky", "gmm_priors", "mixture_logp", "noise_mixture_logp"]

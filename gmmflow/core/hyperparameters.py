"""Concrete hyper-parameters of the conjugate prior: the numbers EM, the PyMC
model and the Gibbs sampler all read.

The user describes a prior with :class:`gmmflow.Prior` (any field may be left
to a data-dependent default); ``models.priors`` resolves it against the data
into a :class:`Hyperparameters`, which holds arrays only. For K components in
d dimensions::

    w            ~ Dirichlet(alpha * 1_K)
    Sigma_k      ~ InverseWishart(dof, scale)          full (one per k), tied (one)
    sigma2_kj    ~ InverseGamma(dof / 2, scale_j / 2)  diag
    sigma2_k     ~ InverseGamma(dof / 2, scale / 2)    spherical
    mu_k | Sigma ~ Normal(mean, Sigma_k / shrinkage)
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace

import numpy as np
from scipy import linalg


@dataclass(frozen=True, eq=False)
class Hyperparameters:
    """Concrete prior hyper-parameters for one covariance type and dimension.

    ``scale`` has shape (d, d) for full/tied, (d,) for diag and () for
    spherical; ``scale_chol`` is its lower Cholesky factor (full/tied only,
    filled in on construction).
    """

    covariance_type: str
    n_components: int
    alpha: float
    mean: np.ndarray
    shrinkage: float
    dof: float
    scale: np.ndarray
    scale_chol: np.ndarray | None = field(default=None, repr=False)

    def __post_init__(self):
        object.__setattr__(self, "mean", np.asarray(self.mean, dtype=np.float64))
        object.__setattr__(self, "scale", np.asarray(self.scale, dtype=np.float64))
        if self.scale_chol is None and self.covariance_type in ("full", "tied"):
            object.__setattr__(self, "scale_chol", linalg.cholesky(self.scale, lower=True))

    @property
    def n_features(self) -> int:
        return self.mean.shape[0]

    def shifted(self, offset: np.ndarray) -> Hyperparameters:
        """The same prior in a frame whose origin is ``offset`` (only the prior mean moves)."""
        return replace(self, mean=self.mean - offset)

    def to_dict(self) -> dict:
        return {
            "covariance_type": self.covariance_type,
            "n_components": self.n_components,
            "alpha": self.alpha,
            "mean": self.mean.tolist(),
            "shrinkage": self.shrinkage,
            "dof": self.dof,
            "scale": self.scale.tolist(),
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict())

    @classmethod
    def from_dict(cls, d: dict) -> Hyperparameters:
        """Inverse of :meth:`to_dict` (the values were validated when first resolved)."""
        return cls(covariance_type=d["covariance_type"], n_components=int(d["n_components"]),
                   alpha=float(d["alpha"]), mean=np.asarray(d["mean"], dtype=np.float64),
                   shrinkage=float(d["shrinkage"]), dof=float(d["dof"]),
                   scale=np.asarray(d["scale"], dtype=np.float64))

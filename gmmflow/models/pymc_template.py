"""The PyMC model with its data and hyper-parameters as inputs, for samplers that compile it once.

``GMM.pymc_model(X)`` holds X and the resolved hyper-parameters as constants:
a sampler that compiled it would compile again for every data set and every
prior. The *template* of a spec and a data shape is the same model, built from
the same blocks (:func:`~gmmflow.models.pymc_model.gmm_priors` and
:class:`~gmmflow.models.pymc_distributions.GaussianMixture`, hence the same
density, variables and unconstrained vector), whose data and hyper-parameters
are ``pm.Data`` containers named in :data:`INPUT_NAMES`. A compiled template
takes their values as arguments: one compilation per (spec structure, n, d)
serves every data set of that shape and every prior.

The IW scale enters as its Cholesky factor ``C`` (tagged lower-triangular),
with ``scale = C C^T``; PyTensor's ``cholesky(C C^T) -> C`` rewrite then keeps
the compiled log-density free of Cholesky decompositions, as in the model
with constants.

Flat vectors follow the layout of the model's value variables
(``model.free_RVs`` order), as nutpie's and gmmflow's NUTS drivers use them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np
import pymc as pm

from gmmflow.core.hyperparameters import Hyperparameters
from gmmflow.models.pymc_distributions import GaussianMixture
from gmmflow.models.pymc_model import covariance_value_name, gmm_priors

# the data containers of a template, in the order compiled functions take them
DATA = "x_data"
INPUT_NAMES = (DATA, "prior_alpha", "prior_mean", "prior_shrinkage", "prior_dof", "prior_scale")
SCALE_INPUT = "prior_scale"  # full, tied: the Cholesky factor C of Lambda; diag, spherical: s2


class HyperInputs(NamedTuple):
    """The hyper-parameters as model inputs, read by ``gmm_priors`` like a ``Hyperparameters``."""

    covariance_type: str
    n_components: int
    n_features: int
    alpha: Any
    mean: Any
    shrinkage: Any
    dof: Any
    scale: Any


def _scale_shape(covariance_type: str, d: int) -> tuple[int, ...]:
    return {"full": (d, d), "tied": (d, d), "diag": (d,), "spherical": ()}[covariance_type]


@dataclass(frozen=True, eq=False)
class ModelTemplate:
    """A spec's PyMC model for data of shape (n, d), data and hyper-parameters as inputs.

    ``model`` has the free variables of ``GMM.pymc_model`` (``w``, ``mu``,
    ``cov``/``var``); ``value_names`` are its unconstrained value variables
    in ``model.free_RVs`` order (the layout of every flat vector), and
    ``value_shapes`` their shapes.
    """

    model: pm.Model
    covariance_type: str
    n_obs: int
    n_features: int
    value_names: tuple[str, ...]
    value_shapes: tuple[tuple[int, ...], ...]

    @property
    def data_containers(self) -> list:
        """The model's ``pm.Data`` containers, in :data:`INPUT_NAMES` order."""
        return [self.model[name] for name in INPUT_NAMES]

    def input_values(self, X: np.ndarray, hyper: Hyperparameters) -> dict[str, np.ndarray]:
        """Values of the inputs for data ``X`` (n, d) and hyper-parameters ``hyper``, by name."""
        X = np.asarray(X, dtype=np.float64)
        if X.shape != (self.n_obs, self.n_features):
            raise ValueError(f"the template is for data of shape {(self.n_obs, self.n_features)}, got {X.shape}.")
        if hyper.covariance_type != self.covariance_type:
            raise ValueError(f"hyper-parameters for {hyper.covariance_type!r}, template for "
                             f"{self.covariance_type!r}.")
        scale = hyper.scale_chol if self.covariance_type in ("full", "tied") else hyper.scale
        values = (X, hyper.alpha, hyper.mean, hyper.shrinkage, hyper.dof, scale)
        return {name: np.asarray(v, dtype=np.float64) for name, v in zip(INPUT_NAMES, values)}

    @property
    def size(self) -> int:
        """Length of the flat unconstrained vector."""
        return int(sum(np.prod(s, dtype=int) for s in self.value_shapes))


def model_template(spec, n_obs: int, n_features: int) -> ModelTemplate:
    """Build the template of ``spec`` (a :class:`gmmflow.GMM`) for data of shape (n_obs, n_features).

    Placeholder values fill the inputs; set real ones with
    :meth:`ModelTemplate.input_values`. Parameter checks are off
    (``check_bounds=False``): the transforms keep every value in its support.
    """
    n, d, t, K = int(n_obs), int(n_features), spec.covariance_type, spec.n_components
    placeholder_scale = np.eye(d) if t in ("full", "tied") else np.ones(_scale_shape(t, d))
    with pm.Model(check_bounds=False) as model:
        X = pm.Data(DATA, np.zeros((n, d)), shape=(n, d))
        alpha, mean, shrinkage, dof = (
            pm.Data(name, value, shape=np.shape(value))
            for name, value in zip(INPUT_NAMES[1:5], (1.0, np.zeros(d), 1.0, float(d + 2))))
        scale = pm.Data(SCALE_INPUT, placeholder_scale, shape=placeholder_scale.shape)
        if t in ("full", "tied"):
            scale.tag.lower_triangular = True  # C: the rewrite turns cholesky(C C^T) into C
            scale = scale @ scale.mT
        hyper = HyperInputs(t, K, d, alpha, mean, shrinkage, dof, scale)
        w, mu, _, chol = gmm_priors(spec, hyper=hyper, features=[f"x{j}" for j in range(d)])
        GaussianMixture("x", w, mu, chol=chol, observed=X)
    names, shapes = _value_layout(model, K, d, t)
    return ModelTemplate(model, t, n, d, names, shapes)


def _value_layout(model: pm.Model, K: int, d: int, t: str):
    """Names and shapes of the value variables, in ``free_RVs`` order."""
    m = d * (d + 1) // 2
    cov_shape = {"full": (K, m), "tied": (m,), "diag": (K, d), "spherical": (K,)}[t]
    shapes = {"w": (K - 1,), "mu": (K, d), covariance_value_name(t): cov_shape}
    names = tuple(model.rvs_to_values[rv].name for rv in model.free_RVs)
    return names, tuple(shapes[rv.name] for rv in model.free_RVs)


# --------------------------------------------------------------------------
# Flat unconstrained vectors
# --------------------------------------------------------------------------
def flatten_point(template: ModelTemplate, point: dict) -> np.ndarray:
    """``{value name: array}`` -> the flat unconstrained vector (``value_names`` order)."""
    return np.concatenate([np.ravel(point[name]) for name in template.value_names])


def split_flat(template: ModelTemplate, flat: np.ndarray) -> list[np.ndarray]:
    """Flat vectors (..., size) -> one array per value variable (..., *shape)."""
    flat = np.asarray(flat)
    out, start = [], 0
    for shape in template.value_shapes:
        size = int(np.prod(shape, dtype=int))
        out.append(flat[..., start:start + size].reshape(flat.shape[:-1] + tuple(shape)))
        start += size
    return out

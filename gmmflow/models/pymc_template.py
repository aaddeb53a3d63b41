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

Data with missing cells (``missing="marginalize"``) have one data
container per missingness pattern (``x_data_pattern{j}``: the pattern's rows
on its observed columns) and the likelihood of
:func:`~gmmflow.models.pymc_missing.pattern_mixtures`; such a template is for
one *layout* (the patterns' observed columns and row counts, :func:`data_layout`)
and serves every data set with that layout.

A noise model (``GMM(noise=True)``) has K + 1 weights and the likelihood
of :func:`~gmmflow.models.pymc_distributions.GaussianNoiseMixture`, its
density ``-log V`` one more input (:data:`NOISE_INPUT`).

Flat vectors follow the layout of the model's value variables
(``model.free_RVs`` order), as nutpie's and gmmflow's NUTS drivers use them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np
import pymc as pm

from gmmflow.core.hyperparameters import Hyperparameters
from gmmflow.core.missing_data import missing_patterns
from gmmflow.checks import check_noise_with_missing
from gmmflow.models.pymc_distributions import GaussianMixture, GaussianNoiseMixture
from gmmflow.models.pymc_missing import PATTERN, pattern_mixtures
from gmmflow.models.pymc_model import covariance_value_name, gmm_priors

# the data containers of a template, in the order compiled functions take them
DATA = "x_data"
HYPER_INPUTS = ("prior_alpha", "prior_mean", "prior_shrinkage", "prior_dof", "prior_scale")
INPUT_NAMES = (DATA, *HYPER_INPUTS)  # complete data
SCALE_INPUT = "prior_scale"  # full, tied: the Cholesky factor C of Lambda; diag, spherical: s2
NOISE_INPUT = "noise_log_density"  # a noise model's -log V (the last input)

# ((observed columns, number of rows), ...) of data with missing cells, None for complete data
Layout = tuple[tuple[tuple[int, ...], int], ...] | None


def data_layout(X: np.ndarray) -> Layout:
    """The missingness layout of ``X`` (n, d): None when complete, else per pattern (in
    :func:`~gmmflow.core.missing_data.missing_patterns` order) its observed columns and row count."""
    return _layout(_patterns(X))


def _patterns(X: np.ndarray) -> list | None:
    """The missingness patterns of ``X``, None when it is complete."""
    observed = ~np.isnan(X)
    return None if observed.all() else missing_patterns(observed)


def _layout(patterns: list | None) -> Layout:
    return None if patterns is None else tuple((tuple(int(i) for i in p.observed), int(p.rows.size))
                                               for p in patterns)


def _pattern_inputs(layout: Layout) -> tuple[str, ...]:
    return (DATA,) if layout is None else tuple(f"{DATA}{PATTERN}{j}" for j in range(len(layout)))


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
    layout: Layout = None
    noise: bool = False

    @property
    def input_names(self) -> tuple[str, ...]:
        """The data containers' names, in the order compiled functions take them: the data
        (one container, or one per missingness pattern), then :data:`HYPER_INPUTS`, then a
        noise model's :data:`NOISE_INPUT`."""
        return (*_pattern_inputs(self.layout), *HYPER_INPUTS, *((NOISE_INPUT,) if self.noise else ()))

    @property
    def data_containers(self) -> list:
        """The model's ``pm.Data`` containers, in :attr:`input_names` order."""
        return [self.model[name] for name in self.input_names]

    def input_values(self, X: np.ndarray, hyper: Hyperparameters,
                     log_noise_density: float | None = None) -> dict[str, np.ndarray]:
        """Values of the inputs for data ``X`` (n, d), hyper-parameters ``hyper`` and, for a noise
        model, the noise density ``-log V``, by name."""
        X = np.asarray(X, dtype=np.float64)
        if X.shape != (self.n_obs, self.n_features):
            raise ValueError(f"the template is for data of shape {(self.n_obs, self.n_features)}, got {X.shape}.")
        patterns = _patterns(X)  # grouped once: the layout check and the pattern inputs
        if _layout(patterns) != self.layout:
            raise ValueError("the template is for another pattern of missing cells than X's.")
        if hyper.covariance_type != self.covariance_type:
            raise ValueError(f"hyper-parameters for {hyper.covariance_type!r}, template for "
                             f"{self.covariance_type!r}.")
        scale = hyper.scale_chol if self.covariance_type in ("full", "tied") else hyper.scale
        data = [X] if patterns is None else [X[np.ix_(p.rows, p.observed)] for p in patterns]
        if self.noise and log_noise_density is None:
            raise ValueError("a noise model's template needs log_noise_density (-log V).")
        noise = (log_noise_density,) if self.noise else ()
        values = (*data, hyper.alpha, hyper.mean, hyper.shrinkage, hyper.dof, scale, *noise)
        return {name: np.asarray(v, dtype=np.float64) for name, v in zip(self.input_names, values)}

    @property
    def size(self) -> int:
        """Length of the flat unconstrained vector."""
        return int(sum(np.prod(s, dtype=int) for s in self.value_shapes))


def model_template(spec, n_obs: int, n_features: int, layout: Layout = None) -> ModelTemplate:
    """Build the template of ``spec`` (a :class:`gmmflow.GMM`) for data of shape (n_obs, n_features)
    and missingness ``layout`` (:func:`data_layout`; None: complete data).

    Placeholder values fill the inputs; set real ones with
    :meth:`ModelTemplate.input_values`. Parameter checks are off
    (``check_bounds=False``): the transforms keep every value in its support.
    """
    n, d, t, K = int(n_obs), int(n_features), spec.covariance_type, spec.n_components
    check_noise_with_missing(spec.noise, layout is not None)
    placeholder_scale = np.eye(d) if t in ("full", "tied") else np.ones(_scale_shape(t, d))
    patterns = (((*range(d),), n),) if layout is None else layout
    with pm.Model(check_bounds=False) as model:
        data = [pm.Data(name, np.zeros((rows, len(o))), shape=(rows, len(o)))
                for name, (o, rows) in zip(_pattern_inputs(layout), patterns)]
        alpha, mean, shrinkage, dof = (
            pm.Data(name, value, shape=np.shape(value))
            for name, value in zip(HYPER_INPUTS[:4], (1.0, np.zeros(d), 1.0, float(d + 2))))
        scale = pm.Data(SCALE_INPUT, placeholder_scale, shape=placeholder_scale.shape)
        if t in ("full", "tied"):
            scale.tag.lower_triangular = True  # C: the rewrite turns cholesky(C C^T) into C
            scale = scale @ scale.mT
        hyper = HyperInputs(t, K, d, alpha, mean, shrinkage, dof, scale)
        w, mu, _, chol = gmm_priors(spec, hyper=hyper, features=[f"x{j}" for j in range(d)])
        if spec.noise:
            log_noise_density = pm.Data(NOISE_INPUT, 0.0, shape=())
            GaussianNoiseMixture("x", w, mu, chol, log_noise_density, observed=data[0])
        elif layout is None:
            GaussianMixture("x", w, mu, chol=chol, observed=data[0])
        else:
            pattern_mixtures("x", w, mu, chol, t, d, [o for o, _ in layout], data)
    names, shapes = _value_layout(model, K, d, t, spec.noise)
    return ModelTemplate(model, t, n, d, names, shapes, layout, spec.noise)


def _value_layout(model: pm.Model, K: int, d: int, t: str, noise: bool):
    """Names and shapes of the value variables, in ``free_RVs`` order (a noise model's
    weights have K + 1 entries)."""
    m = d * (d + 1) // 2
    cov_shape = {"full": (K, m), "tied": (m,), "diag": (K, d), "spherical": (K,)}[t]
    shapes = {"w": (K - 1 + noise,), "mu": (K, d), covariance_value_name(t): cov_shape}
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

"""The generative GMM of docs/architecture.md, declared in PyMC.

One function, :func:`build_pymc_model`, turns a :class:`~gmmflow.GMM` spec
into a ``pm.Model`` whose free variables are ``w`` (Dirichlet), ``mu`` and
one covariance variable: ``cov`` (InverseWishart; full (K, d, d), tied
(d, d)) or ``var`` (InverseGamma; diag (K, d), spherical (K,)). The
hyper-parameters come from :mod:`gmmflow.models.priors`, the numbers EM uses.

PyMC has no InverseWishart, so it is declared here as a ``pm.CustomDist``
with its log-density, a random generator (for prior predictive sampling) and
:class:`CholeskyCovTransform`, a bijection from R^{d(d+1)/2} to SPD matrices
with its log-Jacobian, so NUTS and ``pm.find_MAP`` work on it.

The likelihood has two forms:

* marginalised (default, for NUTS): ``x_i ~ sum_k w_k N(mu_k, Sigma_k)``,
  vectorised over components with triangular solves and logsumexp; PyMC's
  pointwise log-likelihood of ``x`` is the per-row marginal, for LOO;
* generative: ``z_i ~ Categorical(w)``, ``x_i ~ N(mu_{z_i}, Sigma_{z_i})``, so
  ``pm.sample_prior_predictive`` simulates whole data sets.
"""

from __future__ import annotations

from functools import partial
from typing import Any

import numpy as np
import pymc as pm
import pytensor.tensor as pt
from pymc.logprob.transforms import Transform
from scipy import stats

from gmmflow.core.gaussian import sample_mixture
from gmmflow.core.hyperparameters import Hyperparameters
from gmmflow.core.row_blocks import data_moments
from gmmflow.inputs.matrix import as_data_matrix
from gmmflow.models.priors import resolve_hyperparameters
from gmmflow.schema import COMPONENT, FEATURE2, OBS
from gmmflow.schema import FEATURE as FEATURE_DIM

OBS_DIM = OBS
# ``spec`` arguments below are :class:`gmmflow.GMM` objects (models.spec imports this
# module, not the other way round)
GMMSpec = Any

LOG_2PI = float(np.log(2 * np.pi))


# --------------------------------------------------------------------------
# InverseWishart on the Cholesky parameterisation
# --------------------------------------------------------------------------
class CholeskyCovTransform(Transform):
    """SPD matrix <-> unconstrained vector (log-Cholesky).

    Backward: ``v`` (..., d(d+1)/2) fills the lower triangle of ``L`` row by
    row (``np.tril_indices`` order), the diagonal through ``exp``; the matrix is
    ``Sigma = L L^T``. The log-Jacobian of ``v -> Sigma`` is
    ``d log 2 + sum_{i=0}^{d-1} (d - i + 1) v_ii``: ``L -> L L^T`` contributes
    ``2^d prod_i L_ii^{d-i}`` (0-based i) and ``exp`` on the diagonal ``prod_i L_ii``.
    """

    name = "cholesky_cov"
    ndim_supp = 2

    def __init__(self, n_features: int):
        self.d = int(n_features)
        self.rows, self.cols = np.tril_indices(self.d)
        self.diag_pos = np.array([i * (i + 1) // 2 + i for i in range(self.d)])

    def _chol_from_vector(self, value):
        d = self.d
        batch = value.shape[:-1]
        flat = value.reshape((-1, value.shape[-1]))
        L = pt.zeros((flat.shape[0], d, d), dtype=value.dtype)
        entries = pt.set_subtensor(flat[:, self.diag_pos], pt.exp(flat[:, self.diag_pos]))
        L = pt.set_subtensor(L[:, self.rows, self.cols], entries)
        return L.reshape((*[batch[i] for i in range(value.ndim - 1)], d, d))

    def backward(self, value, *inputs):
        L = self._chol_from_vector(value)
        return L @ pt.swapaxes(L, -1, -2)

    def forward(self, value, *inputs):
        L = pt.linalg.cholesky(value)
        v = L[..., self.rows, self.cols]
        return pt.set_subtensor(v[..., self.diag_pos], pt.log(v[..., self.diag_pos]))

    def log_jac_det(self, value, *inputs):
        d = self.d
        weights = np.array([d - i + 1 for i in range(d)], dtype="float64")
        return d * np.log(2.0) + pt.sum(value[..., self.diag_pos] * weights, axis=-1)


def _iw_logp(value, nu, scale_chol):
    """log InverseWishart(value | nu, Lambda) from Cholesky factors; batch-shaped."""
    nu, scale_chol = _drop_batch(nu, 0), _drop_batch(scale_chol, 2)
    d = value.shape[-1]
    L = pt.linalg.cholesky(value)
    log_det_sigma = 2 * pt.sum(pt.log(pt.diagonal(L, axis1=-2, axis2=-1)), axis=-1)
    log_det_scale = 2 * pt.sum(pt.log(pt.diagonal(scale_chol)))
    solved = pt.linalg.solve_triangular(L, pt.broadcast_to(scale_chol, value.shape), lower=True)
    trace = pt.sum(pt.square(solved), axis=(-2, -1))
    j = pt.arange(d)
    log_multigamma = d * (d - 1) / 4 * np.log(np.pi) + pt.sum(pt.gammaln(nu / 2 - j / 2))
    return (
        nu / 2 * log_det_scale
        - nu * d / 2 * np.log(2.0)
        - log_multigamma
        - (nu + d + 1) / 2 * log_det_sigma
        - trace / 2
    )


def _iw_random(nu, scale_chol, rng=None, size=None):
    # PyMC may hand the (constant) parameters broadcast to batch dims: take one copy
    d = scale_chol.shape[-1]
    nu = np.asarray(nu).reshape(-1)[0]
    scale_chol = np.asarray(scale_chol).reshape(-1, d, d)[0]
    scale = scale_chol @ scale_chol.T
    shape = () if size is None else tuple(np.atleast_1d(size))
    n = int(np.prod(shape)) if shape else 1
    draws = stats.invwishart(df=float(nu), scale=scale).rvs(size=n, random_state=rng)
    return np.asarray(draws, dtype="float64").reshape(*shape, d, d)


def inverse_wishart(name: str, nu: float, scale_chol: np.ndarray, *, dims=None, shape=None):
    """A named InverseWishart(nu, Lambda) variable (Lambda given by its Cholesky factor)."""
    d = scale_chol.shape[-1]
    scale = scale_chol @ scale_chol.T
    mode = scale / (nu + d + 1)

    def support_point(rv, size, nu_, scale_chol_):
        return pt.broadcast_to(pt.as_tensor(mode), rv.shape)

    return pm.CustomDist(
        name, pt.as_tensor(np.float64(nu)), pt.as_tensor(np.asarray(scale_chol, dtype="float64")),
        logp=_iw_logp, random=_iw_random, signature="(),(d,d)->(d,d)",
        support_point=support_point, transform=CholeskyCovTransform(d),
        dims=dims, shape=shape,
    )


# --------------------------------------------------------------------------
# The marginal likelihood
# --------------------------------------------------------------------------
def mixture_logp(value, w, mu, chol, n_components: int | None = None):
    """Per-row ``log sum_k w_k N(x_i | mu_k, L_k L_k^T)`` (n,), by logsumexp.

    One triangular solve per component with all rows as right-hand sides.
    """
    # PyMC may prepend broadcast batch dims of length 1 to the parameters
    w, mu, chol = (_drop_batch(p, core) for p, core in ((w, 1), (mu, 2), (chol, 3)))
    K = n_components if n_components is not None else mu.type.shape[0]
    if K is None:
        raise ValueError("mixture_logp needs a static number of components: pass n_components.")
    d = value.shape[-1]
    terms = []
    for k in range(K):
        z = pt.linalg.solve_triangular(chol[k], (value - mu[k]).T, lower=True)
        log_det = pt.sum(pt.log(pt.diagonal(chol[k])))
        terms.append(pt.log(w[k]) - 0.5 * pt.sum(pt.square(z), axis=0) - log_det - 0.5 * d * LOG_2PI)
    return pm.math.logsumexp(pt.stack(terms, axis=1), axis=1, keepdims=False)


def _drop_batch(param, core_ndim: int):
    while param.ndim > core_ndim:
        param = param[0]
    return param


def _mixture_random(w, mu, chol, rng=None, size=None):
    w, mu, chol = (np.asarray(p).reshape(-1, *np.shape(p)[-nd:])[0]
                   for p, nd in ((w, 1), (mu, 2), (chol, 3)))
    n = int(np.prod(size)) if size is not None else 1
    x, _ = sample_mixture(rng, n, w, mu, chol, "full")
    return x.reshape(*(np.atleast_1d(size) if size is not None else ()), mu.shape[-1])


# --------------------------------------------------------------------------
# The model
# --------------------------------------------------------------------------
def full_cholesky(cov_var, covariance_type: str, n_components: int, n_features: int):
    """(K, d, d) Cholesky factors from the model's covariance variable."""
    if covariance_type == "full":
        return pt.linalg.cholesky(cov_var)
    if covariance_type == "tied":
        return pt.broadcast_to(pt.linalg.cholesky(cov_var), (n_components, n_features, n_features))
    eye = pt.eye(n_features)
    sd = pt.sqrt(cov_var)
    if covariance_type == "diag":
        return sd[:, :, None] * eye[None]
    return sd[:, None, None] * eye[None]


def gmm_prior(spec: GMMSpec, hyper: Hyperparameters):
    """Declare the GMM's prior in the current ``pm.Model`` context.

    The building block for reusing the definition in a larger model: it adds
    ``w``, the covariance variable (``cov`` or ``var``) and ``mu`` with the
    dims ``component``, ``feature``, ``feature2`` (the model's coords must
    define them) and returns ``(w, mu, cov_var, chol)``, ``chol`` being the
    (K, d, d) Cholesky factors to pass to :func:`mixture_logp`.

    Examples
    --------
    A linear regression whose errors follow a 2-component mixture::

        spec = gmmflow.GMM(2, "full")
        hyper = gmmflow.Prior(mean=[0.0], scale=[[1.0]])  # resolved for d = 1:
        hyper = resolve_hyperparameters(hyper, "full", 2, np.zeros(1), np.eye(1))
        with pm.Model(coords={"component": [0, 1], "feature": ["e"], "feature2": ["e"]}):
            slope = pm.Normal("slope", 0, 10)
            w, mu, cov, chol = gmm_prior(spec, hyper)
            resid = (y - slope * t)[:, None]
            pm.Potential("errors", mixture_logp(resid, w, mu, chol, n_components=2).sum())
    """
    K, d, t = spec.n_components, hyper.n_features, spec.covariance_type
    kappa = hyper.shrinkage
    w = pm.Dirichlet("w", a=np.full(K, hyper.alpha), dims=COMPONENT)
    if t in ("full", "tied"):
        dims = (COMPONENT, FEATURE_DIM, FEATURE2) if t == "full" else (FEATURE_DIM, FEATURE2)
        cov = inverse_wishart("cov", hyper.dof, hyper.scale_chol, dims=dims)
        chol = full_cholesky(cov, t, K, d)
        mu = pm.MvNormal("mu", mu=hyper.mean, chol=chol / np.sqrt(kappa), dims=(COMPONENT, FEATURE_DIM))
    else:
        dims = (COMPONENT, FEATURE_DIM) if t == "diag" else (COMPONENT,)
        cov = pm.InverseGamma("var", alpha=hyper.dof / 2, beta=np.asarray(hyper.scale) / 2, dims=dims)
        sd = pt.sqrt(cov / kappa)
        mu = pm.Normal("mu", mu=hyper.mean, sigma=sd if t == "diag" else sd[:, None],
                       dims=(COMPONENT, FEATURE_DIM))
        chol = full_cholesky(cov, t, K, d)
    return w, mu, cov, chol


def resolve_model_hyperparameters(spec: GMMSpec, data, hyperparameters) -> Hyperparameters:
    if hyperparameters is not None:
        return hyperparameters
    if spec.prior is None:
        raise ValueError(
            "A PyMC model needs a prior: GMM(..., prior=None) has none (MLE only). "
            "Use prior='default' or a gmmflow.Prior."
        )
    if data is not None:
        mean, cov = data_moments(data.values)
        return spec.hyperparameters(mean, cov, data.values.shape[0])
    if spec.prior.mean is None or spec.prior.scale is None:
        raise ValueError(
            "Without X the default prior has no data to take its mean and scale from: "
            "pass X, hyperparameters=..., or a gmmflow.Prior with mean and scale set."
        )
    d = len(spec.prior.mean)
    return resolve_hyperparameters(spec.prior, spec.covariance_type, spec.n_components,
                                   np.zeros(d), np.eye(d))


def build_pymc_model(
    spec: GMMSpec,
    X=None,
    *,
    marginalized: bool = True,
    coords: dict | None = None,
    n_obs: int | None = None,
    hyperparameters: Hyperparameters | None = None,
) -> pm.Model:
    """Declare ``spec`` as a PyMC model (the implementation of ``GMM.pymc_model``).

    Parameters
    ----------
    spec : GMM
    X : array_like (n, d), DataFrame or DataArray, optional
        Observed data. Without it (and without ``n_obs``) the model is the prior alone.
    marginalized : bool, default True
        True: ``x`` has the exact marginal mixture density (z summed out), for
        NUTS. False: ``z`` is explicit (generative form, prior predictive).
    coords : dict, optional
        Extra or overriding coordinates.
    n_obs : int, optional
        Without X: the number of rows ``x`` gets, so prior predictive
        sampling simulates data sets of that size.
    hyperparameters : Hyperparameters, optional
        Use these instead of resolving the prior against X (what
        ``sample_posterior`` does to share EM's exact numbers).

    Returns
    -------
    pymc.Model
        Free variables ``w``, ``mu`` and ``cov`` (full, tied) or ``var`` (diag,
        spherical); observed (or simulated) ``x``; ``z`` in the generative form.
    """
    data = None if X is None else as_data_matrix(X)
    hyper = resolve_model_hyperparameters(spec, data, hyperparameters)
    d, K = hyper.n_features, spec.n_components
    if data is not None and data.shape[1] != d:
        raise ValueError(f"X has {data.shape[1]} feature(s) but the hyperparameters are for {d}.")
    features = data.features if data is not None else [f"x{j}" for j in range(d)]
    model_coords = {COMPONENT: np.arange(K), FEATURE_DIM: features, FEATURE2: features}
    if data is not None:
        model_coords[OBS_DIM] = data.obs_id
    elif n_obs is not None:
        model_coords[OBS_DIM] = np.arange(int(n_obs))
    model_coords.update(coords or {})

    with pm.Model(coords=model_coords) as model:
        w, mu, cov, chol = gmm_prior(spec, hyper)
        if OBS_DIM in model_coords:
            observed = None if data is None else data.values
            if marginalized:
                pm.CustomDist("x", w, mu, chol, logp=partial(mixture_logp, n_components=K),
                              random=_mixture_random,
                              signature="(k),(k,d),(k,d,d)->(d)", observed=observed,
                              dims=(OBS_DIM, FEATURE_DIM))
            else:
                z = pm.Categorical("z", p=w, dims=OBS_DIM)
                pm.MvNormal("x", mu=mu[z], chol=chol[z], observed=observed, dims=(OBS_DIM, FEATURE_DIM))
    return model


def covariance_value_name(covariance_type: str) -> str:
    """Name of the model's covariance variable: ``cov`` or ``var``."""
    return "cov" if covariance_type in ("full", "tied") else "var"


def _compiled_point_map(model: pm.Model, to_unconstrained: bool):
    """Compile once the map between constrained values (keyed by RV name) and
    the model's continuous value variables (keyed by value-variable name)."""
    import pytensor

    inputs, outputs, names = [], [], []
    for rv in model.free_RVs:
        if not rv.type.dtype.startswith("float"):  # z in the generative form
            continue
        value_var = model.rvs_to_values[rv]
        source, target = (rv, value_var) if to_unconstrained else (value_var, rv)
        x = source.type(name=source.name)
        transform = model.rvs_to_transforms.get(rv)
        if transform is None:
            y = x
        elif to_unconstrained:
            y = transform.forward(x, *rv.owner.inputs)
        else:
            y = transform.backward(x, *rv.owner.inputs)
        inputs.append(x)
        outputs.append(y)
        names.append(target.name)
    fn = pytensor.function(inputs, outputs, on_unused_input="ignore")

    def mapped(values: dict) -> dict:
        args = [np.asarray(values[x.name], dtype=x.dtype) for x in inputs]
        return {name: np.asarray(v) for name, v in zip(names, fn(*args))}

    return mapped


def unconstrained_point_function(model: pm.Model):
    """Compile once a map from constrained values ``{"w", "mu", "cov"|"var"}``
    to the model's continuous value variables (``w_simplex__``,
    ``cov_cholesky_cov__``, ...).

    Returns a function ``f(values: dict) -> dict`` (NUTS start points).
    """
    return _compiled_point_map(model, to_unconstrained=True)


def constrained_point_function(model: pm.Model):
    """Inverse of :func:`unconstrained_point_function`: value variables -> ``{"w", "mu", ...}``."""
    return _compiled_point_map(model, to_unconstrained=False)

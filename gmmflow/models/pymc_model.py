"""The GMM of docs/architecture.md as PyMC building blocks, and the whole model.

:func:`gmm_priors` declares a mixture's prior (weights, means, covariances)
as named, dimensioned variables inside any ``pm.Model``; with
:class:`~gmmflow.models.pymc_distributions.GaussianMixture` as the
likelihood it is exactly the model EM and the samplers use:
:func:`build_pymc_model` (``GMM.pymc_model``) is nothing but these two.

Free variables, for covariance type t and a name prefix p:

* ``{p}w`` ~ Dirichlet(alpha 1_K), dims ``{p}component``;
* ``{p}cov`` ~ InverseWishart(nu, Lambda) (full: one per component, dims
  ``({p}component, {p}feature, {p}feature2)``; tied: one, dims
  ``({p}feature, {p}feature2)``), or ``{p}var`` ~ InverseGamma(nu/2, s2/2)
  (diag: ``({p}component, {p}feature)``; spherical: ``({p}component,)``);
* ``{p}mu`` | Sigma ~ Normal(mu_P, Sigma_k / kappa), dims ``({p}component, {p}feature)``.

A noise model (``GMM(noise=True)``) has ``{p}w`` ~ Dirichlet(alpha 1_{K+1}) with
dims ``{p}weight`` (K+1 entries: the components, then the noise), and its
likelihood is :func:`~gmmflow.models.pymc_distributions.GaussianNoiseMixture`
(marginalised form only).

The model's likelihood has two forms:

* marginalised (default): ``x ~ GaussianMixture(w, mu, chol)``, the exact
  density ``sum_k w_k N(mu_k, Sigma_k)`` with the labels summed out, for NUTS;
  its pointwise log-likelihood is the per-row marginal, for LOO;
* generative: ``z_i ~ Categorical(w)``, ``x_i ~ N(mu_{z_i}, Sigma_{z_i})``, so
  ``pm.sample_prior_predictive`` simulates whole data sets with their labels.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np
import pymc as pm
import pytensor.tensor as pt

from gmmflow.core.hyperparameters import Hyperparameters
from gmmflow.checks import check_missing, check_noise_with_missing
from gmmflow.inputs.matrix import as_data_matrix
from gmmflow.models.priors import Prior
from gmmflow.core.noise import block_extremes, log_hypervolume, principal_axes
from gmmflow.models.pymc_distributions import GaussianMixture, GaussianNoiseMixture, InverseWishart, MvNormalCholesky
from gmmflow.models.pymc_missing import pattern_likelihood
from gmmflow.schema import COMPONENT, FEATURE, FEATURE2, OBS

WEIGHT = "weight"  # a noise model's PyMC weight dim: K components, then the noise

# ``spec`` arguments below are :class:`gmmflow.GMM` objects (models.spec imports this
# module, not the other way round)
GMMSpec = Any


class MixturePriors(NamedTuple):
    """The prior variables of one mixture, and the Cholesky factors its likelihood needs."""

    w: Any  # (K,)
    mu: Any  # (K, d)
    cov: Any  # the covariance variable: (K, d, d) full, (d, d) tied, (K, d) diag, (K,) spherical
    chol: Any  # (K, d, d) lower Cholesky factors of the component covariances


def component_cholesky(cov_var, covariance_type: str, n_components: int, n_features: int):
    """(K, d, d) Cholesky factors from the covariance variable of a covariance type.

    For full and tied, ``cholesky`` of the variable: PyTensor rewrites it to the
    transform's own factor (``CholeskyCovTransform`` marks it lower-triangular),
    so no decomposition is computed when sampling.
    """
    if covariance_type == "full":
        return pt.linalg.cholesky(cov_var)
    if covariance_type == "tied":
        return pt.broadcast_to(pt.linalg.cholesky(cov_var), (n_components, n_features, n_features))
    eye = pt.eye(n_features)
    sd = pt.sqrt(cov_var)
    if covariance_type == "diag":
        return sd[:, :, None] * eye[None]
    return sd[:, None, None] * eye[None]


def dim_names(prefix: str = "") -> tuple[str, str, str]:
    """(component, feature, feature2) dim names of a mixture declared with ``prefix``."""
    return f"{prefix}{COMPONENT}", f"{prefix}{FEATURE}", f"{prefix}{FEATURE2}"


def _add_missing_coords(model: pm.Model, coords: dict) -> None:
    for name, values in coords.items():
        if name not in model.coords:
            model.add_coord(name, values)


def gmm_priors(spec: GMMSpec, X=None, *, prefix: str = "", hyper: Hyperparameters | None = None,
               features=None) -> MixturePriors:
    """Declare a Gaussian mixture's prior in the current ``pm.Model``: named, dimensioned variables.

    Parameters
    ----------
    spec : gmmflow.GMM
        Number of components, covariance type and prior.
    X : array_like (n, d), DataFrame or DataArray, optional
        Data the prior's unset hyper-parameters are resolved from (``Prior.resolve``):
        mean, scale. Not needed when ``hyper`` is given or the prior sets mean and scale.
    prefix : str, default ""
        Prepended to every variable and dim name, so that two mixtures can live
        in one model (``"a_"`` gives ``a_w``, ``a_mu``, ``a_cov`` with dims
        ``a_component``, ``a_feature``, ``a_feature2``).
    hyper : Hyperparameters, optional
        Concrete hyper-parameters to use as they are (e.g. those of an EM fit).
    features : list of str, optional
        Coordinate values of the feature dim (default: X's names, or x0, x1, ...).

    Returns
    -------
    MixturePriors
        ``(w, mu, cov, chol)``: the three variables and the (K, d, d) Cholesky
        factors to pass to :class:`GaussianMixture` (``chol=``).

    Examples
    --------
    >>> import pymc as pm, gmmflow
    >>> from gmmflow.pymc import GaussianMixture, gmm_priors
    >>> X = gmmflow.load_dataset("faithful")
    >>> with pm.Model(coords={"obs_id": X.obs_id.values}) as model:  # doctest: +SKIP
    ...     w, mu, cov, chol = gmm_priors(gmmflow.GMM(2), X)
    ...     GaussianMixture("x", w, mu, chol=chol, observed=X.values, dims=("obs_id", "feature"))
    """
    model = pm.modelcontext(None)
    if hyper is None:
        hyper = resolve_spec_prior(spec, X)
    K, d, t = spec.n_components, hyper.n_features, spec.covariance_type
    if features is None:
        features = as_data_matrix(X).features if X is not None else [f"x{j}" for j in range(d)]
    component, feature, feature2 = dim_names(prefix)
    _add_missing_coords(model, {component: np.arange(K), feature: list(features), feature2: list(features)})
    if getattr(spec, "noise", False):  # K+1 weights, the noise's last
        _add_missing_coords(model, {f"{prefix}{WEIGHT}": np.arange(K + 1)})
        w = pm.Dirichlet(f"{prefix}w", a=hyper.alpha * np.ones(K + 1), dims=f"{prefix}{WEIGHT}")
    else:
        w = pm.Dirichlet(f"{prefix}w", a=hyper.alpha * np.ones(K), dims=component)
    if t in ("full", "tied"):
        dims = (component, feature, feature2) if t == "full" else (feature, feature2)
        cov = InverseWishart(f"{prefix}cov", hyper.dof, hyper.scale, dims=dims)
        chol = component_cholesky(cov, t, K, d)
        mu = MvNormalCholesky(f"{prefix}mu", hyper.mean, chol * hyper.shrinkage ** -0.5, dims=(component, feature))
    else:
        dims = (component, feature) if t == "diag" else (component,)
        cov = pm.InverseGamma(f"{prefix}var", alpha=hyper.dof / 2, beta=hyper.scale / 2, dims=dims)
        sd = pt.sqrt(cov / hyper.shrinkage)
        mu = pm.Normal(f"{prefix}mu", mu=hyper.mean, sigma=sd if t == "diag" else sd[:, None],
                       dims=(component, feature))
        chol = component_cholesky(cov, t, K, d)
    return MixturePriors(w, mu, cov, chol)


def resolve_spec_prior(spec: GMMSpec, X=None) -> Hyperparameters:
    """The spec's prior made concrete: from ``X``'s moments, or from the prior alone when it sets mean and scale."""
    if spec.prior is None:
        raise ValueError(
            "A PyMC model needs a prior: GMM(..., prior=None) has none (MLE only). "
            "Use prior='default' or a gmmflow.Prior."
        )
    return spec.prior.resolve(X, covariance_type=spec.covariance_type, n_components=spec.n_components)


def build_pymc_model(
    spec: GMMSpec,
    X=None,
    *,
    marginalized: bool = True,
    coords: dict | None = None,
    n_obs: int | None = None,
    hyperparameters: Hyperparameters | None = None,
    missing: str = "error",
    noise_log_volume: float | None = None,
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
    missing : {"error", "marginalize"}, default "error"
        NaN in ``X``: refused, or missing cells whose rows contribute the
        density of their observed coordinates (``x_pattern{j}``, one per
        missingness pattern; :mod:`gmmflow.models.pymc_missing`), EM's
        likelihood with ``missing="marginalize"``. Marginalised form only.
    noise_log_volume : float, optional
        A noise model's ``log V`` (what ``sample_posterior`` takes from EM).
        Default: ``log(spec.noise_volume)``, else mclust's hypervolume of X.

    Returns
    -------
    pymc.Model
        Free variables ``w``, ``mu`` and ``cov`` (full, tied) or ``var`` (diag,
        spherical); observed (or simulated) ``x``; ``z`` in the generative form.
    """
    data = None if X is None else as_data_matrix(X, missing=check_missing(missing) == "marginalize")
    incomplete = data is not None and bool(np.isnan(data.values).any())
    if incomplete and not marginalized:
        raise ValueError("X has missing values: the generative form (marginalized=False) needs complete data. "
                         "Use marginalized=True, or drop the incomplete rows.")
    check_noise_with_missing(spec.noise, incomplete)
    hyper = hyperparameters if hyperparameters is not None else resolve_spec_prior(spec, data)
    d = hyper.n_features
    if data is not None and data.shape[1] != d:
        raise ValueError(f"X has {data.shape[1]} feature(s) but the hyperparameters are for {d}.")
    features = data.features if data is not None else [f"x{j}" for j in range(d)]
    model_coords = {}
    if data is not None:
        model_coords[OBS] = data.obs_id
    elif n_obs is not None:
        model_coords[OBS] = np.arange(int(n_obs))
    model_coords.update(coords or {})

    log_noise_density = None if not spec.noise else -_noise_log_volume(spec, data, noise_log_volume, marginalized)
    with pm.Model(coords=model_coords) as model:
        w, mu, _, chol = gmm_priors(spec, hyper=hyper, features=features)
        if incomplete:
            pattern_likelihood("x", w, mu, chol, spec.covariance_type, data, model)
        elif OBS in model_coords:
            observed = None if data is None else data.values
            if log_noise_density is not None:
                GaussianNoiseMixture("x", w, mu, chol, log_noise_density, observed=observed, dims=(OBS, FEATURE))
            elif marginalized:
                GaussianMixture("x", w, mu, chol=chol, observed=observed, dims=(OBS, FEATURE))
            else:
                z = pm.Categorical("z", p=w, dims=OBS)
                pm.MvNormal("x", mu=mu[z], chol=chol[z], observed=observed, dims=(OBS, FEATURE))
    return model


def _noise_log_volume(spec: GMMSpec, data, given: float | None, marginalized: bool) -> float:
    """``log V`` of a noise model: given, the spec's volume, or the data's hypervolume (checked)."""
    if not marginalized:
        raise ValueError("A noise model has only the marginalised form (marginalized=True): the uniform "
                         "component's region is not modelled, so its rows cannot be simulated.")
    if given is not None:
        return float(given)
    if spec.noise_volume is not None:
        return float(np.log(spec.noise_volume))
    if data is None:
        raise ValueError("A noise model without X needs its volume: GMM(..., noise=True, noise_volume=V) or "
                         "pymc_model(..., noise_log_volume=log V).")
    values = data.values
    return log_hypervolume(block_extremes(values, principal_axes(np.cov(values, rowvar=False))))


def covariance_value_name(covariance_type: str) -> str:
    """Name of the model's covariance variable: ``cov`` or ``var``."""
    return "cov" if covariance_type in ("full", "tied") else "var"


def _compiled_point_map(model: pm.Model, to_unconstrained: bool, batch_ndim: int = 0):
    """Compile once the map between constrained values (keyed by RV name) and
    the model's continuous value variables (keyed by value-variable name), with
    the model's own transforms, in PyTensor's ``FAST_COMPILE`` mode (Python
    implementations: no C compiler, compiled in a fraction of a second).
    Arrays may carry ``batch_ndim`` leading axes (e.g. chain and draw)."""
    import pytensor

    inputs, outputs, names = [], [], []
    for rv in model.free_RVs:
        if not rv.type.dtype.startswith("float"):  # z in the generative form
            continue
        value_var = model.rvs_to_values[rv]
        source, target = (rv, value_var) if to_unconstrained else (value_var, rv)
        x = source.type.clone(shape=(None,) * batch_ndim + source.type.shape)(name=source.name)
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
    fn = pytensor.function(inputs, outputs, mode="FAST_COMPILE", on_unused_input="ignore")

    def mapped(values: dict) -> dict:
        args = [np.asarray(values[x.name], dtype=x.dtype) for x in inputs]
        return {name: np.asarray(v) for name, v in zip(names, fn(*args))}

    return mapped


def unconstrained_point_function(model: pm.Model, batch_ndim: int = 0):
    """Compile once a map from constrained values ``{"w", "mu", "cov"|"var"}``
    to the model's continuous value variables (``w_simplex__``,
    ``cov_cholesky_cov__``, ...).

    Returns a function ``f(values: dict) -> dict`` (NUTS start points); its
    arrays may carry ``batch_ndim`` leading axes.
    """
    return _compiled_point_map(model, to_unconstrained=True, batch_ndim=batch_ndim)


def constrained_point_function(model: pm.Model, batch_ndim: int = 0):
    """Inverse of :func:`unconstrained_point_function`: value variables -> ``{"w", "mu", ...}``."""
    return _compiled_point_map(model, to_unconstrained=False, batch_ndim=batch_ndim)

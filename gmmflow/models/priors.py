"""Prior families, default hyper-parameters and log-densities (numpy).

The prior of docs/architecture.md, for K components in d dimensions::

    w            ~ Dirichlet(alpha * 1_K)
    Sigma_k      ~ InverseWishart(nu_P, Lambda_P)          full (one per k), tied (one)
    sigma2_kj    ~ InverseGamma(nu_P / 2, s2_Pj / 2)        diag
    sigma2_k     ~ InverseGamma(nu_P / 2, s2_P / 2)         spherical
    mu_k | Sigma ~ Normal(mu_P, Sigma_k / kappa_P)

Default hyper-parameters follow mclust's ``defaultPrior`` (Fraley & Raftery 2007):
``mu_P`` = data mean, ``kappa_P`` = 0.01, ``nu_P`` = d + 2,
``Lambda_P`` = cov(data) / K^(2/d) (full, tied), ``s2_P`` = diag(cov(data)) /
K^(2/d) (diag) or its mean (spherical), ``alpha`` = 1. That is
``Prior(defaults="gmmflow")``; ``Prior(defaults="mclust")`` (``GMM(prior="mclust")``)
is mclust's ``defaultPrior`` exactly (``models.mclust_prior``). They differ in two
places:

- diag (VVI): gmmflow scales each feature by its own variance,
  ``s2_Pj = var_j / K^(2/d)``; mclust uses one scalar for every feature, the mean
  variance ``sum_j var_j / d / K^(2/d)``. gmmflow's choice makes the MAP
  equivariant under rescaling one feature (changing a feature's units changes
  nothing else), which mclust's is not: on raw data whose features have very
  different variances (wine: proline ~1e5, hue ~0.05) the scalar prior puts a
  variance floor of the large features' size on the small ones.
- full, tied with n <= d: mclust replaces cov(data), which is singular there, by
  its diagonal; gmmflow keeps it and adds the ridge below.

One departure from both: when cov(data) is singular (a constant feature, duplicate or
collinear columns, no more rows than features) the default scale would not
be SPD and the MAP would not exist, so ``DEFAULT_SCALE_RIDGE`` times the
mean feature variance (or that ridge alone, for constant data) is added to
its diagonal. Singular means an eigenvalue below ``SINGULAR_RATIO`` times
the largest (a Cholesky factor of a singular matrix can exist by round-off). A feature whose
variance is below the round-off of its own values (sd < ``ROUNDOFF`` x
|mean|, e.g. a constant 132.49581465 whose computed variance is 1e-27) counts
as constant. A user-given scale is never altered.

This module is the only place these defaults live; it resolves a
:class:`Prior` against data into concrete
:class:`~gmmflow.core.hyperparameters.Hyperparameters`, which the EM, the
PyMC model and the samplers all read. The prior's log-density is in
``core.prior_density``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike
from scipy import linalg

from gmmflow.checks import numeric_array
from gmmflow.core.hyperparameters import Hyperparameters
from gmmflow.core.missing_data import observed_moments
from gmmflow.inputs.matrix import as_data_matrix
from gmmflow.models.mclust_prior import mclust_data_cov

DEFAULT_ALPHA = 1.0
DEFAULT_SHRINKAGE = 0.01
DEFAULT_SCALE_RIDGE = 1e-6
ROUNDOFF = 1e-10  # a feature with sd below this fraction of its mean is constant up to round-off
SINGULAR_RATIO = 1e-12  # cov(data) with eigenvalues spanning more than this ratio counts as singular
DEFAULT_RULES = ("gmmflow", "mclust")  # Prior(defaults=...): how unset hyper-parameters are filled


def _default_data_cov(data_cov: np.ndarray, data_mean: np.ndarray) -> np.ndarray:
    """cov(data), with a ridge on the diagonal if it is not positive definite.

    Features whose variance is round-off (sd <= ROUNDOFF * |mean|) are treated
    as constant: their rows and columns are zeroed before the check.
    """
    cov = np.atleast_2d(np.asarray(data_cov, dtype=np.float64)).copy()
    variances = np.diag(cov).copy()
    constant = variances <= (ROUNDOFF * np.abs(np.asarray(data_mean, dtype=np.float64))) ** 2
    cov[constant, :] = 0.0
    cov[:, constant] = 0.0
    eigenvalues = np.linalg.eigvalsh(cov)  # a Cholesky factor can exist for a singular matrix by round-off
    if np.all(np.diag(cov) > 0) and eigenvalues.min() > SINGULAR_RATIO * eigenvalues.max():
        return cov
    informative = variances[~constant & (variances > 0)]
    level = informative.mean() if informative.size else 1.0
    return cov + DEFAULT_SCALE_RIDGE * level * np.eye(cov.shape[0])


def _as_float(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"Prior {name} must be a real number, got {type(value).__name__} {value!r}.")
    value = float(value)
    if not np.isfinite(value):
        raise ValueError(f"Prior {name} must be finite, got {value!r}.")
    return value


def _as_tuple(value: ArrayLike | None, name: str):
    if value is None:
        return None
    arr = numeric_array(value, f"Prior {name}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"Prior {name} must be finite; it contains NaN or inf.")
    return _nested_tuple(arr)


def _nested_tuple(arr: np.ndarray):
    """Hashable, JSON-friendly copy of an array: nested tuples of floats."""
    if arr.ndim == 0:
        return float(arr)
    return tuple(_nested_tuple(a) for a in arr)


@dataclass(frozen=True)
class Prior:
    """Conjugate prior of a Gaussian mixture (Fraley & Raftery 2007).

    Any hyper-parameter left as ``None`` takes mclust's data-dependent default
    when the model meets data.

    Parameters
    ----------
    alpha : float, default 1.0
        Dirichlet concentration of the weights (``alpha``); must be >= 1 so
        that the MAP exists. ``alpha = 1`` is a flat prior on the simplex.
    mean : array_like of shape (d,), optional
        Prior mean of the component means (``mu_P``). Default: data mean.
    shrinkage : float, default 0.01
        ``kappa_P`` > 0: the prior counts as ``kappa_P`` observations at ``mu_P``.
    dof : float, optional
        Degrees of freedom ``nu_P``. Default ``d + 2``. Must exceed ``d - 1``
        (InverseWishart; full and tied) or 0 (InverseGamma; diag, spherical).
    scale : array_like, optional
        ``Lambda_P`` (d, d) SPD for full/tied, ``s2_P`` (d,) > 0 for diag, a
        scalar > 0 for spherical. Default ``cov(data) / K^(2/d)`` (its
        diagonal for diag, the mean of its diagonal for spherical).
    defaults : {"gmmflow", "mclust"}, default "gmmflow"
        How the unset hyper-parameters are filled from the data. ``"mclust"``
        is mclust's ``defaultPrior`` exactly: for diag one scalar scale for
        every feature (the mean variance / K^(2/d)) instead of one per
        feature, and for full/tied with n <= d the diagonal of cov(data)
        (see the module docstring for why gmmflow's own differs).
    """

    alpha: float = DEFAULT_ALPHA
    mean: Any = None
    shrinkage: float = DEFAULT_SHRINKAGE
    dof: float | None = None
    scale: Any = None
    defaults: str = "gmmflow"

    def __post_init__(self):
        object.__setattr__(self, "alpha", _as_float(self.alpha, "alpha"))
        object.__setattr__(self, "shrinkage", _as_float(self.shrinkage, "shrinkage"))
        if self.alpha < 1:
            raise ValueError(
                f"Prior alpha (Dirichlet concentration) must be >= 1 so that the MAP "
                f"exists, got {self.alpha!r}. Use alpha=1 for a flat prior on the weights."
            )
        if self.shrinkage <= 0:
            raise ValueError(
                f"Prior shrinkage (kappa_P) must be > 0, got {self.shrinkage!r}. "
                f"The default is {DEFAULT_SHRINKAGE}."
            )
        if self.dof is not None:
            object.__setattr__(self, "dof", _as_float(self.dof, "dof"))
            if self.dof <= 0:
                raise ValueError(f"Prior dof (nu_P) must be > 0, got {self.dof!r}.")
        object.__setattr__(self, "mean", _as_tuple(self.mean, "mean"))
        object.__setattr__(self, "scale", _as_tuple(self.scale, "scale"))
        if self.defaults not in DEFAULT_RULES:
            raise ValueError(f"Prior defaults must be one of {', '.join(map(repr, DEFAULT_RULES))}, "
                             f"got {self.defaults!r}.")

    def resolve(self, X=None, *, covariance_type: str = "full", n_components: int) -> Hyperparameters:
        """The concrete hyper-parameters: unset fields take their defaults from the data ``X``.

        Parameters
        ----------
        X : array_like (n, d), DataFrame or DataArray, optional
            The data whose mean and covariance fill ``mean`` and ``scale``. May be
            left out when both are set (the dimension is then ``len(mean)``).
        covariance_type : {"full", "tied", "diag", "spherical"}, default "full"
        n_components : int

        Returns
        -------
        Hyperparameters
            The numbers EM, the PyMC model and the samplers use.
        """
        if X is not None:
            data = as_data_matrix(X)  # NaN refused, unless X is a DataMatrix checked for missing="marginalize"
            mean, cov = observed_moments(data.values)
            return resolve_hyperparameters(self, covariance_type, n_components, mean, cov, data.values.shape[0])
        if self.mean is None or self.scale is None:
            raise ValueError(
                "Without X the default prior has no data to take its mean and scale from: "
                "pass X, or set both, e.g. gmmflow.Prior(mean=[0.0, 0.0], scale=[[1.0, 0.0], [0.0, 1.0]])."
            )
        d = len(self.mean)
        return resolve_hyperparameters(self, covariance_type, n_components, np.zeros(d), np.eye(d))

    def to_dict(self) -> dict:
        """JSON-ready dict of the hyper-parameters (``None`` = data default)."""
        return {
            "alpha": self.alpha,
            "mean": self.mean,
            "shrinkage": self.shrinkage,
            "dof": self.dof,
            "scale": self.scale,
            "defaults": self.defaults,
        }


def resolve_hyperparameters(
    prior: Prior,
    covariance_type: str,
    n_components: int,
    data_mean: np.ndarray,
    data_cov: np.ndarray,
    n_obs: float | None = None,
) -> Hyperparameters:
    """Fill the prior's unset hyper-parameters from data moments and validate.

    Parameters
    ----------
    prior : Prior
    covariance_type : {"full", "tied", "diag", "spherical"}
    n_components : int
    data_mean : ndarray of shape (d,)
    data_cov : ndarray of shape (d, d)
        Sample covariance of the data (denominator n - 1).
    n_obs : float, optional
        Number of rows (sum of weights); ``Prior(defaults="mclust")`` needs it
        for full/tied (mclust's scale depends on whether n <= d).

    Raises
    ------
    ValueError
        If a hyper-parameter has the wrong shape or is out of range for this
        dimension (dof <= d - 1, scale not SPD or not positive).
    """
    d = int(np.shape(data_mean)[0])
    K = int(n_components)
    denom = K ** (2.0 / d)
    if prior.defaults == "mclust":
        data_cov = mclust_data_cov(data_cov, n_obs, covariance_type)
    data_cov = _default_data_cov(data_cov, data_mean)

    mean = np.asarray(data_mean, float) if prior.mean is None else np.asarray(prior.mean, float)
    if mean.shape != (d,):
        raise ValueError(f"Prior mean must have shape ({d},) (one value per feature), got {mean.shape}.")

    dof = float(d + 2) if prior.dof is None else prior.dof
    scale_chol = None
    if covariance_type in ("full", "tied"):
        if dof <= d - 1:
            raise ValueError(
                f"Prior dof (nu_P) must be > d - 1 = {d - 1} for an InverseWishart in "
                f"{d} dimensions, got {dof!r}. The default is d + 2 = {d + 2}."
            )
        default_scale = np.atleast_2d(data_cov) / denom
        scale = default_scale if prior.scale is None else np.atleast_2d(np.asarray(prior.scale, float))
        if scale.shape != (d, d):
            raise ValueError(f"Prior scale (Lambda_P) must be a ({d}, {d}) matrix for "
                             f"covariance_type={covariance_type!r}, got shape {scale.shape}.")
        if not np.allclose(scale, scale.T, rtol=1e-10, atol=0):
            raise ValueError("Prior scale (Lambda_P) must be symmetric positive definite; it is not symmetric.")
        try:
            scale_chol = linalg.cholesky(scale, lower=True)
        except linalg.LinAlgError as err:
            raise ValueError(
                "Prior scale (Lambda_P) must be symmetric positive definite; it is not "
                "positive definite. With the default scale this means a constant or "
                "collinear feature: drop it, or pass Prior(scale=...) explicitly."
            ) from err
    else:
        diag = np.diag(np.atleast_2d(data_cov)) / denom
        if covariance_type == "diag":
            default_scale, want = diag, (d,)
        else:
            default_scale, want = np.asarray(diag.mean()), ()
        scale = default_scale if prior.scale is None else np.asarray(prior.scale, float)
        if scale.shape != want:
            raise ValueError(f"Prior scale (s2_P) must have shape {want} for "
                             f"covariance_type={covariance_type!r}, got shape {scale.shape}.")
        if not np.all(scale > 0):
            raise ValueError(
                f"Prior scale (s2_P) must be > 0, got {scale.tolist()!r}. With the default "
                "scale this means a constant feature: drop it, or pass Prior(scale=...)."
            )
    return Hyperparameters(
        covariance_type=covariance_type,
        n_components=K,
        alpha=prior.alpha,
        mean=mean,
        shrinkage=prior.shrinkage,
        dof=dof,
        scale=np.asarray(scale, float),
        scale_chol=scale_chol,
    )

r"""mclust's ``defaultPrior``, exactly, in gmmflow's parameterisation.

mclust (Fraley & Raftery 2007; R package mclust 6.0.0, ``R/mclust.R``) builds its
conjugate prior from the data with ``defaultPrior(data, G, modelName)``; with
``p`` features, ``n`` rows and ``G`` components:

=====================  ==========  =========  ===========================================
mclust model           shrinkage   dof        scale
=====================  ==========  =========  ===========================================
VVV, EEE (full, tied)  0.01        p + 2      ``(1/G)^(2/p) * var(data)`` (p x p); if
                                              ``n <= p``: ``(1/G)^(2/p) * diag(apply(data, 2, var))``
VVI, VII (diag, sph.)  0.01        p + 2      ``(1/G)^(2/p) * sum(apply(data, 2, var)) / p``:
                                              ONE scalar, the mean feature variance,
                                              for VVI as well as VII
E, V (one feature)     0.01        3          ``var(data) / G^2`` (the same as above at p = 1)
=====================  ==========  =========  ===========================================

and ``mean = colMeans(data)``. ``var`` has denominator ``n - 1``. The dof is always
``p + 2`` (``defaultPrior`` ignores a user ``dof``); ``shrinkage``, ``mean`` and ``scale``
can be overridden (``priorControl(shrinkage = ..., mean = ..., scale = ...)``).
mclust has no prior on the mixing proportions (gmmflow's ``alpha = 1``).

How the scale enters mclust's MAP M-step
----------------------------------------
Read from the Fortran of mclust 6.0.0 (``src/mclust.f``: ``msvvvp``/``mevvvp``,
``mseeep``/``meeeep``, ``msvvip``/``mevvip``, ``msviip``/``meviip``). With
``n_k = sum_i z_ik``, ``xbar_k`` the weighted mean, ``W_k`` the weighted scatter about
``xbar_k``, ``kappa`` the shrinkage, ``m`` the prior mean, ``nu`` the dof, and
``B_k = W_k + kappa n_k / (kappa + n_k) (xbar_k - m)(xbar_k - m)^T``
(mclust adds the scaled vectors ``sqrt(z_ik)(x_i - xbar_k)`` and
``sqrt(kappa n_k/(kappa + n_k))(m - xbar_k)`` to a Cholesky factor of the scale by
Givens rotations):

- VVV: ``Sigma_k = (Lambda + B_k) / (nu + n_k + p + 2)``
  (``temp = pdof + sumz + p + 1``, plus 1 when ``pshrnk > 0``);
- EEE: ``Sigma = (Lambda + sum_k B_k) / (nu + n + p + 1 + G)`` (``+ G`` when ``pshrnk > 0``);
- VVI: ``sigma2_kj = (s + B_k[j, j]) / (nu + n_k + 3)`` with the scalar ``s`` for every j
  (``term = n_k + pdof + 2``, plus 1 when ``pshrnk > 0``; mclust stores it as
  ``scale_k * shape_kj`` with ``prod_j shape_kj = 1``);
- VII: ``sigma2_k = (s + tr B_k) / (nu + n_k p + p + 2)``;
- means ``(n_k xbar_k + kappa m) / (n_k + kappa)``, proportions ``n_k / n``.

These are gmmflow's MAP M-step formulas (``gmmflow.core.em_steps``; ``d = p``, ``K = G``,
``alpha = 1``) term by term, so with the hyper-parameters returned here gmmflow's EM
has the same fixed points as mclust's. The differences are elsewhere:

- gmmflow's own default for ``diag`` is a per-feature scale ``diag(cov)/K^(2/d)``;
  mclust's VVI uses the scalar mean variance for every feature (returned here as a
  (d,) vector of equal values, gmmflow's shape for ``diag``). On features with very
  different variances (wine: proline's variance is ~1e5, hue's ~0.05) the scalar
  scale swamps the small features.
- mclust stops EM when ``|l_t - l_{t-1}| / (1 + |l_t|) <= tol`` on the
  log-likelihood ``l``, not on the log posterior; gmmflow uses the relative change
  of its objective (log-likelihood + log prior).
- mclust aborts (returnCode -3, parameters NA) when a mixing proportion falls
  below ``sqrt(.Machine$double.eps)``; gmmflow carries on.
- mclust's ``shrinkage = 0`` drops the ``+1``/``+G``/``+p`` terms above and the
  mean prior; gmmflow's ``Prior`` requires ``shrinkage > 0``.

Use it as ``gmmflow.GMM(K, covariance_type, prior="mclust")`` (or
``Prior(defaults="mclust", ...)`` to override some hyper-parameters):
``models.priors.resolve_hyperparameters`` fills the unset hyper-parameters through
:func:`mclust_data_cov`. :func:`mclust_default_prior` is the same prior computed
from the data directly, in mclust's terms, for checking against R.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

MCLUST_SHRINKAGE = 0.01
MCLUST_MODEL_NAMES = {"full": "VVV", "tied": "EEE", "diag": "VVI", "spherical": "VII"}


def _as_data(X: ArrayLike) -> np.ndarray:
    data = np.asarray(X, dtype=np.float64)
    if data.ndim == 1:
        data = data[:, None]
    if data.ndim != 2 or data.shape[0] < 2:
        raise ValueError(f"X must be an (n, d) array with n >= 2 rows, got shape {data.shape}.")
    if not np.all(np.isfinite(data)):
        raise ValueError("X contains NaN or inf; mclust's defaultPrior needs complete data.")
    return data


def mclust_scale(X: ArrayLike, n_components: int, covariance_type: str) -> np.ndarray:
    """``defaultPrior``'s ``scale`` in mclust's own shape.

    Parameters
    ----------
    X : array_like of shape (n, d)
    n_components : int
        ``G``.
    covariance_type : {"full", "tied", "diag", "spherical"}

    Returns
    -------
    ndarray
        (d, d) for full/tied; a 0-d array (one scalar) for diag and spherical.
    """
    data = _as_data(X)
    n, p = data.shape
    K = _check_k(n_components)
    _check_type(covariance_type)
    fac = (1.0 / K) ** (2.0 / p)
    variances = np.var(data, axis=0, ddof=1)
    if covariance_type in ("full", "tied"):
        if n > p:
            return fac * np.cov(data, rowvar=False, ddof=1).reshape(p, p)
        return fac * np.diag(variances)
    return np.asarray(fac * np.sum(variances) / p)


def mclust_default_prior(
    X: ArrayLike,
    n_components: int,
    covariance_type: str,
    *,
    shrinkage: float = MCLUST_SHRINKAGE,
    mean: ArrayLike | None = None,
    scale: ArrayLike | None = None,
) -> dict:
    """mclust's ``defaultPrior(X, G = n_components, modelName)``, in gmmflow's shapes.

    Parameters
    ----------
    X : array_like of shape (n, d)
        The data the prior is built from (mclust: the data ``Mclust`` fits).
    n_components : int
        ``G``.
    covariance_type : {"full", "tied", "diag", "spherical"}
        mclust's VVV, EEE, VVI, VII.
    shrinkage, mean, scale : optional
        Overrides, as ``priorControl(shrinkage = , mean = , scale = )``. ``scale`` is
        taken in gmmflow's shape for the type.

    Returns
    -------
    dict
        ``mean`` (d,), ``shrinkage`` (float), ``dof`` (float, d + 2) and ``scale``:
        (d, d) for full/tied, (d,) of equal values for diag (mclust's one scalar,
        broadcast to gmmflow's per-feature shape), () for spherical. Plus
        ``mclust_model`` and ``mclust_scale`` (the scale in mclust's own shape).
    """
    data = _as_data(X)
    _, p = data.shape
    own_scale = mclust_scale(data, n_components, covariance_type)
    if scale is None:
        scale = np.broadcast_to(own_scale, (p,)).copy() if covariance_type == "diag" else own_scale
    return {
        "mean": data.mean(axis=0) if mean is None else np.asarray(mean, dtype=np.float64),
        "shrinkage": float(shrinkage),
        "dof": float(p + 2),
        "scale": np.asarray(scale, dtype=np.float64),
        "mclust_model": MCLUST_MODEL_NAMES[covariance_type],
        "mclust_scale": own_scale,
    }


def mclust_data_cov(data_cov: np.ndarray, n_obs: float | None, covariance_type: str) -> np.ndarray:
    """The covariance whose gmmflow default scale is mclust's ``defaultPrior`` scale.

    gmmflow's defaults are ``cov / K^(2/d)`` (full, tied), its diagonal (diag) and
    the mean of its diagonal (spherical). mclust's differ from these only for diag
    (one scalar, the mean variance, on every feature) and for full/tied when
    ``n <= p`` (the diagonal of the covariance); this returns the covariance that
    turns the one rule into the other. ``n_obs`` None counts as ``n > p``.
    """
    cov = np.atleast_2d(np.asarray(data_cov, dtype=np.float64))
    variances = np.diag(cov)
    if covariance_type == "diag":
        return np.diag(np.full(variances.shape, variances.mean()))
    if covariance_type in ("full", "tied") and n_obs is not None and n_obs <= cov.shape[0]:
        return np.diag(variances)
    return cov


def _check_k(n_components) -> int:
    if isinstance(n_components, bool) or not isinstance(n_components, (int, np.integer)) \
            or n_components < 1:
        raise ValueError(f"n_components must be an integer >= 1, got {n_components!r}.")
    return int(n_components)


def _check_type(covariance_type) -> None:
    if covariance_type not in MCLUST_MODEL_NAMES:
        raise ValueError(
            f"covariance_type must be one of {', '.join(map(repr, MCLUST_MODEL_NAMES))} "
            f"(mclust's VVV, EEE, VVI, VII); got {covariance_type!r}."
        )

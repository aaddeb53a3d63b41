r"""PyMC distributions of gmmflow: a Gaussian mixture and the inverse Wishart.

Both are ordinary PyMC distributions built on ``pm.CustomDist``: they take
``observed=``, ``dims=``, ``shape=`` like ``pm.NormalMixture``, have a
``.dist()`` form, a log-density for NUTS and ``find_MAP``, and a random
generator, so ``pm.sample_prior_predictive`` and
``pm.sample_posterior_predictive`` draw them.

GaussianMixture
---------------
``x ~ sum_k w_k N(mu_k, Sigma_k)`` with ``Sigma_k = L_k L_k^T``, the marginal
density of a mixture whose labels are summed out:

.. math::

    \log p(x) = \operatorname{logsumexp}_k \Big[ \log w_k - \sum_j \log L_{k,jj}
        - \tfrac{d}{2}\log 2\pi - \tfrac12 \lVert L_k^{-1}(x - \mu_k) \rVert^2 \Big].

With unbatched parameters (``mu`` (K, d), ``chol`` (K, d, d)) the whitened
differences of all n rows and K components come from one batched triangular
solve ``P_k = L_k^{-1}`` (K tiny d x d systems) and one (n, d) x (d, K d)
matrix product, and the n x K matrix is reduced by one logsumexp; batched
parameters (a leading batch shape on ``w``, ``mu`` or ``chol``, e.g. one weight
vector per observation) broadcast against the rows instead. ``sigma=`` (the
component sds, (..., K), with ``mu`` (..., K)) makes a univariate mixture.

InverseWishart
--------------
``Sigma ~ IW(nu, Lambda)``, density
``|Lambda|^{nu/2} / (2^{nu d/2} Gamma_d(nu/2)) |Sigma|^{-(nu+d+1)/2} exp(-tr(Lambda Sigma^{-1})/2)``,
evaluated on Cholesky factors: ``log|Sigma| = 2 sum log L_jj`` and
``tr(Lambda Sigma^{-1}) = ||L^{-1} C||_F^2`` with ``Lambda = C C^T``.
Sampled on the log-Cholesky scale (:class:`CholeskyCovTransform`); the
transform marks its factor lower-triangular, so PyTensor's
``cholesky(L L^T) -> L`` rewrite removes every Cholesky decomposition from
the log-density and its gradient.
"""

from __future__ import annotations

import numpy as np
import pymc as pm
import pytensor.tensor as pt
from pymc.logprob.transforms import Transform
from scipy import linalg

LOG_2PI = float(np.log(2 * np.pi))


# --------------------------------------------------------------------------
# The log-Cholesky transform
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

    def cholesky_factor(self, value):
        """``L`` (..., d, d) from ``v`` (..., d(d+1)/2), tagged lower-triangular for PyTensor's rewrites."""
        d = self.d
        batch = value.shape[:-1]
        # (K, m), the model's shape, needs no reshape. With K = d = 1 a reshape to (1, 1, 1) makes
        # PyTensor 2.38's local_reshape_to_dimshuffle rewrite fail: it prints "BUG IN FGRAPH.REPLACE"
        # with a traceback to stderr and skips itself (the compiled graph is still right).
        flat = value if value.ndim == 2 else value.reshape((-1, value.shape[-1]))
        L = pt.zeros((flat.shape[0], d, d), dtype=value.dtype)
        entries = pt.set_subtensor(flat[:, self.diag_pos], pt.exp(flat[:, self.diag_pos]))
        L = pt.set_subtensor(L[:, self.rows, self.cols], entries)
        if value.ndim != 2:
            L = L.reshape((*[batch[i] for i in range(value.ndim - 1)], d, d))
        L.tag.lower_triangular = True
        return L

    def backward(self, value, *inputs):
        L = self.cholesky_factor(value)
        return L @ L.mT

    def forward(self, value, *inputs):
        L = pt.linalg.cholesky(value)
        v = L[..., self.rows, self.cols]
        return pt.set_subtensor(v[..., self.diag_pos], pt.log(v[..., self.diag_pos]))

    def log_jac_det(self, value, *inputs):
        d = self.d
        weights = np.array([d - i + 1 for i in range(d)], dtype="float64")
        return d * np.log(2.0) + pt.sum(value[..., self.diag_pos] * weights, axis=-1)


def _log_diagonal(L):
    return pt.log(pt.diagonal(L, axis1=-2, axis2=-1))


def inverse_cholesky(L):
    """``L^{-1}`` for a stack (..., d, d) of lower-triangular factors, by one batched solve."""
    eye = pt.broadcast_to(pt.eye(L.shape[-1], dtype=L.dtype), L.shape)
    return pt.linalg.solve_triangular(L, eye, lower=True)


# --------------------------------------------------------------------------
# InverseWishart
# --------------------------------------------------------------------------
def inverse_wishart_logp(value, nu, scale_chol):
    """log IW(value | nu, C C^T) for SPD ``value`` (..., d, d); ``scale_chol`` is C."""
    d = value.type.shape[-1] or value.shape[-1]
    L = pt.linalg.cholesky(value)
    trace = pt.sum(pt.square(pt.linalg.solve_triangular(L, pt.broadcast_to(scale_chol, value.shape),
                                                        lower=True)), axis=(-2, -1))
    log_multigamma = d * (d - 1) / 4 * np.log(np.pi) + pt.sum(
        pt.gammaln(nu[..., None] / 2 - pt.arange(d) / 2), axis=-1)
    return (
        nu * pt.sum(_log_diagonal(scale_chol), axis=-1)
        - nu * d / 2 * np.log(2.0)
        - log_multigamma
        - (nu + d + 1) * pt.sum(_log_diagonal(L), axis=-1)
        - trace / 2
    )


def inverse_wishart_draws(nu, scale_chol, rng: np.random.Generator, size=None) -> np.ndarray:
    """Draws of IW(nu, C C^T) by the Bartlett decomposition, broadcast over batch dims.

    ``Sigma^{-1} ~ Wishart(nu, C^{-T} C^{-1})`` is ``C^{-T} A A^T C^{-1}`` with ``A``
    lower triangular, ``A_jj^2 ~ chi2(nu - j)`` (0-based j) and standard normal
    entries below the diagonal; hence ``Sigma = F F^T`` with ``F = C A^{-T}``,
    one triangular solve of ``A`` per draw and no inverse of ``Sigma``.
    """
    nu, scale_chol = np.asarray(nu, dtype=np.float64), np.asarray(scale_chol, dtype=np.float64)
    d = scale_chol.shape[-1]
    batch = np.broadcast_shapes(nu.shape, scale_chol.shape[:-2], () if size is None else tuple(np.atleast_1d(size)))
    nu_b = np.broadcast_to(nu, batch).reshape(-1)
    C = np.broadcast_to(scale_chol, batch + (d, d)).reshape(-1, d, d)
    out = np.empty((nu_b.size, d, d))
    rows, cols = np.tril_indices(d, -1)
    for i, (df, c) in enumerate(zip(nu_b, C)):
        A = np.zeros((d, d))
        A[np.diag_indices(d)] = np.sqrt(rng.chisquare(df - np.arange(d)))
        A[rows, cols] = rng.standard_normal(rows.size)
        F = c @ linalg.solve_triangular(A, np.eye(d), lower=True).T
        out[i] = F @ F.T
    return out.reshape(batch + (d, d))


def _iw_random(nu, scale_chol, rng=None, size=None):
    return inverse_wishart_draws(nu, scale_chol, rng, size)


def _scale_cholesky(scale):
    """Cholesky factor of the IW scale: numerically now for constants, in the graph otherwise."""
    if isinstance(scale, pt.Variable):
        return pt.linalg.cholesky(scale)
    scale = np.asarray(scale, dtype=np.float64)
    try:
        return pt.as_tensor(linalg.cholesky(scale, lower=True))
    except linalg.LinAlgError as err:
        raise ValueError(f"InverseWishart scale must be symmetric positive definite; got {scale.tolist()}.") from err


class InverseWishart:
    """Inverse Wishart distribution of SPD matrices, sampled on the log-Cholesky scale.

    ``InverseWishart(name, nu, scale, **kwargs)`` adds a variable to the model
    in context (``dims=``, ``shape=`` for a stack of independent matrices,
    ``observed=`` ...); ``InverseWishart.dist(nu, scale)`` makes an unnamed one.

    Parameters
    ----------
    nu : float or tensor
        Degrees of freedom, > d - 1. The mean is ``scale / (nu - d - 1)`` for
        nu > d + 1, the mode ``scale / (nu + d + 1)``.
    scale : array_like (d, d) or tensor
        SPD scale matrix ``Lambda``.
    """

    def __new__(cls, name: str, nu, scale, **kwargs):
        return pm.CustomDist(name, *cls._inputs(nu, scale), **cls._options(scale), **kwargs)

    @classmethod
    def dist(cls, nu, scale, **kwargs):
        return pm.CustomDist.dist(*cls._inputs(nu, scale), **cls._options(scale), **kwargs)

    @staticmethod
    def _inputs(nu, scale):
        return pt.as_tensor(nu, dtype="float64"), _scale_cholesky(scale)

    @staticmethod
    def _options(scale) -> dict:
        d = int(np.shape(scale)[-1]) if not isinstance(scale, pt.Variable) else int(scale.type.shape[-1])

        def support_point(rv, size, nu, scale_chol):  # the mode, a point of high density
            S = scale_chol @ scale_chol.mT
            return pt.broadcast_to(S / (nu[..., None, None] + d + 1), rv.shape)

        return dict(logp=inverse_wishart_logp, random=_iw_random, signature="(),(d,d)->(d,d)",
                    support_point=support_point, transform=CholeskyCovTransform(d), class_name="InverseWishart")


# --------------------------------------------------------------------------
# Multivariate normal given a Cholesky factor
# --------------------------------------------------------------------------
def mvnormal_cholesky_logp(value, mean, chol):
    """log N(value | mean, L L^T) from L itself: ``-|L^{-1}(x - m)|^2/2 - sum log L_jj - d/2 log 2 pi``."""
    d = value.shape[-1]
    z = pt.sum(inverse_cholesky(chol) * (value - mean)[..., None, :], axis=-1)
    return -0.5 * pt.sum(pt.square(z), axis=-1) - pt.sum(_log_diagonal(chol), axis=-1) - 0.5 * d * LOG_2PI


def _mvnormal_cholesky_random(mean, chol, rng=None, size=None):
    mean, chol = np.asarray(mean, dtype=np.float64), np.asarray(chol, dtype=np.float64)
    batch = np.broadcast_shapes(mean.shape[:-1], chol.shape[:-2], () if size is None else tuple(np.atleast_1d(size)))
    z = rng.standard_normal(batch + mean.shape[-1:])
    return mean + np.einsum("...ij,...j->...i", np.broadcast_to(chol, batch + chol.shape[-2:]), z)


class MvNormalCholesky:
    """Multivariate normal ``N(mean, L L^T)`` parameterised by the lower Cholesky factor ``L``.

    Like ``pm.MvNormal(mu, chol=L)``, but its log-density works on ``L`` directly
    (one triangular solve), where ``pm.MvNormal`` rebuilds ``L L^T`` and factorises it
    again in every gradient evaluation. ``MvNormalCholesky(name, mean, chol, **kwargs)``
    or ``MvNormalCholesky.dist(mean, chol)``; batch dims broadcast.
    """

    def __new__(cls, name: str, mean, chol, **kwargs):
        return pm.CustomDist(name, *cls._inputs(mean, chol), **cls.OPTIONS, **kwargs)

    @classmethod
    def dist(cls, mean, chol, **kwargs):
        return pm.CustomDist.dist(*cls._inputs(mean, chol), **cls.OPTIONS, **kwargs)

    @staticmethod
    def _inputs(mean, chol):
        return pt.as_tensor(mean, dtype="float64"), pt.as_tensor(chol, dtype="float64")

    OPTIONS = dict(logp=mvnormal_cholesky_logp, random=_mvnormal_cholesky_random, signature="(d),(d,d)->(d)",
                   support_point=lambda rv, size, mean, chol: pt.broadcast_to(mean, rv.shape),
                   class_name="MvNormalCholesky")


# --------------------------------------------------------------------------
# GaussianMixture
# --------------------------------------------------------------------------
def _squeeze_broadcast_batch(param, core_ndim: int):
    """Drop leading batch dims of static length 1 (PyMC pads parameters with them)."""
    while param.ndim > core_ndim and param.type.broadcastable[0]:
        param = param[0]
    return param


def mixture_logp(value, w, mu, chol):
    """Per-observation ``log sum_k w_k N(x | mu_k, L_k L_k^T)``: value (..., d) -> (...).

    Unbatched ``mu`` (K, d) and ``chol`` (K, d, d) take the matrix-product path
    (whitening all rows at once); otherwise the parameters broadcast against
    the rows.
    """
    w, mu, chol = (_squeeze_broadcast_batch(p, n) for p, n in ((w, 1), (mu, 2), (chol, 3)))
    K, d = mu.shape[-2], mu.shape[-1]
    P = inverse_cholesky(chol)  # (..., K, d, d)
    log_norm = pt.log(w) - pt.sum(_log_diagonal(chol), axis=-1) - 0.5 * d * LOG_2PI  # (..., K)
    if mu.ndim == 2 and chol.ndim == 3 and value.ndim == 2:
        M = pt.transpose(P, (2, 0, 1)).reshape((d, K * d))  # M[j, k d + i] = P[k, i, j]
        Y = pt.dot(value, M).reshape((value.shape[0], K, d)) - pt.sum(P * mu[:, None, :], axis=-1)
    else:
        Y = pt.sum(P * (value[..., None, :] - mu)[..., None, :], axis=-1)  # (..., K, d)
    return pt.logsumexp(log_norm - 0.5 * pt.sum(pt.square(Y), axis=-1), axis=-1)


def noise_mixture_logp(value, w, mu, chol, log_noise_density):
    """Per-observation ``log(sum_k w_k N(x | mu_k, L_k L_k^T) + w_0 / V)``: value (..., d) -> (...).

    ``w`` (..., K+1) with the noise weight ``w_0`` last (see :mod:`gmmflow.core.noise`),
    ``log_noise_density = -log V``.
    """
    gaussian = mixture_logp(value, w[..., :-1], mu, chol)  # static slices: JAX traces them
    return pt.logaddexp(gaussian, pt.log(w[..., -1]) + log_noise_density)


def univariate_mixture_logp(value, w, mu, sigma):
    """Per-observation ``log sum_k w_k N(x | mu_k, sigma_k^2)``: value (...) -> (...)."""
    z = (value[..., None] - mu) / sigma
    return pt.logsumexp(pt.log(w) - pt.log(sigma) - 0.5 * LOG_2PI - 0.5 * pt.square(z), axis=-1)


def mixture_draws(w, mu, chol, rng: np.random.Generator, size=None) -> np.ndarray:
    """Draws of the mixture, broadcast over batch dims: (*size, d) (``size`` the batch shape)."""
    w, mu, chol = (np.asarray(a, dtype=np.float64) for a in (w, mu, chol))
    K, d = mu.shape[-2:]
    batch = np.broadcast_shapes(w.shape[:-1], mu.shape[:-2], chol.shape[:-3],
                                () if size is None else tuple(np.atleast_1d(size)))
    w = np.broadcast_to(w, batch + (K,)).reshape(-1, K)
    mu = np.broadcast_to(mu, batch + (K, d)).reshape(-1, K, d)
    chol = np.broadcast_to(chol, batch + (K, d, d)).reshape(-1, K, d, d)
    u = rng.random(w.shape[0])
    labels = np.minimum((np.cumsum(w, axis=1) < (u * w.sum(axis=1))[:, None]).sum(axis=1), K - 1)
    rows = np.arange(w.shape[0])
    z = rng.standard_normal((w.shape[0], d))
    x = mu[rows, labels] + np.einsum("nij,nj->ni", chol[rows, labels], z)
    return x.reshape(batch + (d,))


def _mixture_random(w, mu, chol, rng=None, size=None):
    return mixture_draws(w, mu, chol, rng, size)


def _univariate_mixture_random(w, mu, sigma, rng=None, size=None):
    return mixture_draws(w, np.asarray(mu)[..., None], np.asarray(sigma)[..., None, None], rng, size)[..., 0]


def GaussianNoiseMixture(name: str, w, mu, chol, log_noise_density, **kwargs):
    """Gaussian mixture plus mclust's uniform noise component, labels summed out.

    The density ``sum_k w_k N(x | mu_k, L_k L_k^T) + w_0 / V`` of
    :func:`noise_mixture_logp`: ``w`` (K+1) has the noise weight last (e.g. a
    ``pm.Dirichlet`` of K+1 entries), ``mu`` (K, d), ``chol`` (K, d, d),
    ``log_noise_density = -log V`` (a float or a scalar tensor, e.g. a ``pm.Data``
    container). The uniform's region is not part of the
    model, so it has no random draws (no prior or posterior predictive).
    """
    w, mu, chol, log_noise_density = (pt.as_tensor(a, dtype="float64") for a in (w, mu, chol, log_noise_density))
    return pm.CustomDist(name, w, mu, chol, log_noise_density,
                         logp=noise_mixture_logp, signature="(j),(k,d),(k,d,d),()->(d)",
                         class_name="GaussianNoiseMixture", **kwargs)


class GaussianMixture:
    """Mixture of Gaussians with the components' labels summed out.

    ``GaussianMixture(name, w, mu, chol=None, cov=None, *, sigma=None, observed=None, dims=None, **kwargs)``
    adds the variable to the model in context; ``GaussianMixture.dist(w, mu, ...)``
    makes an unnamed one. Give exactly one of ``chol``, ``cov`` (a multivariate
    mixture; d = 1 is a (..., 1) observation) and ``sigma`` (a univariate
    mixture, like ``pm.NormalMixture``).

    Parameters
    ----------
    w : tensor (..., K)
        Component weights on the simplex (e.g. a ``pm.Dirichlet``).
    mu : tensor (..., K, d), or (..., K) with ``sigma``
        Component means.
    chol : tensor (..., K, d, d)
        Lower Cholesky factors of the component covariances.
    cov : tensor (..., K, d, d)
        Component covariances (factorised in the graph).
    sigma : tensor (..., K)
        Component sds of a univariate mixture.

    Leading batch dims of the parameters broadcast against the observations'
    (e.g. ``w[group]`` gives every row its group's weights; ``mu + line[:, None, None]``
    shifts every row's component means). A multivariate observation has shape
    (..., d), a univariate one (...).
    """

    def __new__(cls, name: str, w, mu, chol=None, cov=None, *, sigma=None, **kwargs):
        inputs, options = cls._prepare(w, mu, chol, cov, sigma)
        return pm.CustomDist(name, *inputs, **options, **kwargs)

    @classmethod
    def dist(cls, w, mu, chol=None, cov=None, *, sigma=None, **kwargs):
        inputs, options = cls._prepare(w, mu, chol, cov, sigma)
        return pm.CustomDist.dist(*inputs, **options, **kwargs)

    @staticmethod
    def _prepare(w, mu, chol, cov, sigma):
        if sum(p is not None for p in (chol, cov, sigma)) != 1:
            raise ValueError("GaussianMixture needs exactly one of chol= (Cholesky factors), cov= (covariances) "
                             "and sigma= (sds of a univariate mixture).")
        w, mu = pt.as_tensor(w, dtype="float64"), pt.as_tensor(mu, dtype="float64")
        if sigma is not None:
            return (w, mu, pt.as_tensor(sigma, dtype="float64")), dict(
                logp=univariate_mixture_logp, random=_univariate_mixture_random, signature="(k),(k),(k)->()",
                class_name="GaussianMixture")
        scale = pt.as_tensor(chol if chol is not None else cov, dtype="float64")
        if mu.ndim < 2 or scale.ndim < 3:
            raise ValueError(f"GaussianMixture: mu must be (..., K, d) and chol/cov (..., K, d, d); got {mu.ndim} "
                             f"and {scale.ndim} dims. For a univariate mixture give sigma= (sds, (..., K)).")
        L = scale if chol is not None else pt.linalg.cholesky(scale)
        return (w, mu, L), dict(logp=mixture_logp, random=_mixture_random,
                                signature="(k),(k,d),(k,d,d)->(d)", class_name="GaussianMixture")

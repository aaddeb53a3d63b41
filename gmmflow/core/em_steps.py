r"""EM steps for Gaussian mixtures: E-step statistics and closed-form M-steps.

Pure numpy. The E-step reduces a chunk of rows to sufficient statistics
(:class:`SuffStats`); statistics of chunks add, so the same code runs over
row blocks of an in-memory array, over a thread pool, or over dask chunks.
All statistics are taken about a fixed shift (the data mean), so second
moments do not lose digits to the data's offset.

The objective is ``log p(X | theta) + log p(theta)`` with every normalising
constant (``log p(theta) = 0`` without a prior), which EM never decreases.

M-step derivations
------------------
Write ``n_k = sum_i r_ik``, ``s_k = sum_i r_ik x_i``, ``S_k = sum_i r_ik x_i x_i^T``
(weights ``r_ik`` include sample weights), ``kappa = kappa_P``, ``nu = nu_P``,
``m = mu_P``. The expected complete-data log posterior is, up to constants,

.. math::

    Q = \sum_k \Big[ n_k \log w_k - \tfrac12 n_k \log|\Sigma_k|
        - \tfrac12 \sum_i r_{ik} (x_i-\mu_k)^T \Sigma_k^{-1} (x_i-\mu_k) \Big]
        + \log p(w) + \sum_k \log N(\mu_k | m, \Sigma_k/\kappa) + \log p(\Sigma).

*Means* (all types): setting :math:`\partial Q/\partial \mu_k = 0` gives
:math:`\Sigma_k^{-1}[(s_k - n_k\mu_k) - \kappa(\mu_k - m)] = 0`, so
``mu_k = (s_k + kappa m) / (n_k + kappa)``. At this mean the quadratic terms
collect into the matrix (no division by ``n_k``, stable for empty components)

.. math::

    B_k = \sum_i r_{ik}(x_i-\mu_k)(x_i-\mu_k)^T + \kappa(\mu_k-m)(\mu_k-m)^T
        = S_k + \kappa m m^T - (n_k + \kappa)\mu_k\mu_k^T ,

which equals ``W_k + kappa n_k/(kappa+n_k) (xbar_k - m)(xbar_k - m)^T`` of the usual textbook form.

*Weights*: maximise ``sum_k (n_k + alpha - 1) log w_k`` on the simplex
(Lagrange multiplier): ``w_k = (n_k + alpha - 1) / (n + K(alpha - 1))``.

*full* (``Sigma_k ~ IW(nu, Lambda)``, density ``|Sigma|^{-(nu+d+1)/2}
exp(-tr(Lambda Sigma^{-1})/2)``): the terms in ``Sigma_k`` are
``-(n_k + 1 + nu + d + 1)/2 log|Sigma_k| - tr((Lambda + B_k) Sigma_k^{-1})/2``
(the ``+1`` from the mean prior's ``|Sigma_k/kappa|^{-1/2}``). Their maximiser is
``Sigma_k = (Lambda + B_k) / (nu + n_k + d + 2)``.

*tied* (one ``Sigma ~ IW(nu, Lambda)``, K mean priors each adding
``-1/2 log|Sigma|``): ``-(n + K + nu + d + 1)/2 log|Sigma| - tr((Lambda + sum_k B_k)
Sigma^{-1})/2``, so ``Sigma = (Lambda + sum_k B_k) / (nu + n + K + d + 1)``.

*diag* (``sigma2_kj ~ InvGamma(nu/2, s2_j/2)``, density ``sigma2^{-(nu/2+1)}
exp(-s2_j / (2 sigma2))``; the mean prior factorises over features):
``-(n_k + 1 + nu + 2)/2 log sigma2_kj - (s2_j + B_kjj)/(2 sigma2_kj)``, so
``sigma2_kj = (s2_j + B_kjj) / (nu + n_k + 3)``.

*spherical* (``sigma2_k ~ InvGamma(nu/2, s2/2)``, ``Sigma_k = sigma2_k I``): the
likelihood contributes ``-n_k d/2 log sigma2``, the mean prior ``-d/2``:
``-(n_k d + d + nu + 2)/2 log sigma2_k - (s2 + tr B_k)/(2 sigma2_k)``, so
``sigma2_k = (s2 + tr B_k) / (nu + (n_k + 1) d + 2)``.

*Noise component* (``GMM(noise=True)``): the weights have K+1 entries, the
uniform component's last, and the responsibilities one more row; the means
and covariances above take the Gaussian statistics only, the weights the
formulas above over all K+1 entries (derivation in :mod:`gmmflow.core.noise`).

*MLE* (no prior): sklearn's M-step, ``w_k = n_k/n``, ``mu_k = s_k/n_k``,
covariances ``W_k / n_k`` (tied: ``sum_k W_k / n``; spherical: the mean of the
diagonal) plus ``reg_covar`` on the diagonal; ``n_k`` carries sklearn's
``10 * eps`` so that an empty component does not divide by zero.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from functools import cache, cached_property

import numpy as np

from gmmflow.core.gaussian import cholesky, log_gaussian_prob_T, precision_cholesky
from gmmflow.core.hyperparameters import Hyperparameters
from gmmflow.core.noise import noise_row
from gmmflow.core.prior_density import log_prior
from gmmflow.exceptions import NotPositiveDefiniteError

EPS = 10 * np.finfo(np.float64).eps
# Joint probabilities below exp(-600) (relative to the row's largest) are set to
# exactly 0 before exp: otherwise exp yields subnormal floats, and arithmetic on
# subnormals (the statistics' GEMMs) is many times slower on x86. The effect on
# any sum is below 1e-260 relative.
LOG_FLOOR = -600.0


# --------------------------------------------------------------------------
# Parameters and statistics
#
# Both may carry leading batch axes (R restarts or bootstrap replicates advanced
# together): weights (..., K), means (..., K, d), the covariance in its type's
# shape after the same axes. Every step below is vectorised over them.
# --------------------------------------------------------------------------
def _take(value, index):
    """``value[index]`` on the batch axis; scalars (shared by the batch) pass through."""
    return value[index] if np.ndim(value) else value


@dataclass(frozen=True, eq=False)
class Params:
    """Mixture parameters in a covariance type's compact form, with Cholesky.

    A noise model (:mod:`gmmflow.core.noise`) has K+1 ``weights``, the uniform
    component's last, and ``log_noise_density = -log V``; otherwise
    ``log_noise_density`` is None.
    """

    weights: np.ndarray
    means: np.ndarray
    cov: np.ndarray
    chol: np.ndarray
    covariance_type: str
    log_noise_density: float | None = None

    @classmethod
    def from_cov(cls, weights, means, cov, covariance_type: str, check_symmetric: bool = True,
                 log_noise_density: float | None = None) -> Params:
        cov = np.asarray(cov, dtype=np.float64)
        return cls(
            np.asarray(weights, dtype=np.float64),
            np.asarray(means, dtype=np.float64),
            cov,
            cholesky(cov, covariance_type, check_symmetric),
            covariance_type,
            log_noise_density,
        )

    @classmethod
    def stack(cls, params: list[Params]) -> Params:
        """Unbatched parameter sets stacked on a new leading batch axis."""
        fields = ("weights", "means", "cov", "chol")
        return cls(*(np.stack([getattr(p, f) for p in params]) for f in fields), params[0].covariance_type,
                   params[0].log_noise_density)

    @property
    def batch_shape(self) -> tuple:
        return self.weights.shape[:-1]

    @property
    def has_noise(self) -> bool:
        """True for a noise model: one weight more than there are means."""
        return self.weights.shape[-1] == self.means.shape[-2] + 1

    def take(self, index) -> Params:
        """Entries ``index`` of the leading batch axis (an int drops the axis)."""
        return replace(self, weights=self.weights[index], means=self.means[index], cov=self.cov[index],
                       chol=self.chol[index])

    def shifted(self, offset: np.ndarray) -> Params:
        """The same mixture with every mean moved by ``offset``."""
        return replace(self, means=self.means + offset)

    @cached_property
    def precision(self) -> np.ndarray:
        """Whitening factor ``P`` (``P P^T = Sigma^{-1}``), computed once per parameter set."""
        return precision_cholesky(self.chol, self.covariance_type)


@dataclass(eq=False)
class SuffStats:
    """Sufficient statistics of a block of rows (they add across blocks).

    ``sxx`` is per type: full (K, d, d) ``sum r x x^T``; tied (d, d) ``sum s x x^T``
    (responsibilities sum to one, so the tied M-step needs only the total);
    diag (K, d) ``sum r x^2``; spherical (K,) ``sum r |x|^2``. With batched
    parameters every field has the batch axes in front (``weight_sum`` and
    ``log_likelihood`` become arrays of the batch shape; ``weight_sum`` stays
    a float when all entries share the rows' weights).
    """

    weight_sum: float | np.ndarray
    nk: np.ndarray
    sx: np.ndarray
    sxx: np.ndarray
    log_likelihood: float | np.ndarray

    def __add__(self, other: SuffStats) -> SuffStats:
        return SuffStats(
            self.weight_sum + other.weight_sum,
            self.nk + other.nk,
            self.sx + other.sx,
            self.sxx + other.sxx,
            self.log_likelihood + other.log_likelihood,
        )

    def take(self, index) -> SuffStats:
        """Entries ``index`` of the leading batch axis."""
        return SuffStats(_take(self.weight_sum, index), self.nk[index], self.sx[index], self.sxx[index],
                         _take(self.log_likelihood, index))

    @classmethod
    def stack(cls, stats: list[SuffStats]) -> SuffStats:
        """Unbatched statistics stacked on a new leading batch axis."""
        return cls(*(np.stack([getattr(s, f.name) for s in stats]) for f in fields(cls)))


@cache
def _upper_triangle(d: int):
    return np.triu_indices(d)


def _sxx_full(XT, R, sw):
    d = XT.shape[0]
    iu, ju = _upper_triangle(d)
    T = R @ (XT[iu] * XT[ju]).T  # (..., K, d(d+1)/2): one GEMM for all components
    out = np.empty(R.shape[:-1] + (d, d))
    out[..., iu, ju] = T
    out[..., ju, iu] = T
    return out


def _sxx_tied(XT, R, sw):
    d = XT.shape[0]
    total = XT @ XT.T if sw is None else (XT * sw[..., None, :]) @ XT.T
    return np.broadcast_to(total, R.shape[:-2] + (d, d))


def _sxx_diag(XT, R, sw):
    return R @ np.square(XT).T


def _sxx_spherical(XT, R, sw):
    return R @ np.square(XT).sum(axis=0)


_SECOND_MOMENTS = {
    "full": _sxx_full,
    "tied": _sxx_tied,
    "diag": _sxx_diag,
    "spherical": _sxx_spherical,
}


def _joint_exp(XT, log_weights, means, prec, covariance_type, log_noise_density=None):
    """``exp(log w_k N(x_i|k) - top_i)`` (..., K, m), its sums over K and ``top`` (..., m).

    With ``log_noise_density`` (a noise model, K+1 ``log_weights``) the noise's
    row ``log w_0 - log V`` comes last: (..., K+1, m).
    """
    K = means.shape[-2]
    log_prob = log_gaussian_prob_T(XT, means, prec, covariance_type, log_weights[..., :K])
    if log_noise_density is not None:
        noise = noise_row(log_weights, log_noise_density, XT.shape[1])
        noise += log_weights[..., K:, None]
        log_prob = np.concatenate([log_prob, noise], axis=-2)
    return joint_exp_from_log(log_prob)


def joint_exp_from_log(log_joint):
    """:func:`_joint_exp` from the log joint densities ``log w_k + log N(x_i | k)`` (..., K, m),
    which it overwrites."""
    top = log_joint.max(axis=-2)
    log_joint -= top[..., None, :]
    np.copyto(log_joint, -np.inf, where=log_joint < LOG_FLOOR)
    E = np.exp(log_joint, out=log_joint)
    return E, E.sum(axis=-2), top


def log_resp_and_norm(XT, log_weights, means, prec, covariance_type, log_noise_density=None):
    """Log-responsibilities (..., K, m) and log mixture densities (..., m) by logsumexp.

    ``log_norm_i = log sum_k w_k N(x_i | mu_k, Sigma_k)``; ``XT`` is (d, m).
    A noise model (``log_noise_density`` given) has K+1 rows, the noise's last.
    """
    E, total, top = _joint_exp(XT, log_weights, means, prec, covariance_type, log_noise_density)
    with np.errstate(divide="ignore"):
        log_resp = np.log(E / total[..., None, :])
    return log_resp, np.log(total) + top


def statistics_from_responsibilities(
    XT: np.ndarray, R: np.ndarray, covariance_type: str, sample_weight=None, log_likelihood=0.0,
    noise: bool = False,
) -> SuffStats:
    """Sufficient statistics of rows ``XT`` (d, m) with responsibilities ``R`` (..., K, m).

    ``sample_weight`` is (m,), or (..., m) with one row of weights per batch entry.
    ``noise``: the last row of ``R`` is the noise component's (K+1 rows); it
    counts in ``nk`` only, and the moments are the Gaussian rows'.
    """
    if sample_weight is not None:
        R = R * sample_weight[..., None, :]
    weight_sum = float(XT.shape[1]) if sample_weight is None else sample_weight.sum(axis=-1)
    nk = R.sum(axis=-1)
    moment_weight = sample_weight
    if noise:  # the tied moment sums over the Gaussian components: rows weighted by 1 - r_i0
        R = R[..., :-1, :]
        moment_weight = R.sum(axis=-2)
    return SuffStats(
        weight_sum if np.ndim(weight_sum) else float(weight_sum),
        nk,
        R @ XT.T,
        _SECOND_MOMENTS[covariance_type](XT, R, moment_weight),
        log_likelihood,
    )


def m_step_from_responsibilities(X: np.ndarray, resp: np.ndarray, covariance_type: str,
                                 hyper: Hyperparameters | None, reg_covar: float, sample_weight=None) -> Params:
    """One M-step on rows ``X`` (m, d) with responsibilities ``resp`` (..., m, K): how a start becomes
    parameters (with the batch axes of ``resp``)."""
    stats = statistics_from_responsibilities(np.ascontiguousarray(X.T), np.ascontiguousarray(np.swapaxes(resp, -1, -2)),
                                             covariance_type, sample_weight)
    return m_step(stats, covariance_type, hyper, reg_covar)


def chunk_statistics(XT, sample_weight, log_weights, means, prec, covariance_type,
                     log_noise_density=None) -> SuffStats:
    """E-step on one block of rows ``XT`` (d, m): responsibilities reduced to statistics."""
    E, total, top = _joint_exp(XT, log_weights, means, prec, covariance_type, log_noise_density)
    E /= total[..., None, :]
    log_norm = np.log(total) + top
    ll = log_norm.sum(axis=-1) if sample_weight is None else (sample_weight * log_norm).sum(axis=-1)
    return statistics_from_responsibilities(XT, E, covariance_type, sample_weight,
                                             ll if np.ndim(ll) else float(ll), log_noise_density is not None)


# --------------------------------------------------------------------------
# M-step
# --------------------------------------------------------------------------
def _outer(a):
    return a[..., :, None] * a[..., None, :]


def _weighted_outer_sum(weights, means):
    """``sum_k weights_k means_k means_k^T`` over the component axis: (..., d, d)."""
    return np.einsum("...k,...kd,...ke->...de", weights, means, means)


def _map_covariance(stats: SuffStats, means, hyper: Hyperparameters):
    """Closed-form MAP covariance (see the module docstring)."""
    t = hyper.covariance_type
    kappa, nu, m, d = hyper.shrinkage, hyper.dof, hyper.mean, hyper.n_features
    nk = stats.nk
    K = nk.shape[-1]
    if t == "full":
        B = stats.sxx + kappa * np.outer(m, m) - (nk + kappa)[..., None, None] * _outer(means)
        return (hyper.scale + B) / (nu + nk + d + 2)[..., None, None]
    if t == "tied":
        B = stats.sxx + K * kappa * np.outer(m, m) - _weighted_outer_sum(nk + kappa, means)
        return (hyper.scale + B) / (nu + np.asarray(stats.weight_sum) + K + d + 1)[..., None, None]
    if t == "diag":
        B = stats.sxx + kappa * m**2 - (nk + kappa)[..., None] * means**2
        return (hyper.scale + B) / (nu + nk + 3)[..., None]
    trB = stats.sxx + kappa * (m @ m) - (nk + kappa) * (means**2).sum(axis=-1)
    return (hyper.scale + trB) / (nu + (nk + 1) * d + 2)


def _mle_covariance(stats: SuffStats, means, nk, reg_covar, covariance_type):
    """sklearn's MLE covariance plus ``reg_covar`` on the diagonal."""
    d = means.shape[-1]
    diagonal = np.arange(d)
    if covariance_type == "full":
        cov = stats.sxx / nk[..., None, None] - _outer(means)
        cov[..., diagonal, diagonal] += reg_covar
        return cov
    if covariance_type == "tied":
        cov = (stats.sxx - _weighted_outer_sum(nk, means)) / nk.sum(axis=-1)[..., None, None]
        cov[..., diagonal, diagonal] += reg_covar
        return cov
    if covariance_type == "diag":
        return stats.sxx / nk[..., None] - means**2 + reg_covar
    return (stats.sxx / nk - (means**2).sum(axis=-1)) / d + reg_covar


def _gaussian_statistics(stats: SuffStats) -> SuffStats:
    """The statistics of the Gaussian components: ``stats`` itself, or for a noise model
    (one count more than means) its counts without the noise's, summing to ``weight_sum``."""
    if stats.nk.shape[-1] == stats.sx.shape[-2]:
        return stats
    nk = stats.nk[..., :-1]
    total = nk.sum(axis=-1)
    return SuffStats(total if np.ndim(total) else float(total), nk, stats.sx, stats.sxx, stats.log_likelihood)


def m_step(
    stats: SuffStats,
    covariance_type: str,
    hyper: Hyperparameters | None,
    reg_covar: float,
    log_noise_density: float | None = None,
) -> Params:
    """Closed-form maximiser of the expected complete-data log posterior.

    MAP when ``hyper`` is given, else sklearn's MLE with ``reg_covar``.
    Statistics with leading batch axes give parameters with the same axes.
    A noise model's statistics (K+1 counts) give K+1 weights, the noise's last;
    ``log_noise_density`` (``-log V``) is carried into the parameters.

    Raises
    ------
    NotPositiveDefiniteError
        With sklearn-style advice, if a covariance comes out not SPD (MLE
        collapse onto too few points).
    """
    nk = stats.nk + EPS
    K = nk.shape[-1]  # K + 1 for a noise model: the weights' formulas take every entry
    gauss = _gaussian_statistics(stats)
    if hyper is None:
        weights = nk / nk.sum(axis=-1, keepdims=True)
        nk_gauss = gauss.nk + EPS
        means = gauss.sx / nk_gauss[..., None]
        cov = _mle_covariance(gauss, means, nk_gauss, reg_covar, covariance_type)
    else:
        a = hyper.alpha
        weights = (nk + a - 1.0) / (nk.sum(axis=-1, keepdims=True) + K * (a - 1.0))
        means = (gauss.sx + hyper.shrinkage * hyper.mean) / (gauss.nk + hyper.shrinkage)[..., None]
        cov = _map_covariance(gauss, means, hyper)
    try:  # the covariances are symmetric by construction (sums of symmetric terms)
        return Params.from_cov(weights, means, cov, covariance_type, check_symmetric=False,
                               log_noise_density=log_noise_density)
    except NotPositiveDefiniteError as err:
        if hyper is None:
            advice = ("(for instance caused by singleton or collapsed samples). Try to decrease the number of "
                      "components, increase reg_covar, use the default prior (prior='default'), or scale the "
                      "input data.")
        else:  # the MAP adds the prior's scale, so the scale itself is (nearly) singular
            advice = ("although the prior is used: its scale is (nearly) singular, as the default scale is on "
                      "tiny or degenerate data (no more rows than features, collinear or near-constant "
                      "features). Use more rows than features, drop collinear features, or give the scale "
                      "explicitly with Prior(scale=...).")
        raise NotPositiveDefiniteError(
            f"Fitting the mixture model failed because some components have ill-defined "
            f"empirical covariance ({err}) {advice}"
        ) from err


def log_objective_parts(stats: SuffStats, params: Params, hyper: Hyperparameters | None):
    """(log-likelihood, log-prior) of ``params`` (floats, or arrays of the batch shape);
    ``stats`` from an E-step at ``params``."""
    if hyper is None:
        return stats.log_likelihood, np.zeros(params.batch_shape) if params.batch_shape else 0.0
    return stats.log_likelihood, log_prior(params.weights, params.means, params.cov, params.chol, hyper,
                                           params.precision)

r"""Blocked Gibbs sampler for Gaussian mixtures (Diebolt & Robert 1994): conditionals and sweeps.

Pure numpy. Every prior gmmflow offers is conjugate once the component of
each row is known, so the exact posterior of the model (the one EM
maximises and NUTS samples, with the same hyper-parameters) is sampled by
alternating two exact conditional draws:

1. ``z | theta, X``: rows are independent given the parameters, and
   ``P(z_i = k | theta, x_i)`` is the E-step's responsibility
   ``w_k N(x_i | mu_k, Sigma_k) / sum_j w_j N(x_i | mu_j, Sigma_j)``. Each
   row block draws its rows' components by inverting the cumulative
   responsibilities at one uniform per row, and reduces them at once to the
   sufficient statistics of the hard assignments (the E-step's
   :class:`~gmmflow.core.em_steps.SuffStats` with ``r_ik = [z_i = k]``), so
   the assignments of all rows never exist together: memory is
   O(block x K) as in EM.
2. ``(w, mu, Sigma) | z, X`` from those statistics: ``w`` is independent of
   ``(mu, Sigma)`` given ``z``, and ``(mu, Sigma)`` is drawn jointly, as
   ``Sigma | z, X`` (the means integrated out) and then ``mu | Sigma, z, X``.

Conditional derivations
-----------------------
Notation as in :mod:`gmmflow.core.em_steps`, with hard assignments:
``n_k = #{i: z_i = k}``, ``n = sum_k n_k``, ``s_k = sum_{z_i=k} x_i``,
``S_k = sum_{z_i=k} x_i x_i^T``, ``xbar_k = s_k / n_k``,
``W_k = sum_{z_i=k} (x_i - xbar_k)(x_i - xbar_k)^T``; prior
hyper-parameters ``alpha``, ``m`` (mean), ``kappa`` (shrinkage), ``nu``
(dof) and the scale ``Lambda`` (full/tied (d, d)), ``s2_j`` (diag (d,)) or
``s2`` (spherical).

*Weights*. ``p(w | z) ∝ prod_k w_k^(alpha - 1) prod_i w_{z_i} =
prod_k w_k^(alpha + n_k - 1)``, so ``w | z ~ Dirichlet(alpha + n_1, ...,
alpha + n_K)``: drawn as ``g_k / sum_j g_j``, ``g_k ~ Gamma(alpha + n_k)``.

*Means given the covariance* (every type; ``Sigma_k`` is ``Sigma`` for tied,
``diag(sigma2_k)`` for diag, ``sigma2_k I`` for spherical). With
``P = Sigma_k^{-1}`` the terms in ``mu_k`` are

.. math::

    -\tfrac12 \sum_{z_i=k} (x_i-\mu_k)^T P (x_i-\mu_k) - \tfrac{\kappa}{2} (\mu_k-m)^T P (\mu_k-m)
    = -\tfrac{n_k+\kappa}{2} (\mu_k-\hat m_k)^T P (\mu_k-\hat m_k) - \tfrac12 \operatorname{tr}(P B_k),

completing the square, with ``mhat_k = (s_k + kappa m) / (n_k + kappa)`` and

.. math::

    B_k = S_k + \kappa m m^T - (n_k+\kappa)\hat m_k \hat m_k^T
        = W_k + \tfrac{\kappa n_k}{\kappa + n_k} (\bar x_k - m)(\bar x_k - m)^T

(the M-step's ``B_k``, evaluated at the same ``mhat_k``). Hence
``mu_k | Sigma_k, z, X ~ N(mhat_k, Sigma_k / (n_k + kappa))``.

*Integrating the mean out*. Over ``mu_k`` the Gaussian integral of the
expression above is ``(2 pi)^(d/2) |Sigma_k / (n_k + kappa)|^(1/2)``, which
cancels the mean prior's normaliser ``|Sigma_k / kappa|^(-1/2)`` up to the
constant ``(kappa / (n_k + kappa))^(d/2)``. What is left of the likelihood
and the mean prior as a function of the covariance is

.. math::

    p(z, X \mid \Sigma_k) \propto |\Sigma_k|^{-n_k/2} \exp(-\tfrac12 \operatorname{tr}(\Sigma_k^{-1} B_k)).

*full* (``Sigma_k ~ IW(nu, Lambda)``, density ``∝ |Sigma|^{-(nu+d+1)/2}
exp(-tr(Lambda Sigma^{-1})/2)``): multiplying,
``Sigma_k | z, X ~ IW(nu + n_k, Lambda + B_k)``.

*tied* (one ``Sigma ~ IW(nu, Lambda)`` shared by all components, and K
mean priors ``mu_k ~ N(m, Sigma / kappa)``): all K likelihood factors and
all K mean priors hold the same ``Sigma``. Integrating each ``mu_k`` out
cancels its mean prior's ``|Sigma|^(-1/2)`` as above, so the factors
multiply to ``|Sigma|^{-n/2} exp(-tr(Sigma^{-1} sum_k B_k)/2)`` and
``Sigma | z, X ~ IW(nu + n, Lambda + sum_k B_k)``. (Conditioning on the
means instead of integrating them out, the K mean priors each keep their
``|Sigma|^(-1/2)`` and ``Sigma | mu, z, X ~ IW(nu + n + K, Lambda +
sum_i (x_i - mu_{z_i})(x_i - mu_{z_i})^T + kappa sum_k (mu_k - m)(mu_k -
m)^T)``: the ``+ K`` of the M-step's ``nu + n + K + d + 1``. Both are exact
conditionals; the collapsed one is used because it draws ``(mu, Sigma)``
as one block.)

*diag* (``sigma2_kj ~ InvGamma(nu/2, s2_j/2)``, density ``∝
sigma2^{-(nu/2+1)} exp(-s2_j/(2 sigma2))``): ``Sigma_k`` is diagonal, so the
factor above is ``prod_j sigma2_kj^{-n_k/2} exp(-B_kjj / (2 sigma2_kj))`` and
``sigma2_kj | z, X ~ InvGamma((nu + n_k)/2, (s2_j + B_kjj)/2)``, independently
over j.

*spherical* (``sigma2_k ~ InvGamma(nu/2, s2/2)``, ``Sigma_k = sigma2_k I``):
``|Sigma_k|^{-n_k/2} = sigma2_k^{-n_k d/2}`` and ``tr(Sigma_k^{-1} B_k) =
tr(B_k) / sigma2_k``, so ``sigma2_k | z, X ~ InvGamma((nu + n_k d)/2,
(s2 + tr B_k)/2)``.

*Noise component* (``GMM(noise=True)``, :mod:`gmmflow.core.noise`): the
classes are the K Gaussians and the uniform, ``z_i in {1, ..., K, 0}``, with
``P(z_i = 0 | theta, x_i) ∝ w_0 / V`` against ``w_k N(x_i | mu_k, Sigma_k)``:
the noise is one more row of the joint densities, drawn like the others.
The prior is that of EM's noise M-step and of the PyMC model,
``w ~ Dirichlet(alpha 1_{K+1})`` over the K+1 weights, and the assignments'
likelihood ``prod_i w_{z_i}`` counts the noise's rows too, so
``w | z ~ Dirichlet(alpha + n_1, ..., alpha + n_K, alpha + n_0)`` (the
noise's last, as everywhere; its mode is EM's noise M-step). The density
``1/V`` holds no parameter: ``p(z, X | theta) = prod_{z_i = 0} (w_0 / V)
prod_{z_i = k >= 1} w_k N(x_i | mu_k, Sigma_k)``, so the rows drawn to the
noise leave every Gaussian factor, and ``(mu, Sigma)`` have the conditionals
above computed on the other rows (``n_k``, ``s_k``, ``S_k`` over
``z_i != 0``; tied: ``nu + sum_{k >= 1} n_k``).

*Missing cells* (``missing="marginalize"``, values missing at random): the
posterior given the observed values, ``p(theta | X_o)``, is a marginal of
``p(theta, z, X_m | X_o)``, and Gibbs samples the latter, the missing cells
being latent variables like ``z``. Given ``theta`` the rows are independent
and, for row i with observed coordinates ``o`` and missing ``m``,

.. math::

    p(z_i = k, x_{i,m} \mid \theta, x_{i,o}) = P(z_i = k \mid \theta, x_{i,o})\,
        N(x_{i,m} \mid \mu_{k,m} + B_k (x_{i,o} - \mu_{k,o}),\ C_k),

where ``P(z_i = k | theta, x_{i,o}) ∝ w_k N(x_{i,o} | mu_{k,o}, Sigma_{k,oo})``
(``x_{i,m}`` integrated out of ``w_k N(x_i | mu_k, Sigma_k)``: the
observed-data E-step's responsibility) and the second factor is the
Gaussian conditional of ``x_m`` given ``x_o`` in component k,
``B_k = Sigma_{k,mo} Sigma_{k,oo}^{-1}``, ``C_k = Sigma_{k,mm} - B_k
Sigma_{k,om}`` (:func:`gmmflow.core.missing_data.conditional`; diag and
spherical: ``B_k = 0`` and ``C_k`` the variances ``sigma2_{k,m}``). So step
1 draws ``z_i`` from the observed coordinates, then ``x_{i,m} = mu_{k,m} +
B_k (x_{i,o} - mu_{k,o}) + L_k eps_i`` with ``C_k = L_k L_k^T`` (Cholesky)
and ``eps_i`` standard normal: an exact draw of ``(z, X_m) | theta, X_o``.
Given ``(z, X_m)`` the rows are complete, and ``p(theta | z, X_m, X_o) =
p(theta | z, X)`` is step 2 unchanged. The chain's ``theta`` draws thus have
``p(theta | X_o)`` as stationary law, the posterior NUTS samples with the
missing cells integrated out. A noise component with missing cells is
refused, as in EM.

An empty component (``n_k = 0``) has ``mhat_k = m`` and ``B_k = 0``: it is
drawn from its prior. The tests check each conditional against the
unnormalised posterior ``log p(theta) + log p(z, X | theta)`` (gmmflow's own
prior density and scipy's densities: the difference must not depend on
theta) and each draw against the closed-form moments of its law.

Drawing the inverse-Wishart (Bartlett)
--------------------------------------
``Sigma ~ IW(nu', Psi)`` iff ``Sigma^{-1} ~ Wishart(nu', Psi^{-1})``. With
``Psi = L L^T`` (Cholesky) and ``A ~ Wishart(nu', I)``, ``L^{-T} A L^{-1}``
has that Wishart law. Bartlett's decomposition, with the coordinates in
reverse order, writes ``A = U U^T`` with ``U`` upper triangular,
``U_jj^2 ~ chi2(nu' - d + 1 + j)`` (j = 0..d-1) and standard normal entries
above the diagonal, all independent. Then

.. math::

    \Sigma = L (U U^T)^{-1} L^T = T T^T, \qquad T = L U^{-T},

and ``T`` (lower times lower triangular, positive diagonal) *is* the
Cholesky factor of ``Sigma``. It comes from one solve with the triangular
``U``, ``U T^T = L^T`` (batched over components and chains); no matrix is
inverted and ``Sigma`` is never factorised again.

Chains
------
The chains of a run advance together: a sweep makes one pass over the rows
for all of them (each block's joint densities of every chain in one GEMM,
their assignments grouped by (chain, component) in one sort), and one
batched parameter draw, each chain's variates coming from its own stream in
the order a lone chain would draw them (:class:`ChainVariates`). At small n,
where a sweep is a few hundred microseconds of fixed per-call cost, four
chains cost little more than one.

Random streams
--------------
Every draw is a function of (seed, chain, sweep) and, for ``z_i``, of the
row index i only: see :mod:`gmmflow.core.assignment_draws`, which also
holds the per-block kernel of step 1; a missing cell ``(i, j)`` is drawn
from ``Phi^{-1}(u)`` of its own uniform, number ``i d + j`` of a third
stream (:meth:`~gmmflow.core.assignment_draws.RowUniforms.cells`). So the draws do not depend on how the
rows are split into blocks or dask chunks, nor on which thread or worker
reduces a block; only the summation order of the statistics can change.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import lru_cache
from typing import NamedTuple

import numpy as np
from threadpoolctl import threadpool_limits

from gmmflow.core.assignment_draws import ChainStreams
from gmmflow.core.em_steps import Params, SuffStats, _gaussian_statistics
from gmmflow.core.hyperparameters import Hyperparameters
from gmmflow.core.prior_density import log_prior
from gmmflow.exceptions import NotPositiveDefiniteError


# --------------------------------------------------------------------------
# (w, mu, Sigma) | z, X
#
# Every draw below broadcasts over leading batch axes (chains): the random
# variates of batch entry c come from its own stream (:class:`ChainVariates`),
# in the same order as for one chain alone, and the arithmetic that turns them
# into parameters runs once for the whole batch.
# --------------------------------------------------------------------------
class ChainVariates:
    """Standard random variates for a batch of chains, each from its own Generator.

    ``ChainVariates(rng)`` with one Generator draws unbatched arrays;
    ``ChainVariates([rng_1, ..., rng_C])`` draws arrays with a leading axis C,
    entry c from ``rng_c`` exactly as ``rng_c`` alone would draw it.
    Distribution parameters carry the batch axis in front.
    """

    def __init__(self, rng: np.random.Generator | Sequence[np.random.Generator]):
        self.rngs = list(rng) if isinstance(rng, (list, tuple)) else None
        self.rng = rng

    def _each(self, method: str, parameters):
        if self.rngs is None:
            return getattr(self.rng, method)(parameters)
        return np.stack([getattr(r, method)(a) for r, a in zip(self.rngs, parameters)])

    def standard_gamma(self, shape: np.ndarray) -> np.ndarray:
        return self._each("standard_gamma", shape)

    def chisquare(self, df: np.ndarray) -> np.ndarray:
        return self._each("chisquare", df)

    def standard_normal(self, size: tuple) -> np.ndarray:
        """Standard normals of ``size`` per chain (the batch axis is added in front)."""
        return self._each("standard_normal", [size] * len(self.rngs) if self.rngs is not None else size)


def _variates(rng) -> ChainVariates:
    return rng if isinstance(rng, ChainVariates) else ChainVariates(rng)


def draw_dirichlet(rng, concentration: np.ndarray) -> np.ndarray:
    """``Dirichlet(concentration)`` draws over the last axis: ``g / sum g``, ``g_k ~ Gamma(concentration_k)``."""
    gamma = _variates(rng).standard_gamma(concentration)
    return gamma / gamma.sum(axis=-1, keepdims=True)


def draw_inverse_wishart(rng, dof: np.ndarray, scale_chol: np.ndarray):
    """Draws ``Sigma_k ~ IW(dof_k, L_k L_k^T)`` by Bartlett: (cov, chol), each (..., K, d, d).

    ``scale_chol`` (..., K, d, d) are the lower Cholesky factors ``L_k`` of
    the scales, ``dof`` (..., K); ``chol`` is the lower Cholesky factor of
    each draw, ``T = L U^{-T}`` with the Bartlett factor ``U`` of the module
    docstring, from ``U T^T = L^T``. That solve is one batched LAPACK call
    (``gesv``: its partial pivoting never swaps the rows of a triangular
    matrix with a positive diagonal, so it is back substitution); scipy's
    ``solve_triangular`` loops over the matrices in Python, which cost
    several times the whole draw at small d.
    """
    *lead, d, _ = scale_chol.shape
    (upper_rows, upper_cols), diag = _bartlett_layout(d)
    variates = _variates(rng)
    U = np.zeros(scale_chol.shape)
    U[..., upper_rows, upper_cols] = variates.standard_normal((lead[-1], upper_rows.size))
    U[..., diag, diag] = np.sqrt(variates.chisquare(np.asarray(dof, dtype=np.float64)[..., None] - d + 1 + diag))
    chol = np.linalg.solve(U, scale_chol.swapaxes(-1, -2)).swapaxes(-1, -2)
    cov = chol @ chol.swapaxes(-1, -2)
    return 0.5 * (cov + cov.swapaxes(-1, -2)), chol  # exactly symmetric


@lru_cache(maxsize=None)
def _bartlett_layout(d: int) -> tuple:
    """Indices of the strict upper triangle and of the diagonal of a d x d matrix (made once per d)."""
    return np.triu_indices(d, 1), np.arange(d)


def _scale_cholesky(psi: np.ndarray) -> np.ndarray:
    """Lower Cholesky factors of posterior scales (..., d, d), SPD by construction (Lambda SPD + B_k PSD)."""
    try:
        return np.linalg.cholesky(psi)
    except np.linalg.LinAlgError as err:
        raise NotPositiveDefiniteError(
            "A Gibbs draw's inverse-Wishart scale (prior scale plus the component's scatter) is not "
            "positive definite: the scatter lost its digits to rounding. Scale the input data.") from err


def draw_inverse_gamma(rng, shape: np.ndarray, rate: np.ndarray) -> np.ndarray:
    """``InvGamma(shape, rate)`` draws (elementwise): ``rate / Gamma(shape, 1)``."""
    return rate / _variates(rng).standard_gamma(shape)


def _outer(a):
    return a[..., :, None] * a[..., None, :]


def posterior_scale(stats: SuffStats, mhat: np.ndarray, hyper: Hyperparameters) -> np.ndarray:
    """The covariance's posterior scale: ``Lambda + B_k`` (full, (..., K, d, d)), ``Lambda + sum_k B_k``
    (tied, (..., d, d)), ``s2_j + B_kjj`` (diag, (..., K, d)), ``s2 + tr B_k`` (spherical, (..., K))."""
    t, kappa, m = hyper.covariance_type, hyper.shrinkage, hyper.mean
    post_n = stats.nk + kappa
    if t == "full":
        return hyper.scale + stats.sxx + kappa * np.outer(m, m) - post_n[..., None, None] * _outer(mhat)
    if t == "tied":
        K = stats.nk.shape[-1]
        return (hyper.scale + stats.sxx + K * kappa * np.outer(m, m)
                - np.einsum("...k,...kd,...ke->...de", post_n, mhat, mhat))
    if t == "diag":
        return hyper.scale + stats.sxx + kappa * m**2 - post_n[..., None] * mhat**2
    return hyper.scale + stats.sxx + kappa * (m @ m) - post_n * np.sum(mhat**2, axis=-1)


def posterior_dof(stats: SuffStats, hyper: Hyperparameters) -> np.ndarray:
    """Degrees of freedom of the covariance's conditional: IW ``nu + n_k`` (full, (..., K)), ``nu + n``
    (tied, (..., 1)); twice the InvGamma shape for diag (..., K, 1) and spherical (..., K)."""
    t, nu, nk = hyper.covariance_type, hyper.dof, stats.nk
    if t == "full":
        return nu + nk
    if t == "tied":
        return np.broadcast_to(np.asarray(nu + stats.weight_sum, dtype=np.float64)[..., None],
                               nk.shape[:-1] + (1,))
    if t == "diag":
        return (nu + nk)[..., None]
    return nu + nk * hyper.n_features


def _draw_full(variates, psi, dof):
    return draw_inverse_wishart(variates, dof, _scale_cholesky(psi))


def _draw_tied(variates, psi, dof):
    cov, chol = draw_inverse_wishart(variates, dof, _scale_cholesky(psi[..., None, :, :]))
    return cov[..., 0, :, :], chol[..., 0, :, :]


def _draw_variances(variates, rate2, dof):
    var = draw_inverse_gamma(variates, 0.5 * dof, 0.5 * rate2)
    return var, np.sqrt(var)


_COVARIANCE_DRAWS = {"full": _draw_full, "tied": _draw_tied, "diag": _draw_variances,
                     "spherical": _draw_variances}


def _mean_noise(variates, chol, covariance_type, shape):
    """``Sigma_k^(1/2) eps_k`` for standard normal ``eps`` (..., K, d), per covariance type."""
    eps = variates.standard_normal(shape)
    if covariance_type == "full":
        return np.einsum("...kij,...kj->...ki", chol, eps)
    if covariance_type == "tied":
        return eps @ chol.swapaxes(-1, -2)
    if covariance_type == "diag":
        return chol * eps
    return chol[..., None] * eps


def draw_parameters(rng, stats: SuffStats, hyper: Hyperparameters,
                    log_noise_density: float | None = None) -> Params:
    """One draw of ``(w, mu, Sigma) | z, X`` from hard-assignment statistics (see the module docstring).

    ``rng`` is one Generator, or one per chain (a list, or a
    :class:`ChainVariates`) for statistics with a leading chain axis: then
    every chain's draw comes from its own stream and the result has the
    chain axis in front. ``hyper`` must be in the frame of the statistics
    (shifted like the rows). A noise model's statistics (K+1 counts, the
    noise's last) give K+1 weights and carry ``log_noise_density``; the
    Gaussians take the other rows.
    """
    variates = _variates(rng)
    t, kappa = hyper.covariance_type, hyper.shrinkage
    gauss = _gaussian_statistics(stats)
    post_n = gauss.nk + kappa
    mhat = (gauss.sx + kappa * hyper.mean) / post_n[..., None]
    weights = draw_dirichlet(variates, hyper.alpha + stats.nk)
    cov, chol = _COVARIANCE_DRAWS[t](variates, posterior_scale(gauss, mhat, hyper), posterior_dof(gauss, hyper))
    means = mhat + _mean_noise(variates, chol, t, mhat.shape[-2:]) / np.sqrt(post_n)[..., None]
    return Params(weights, means, cov, chol, t, log_noise_density)


# --------------------------------------------------------------------------
# Sweeps and chains
# --------------------------------------------------------------------------
class GibbsDraws(NamedTuple):
    """The kept draws of C chains x D sweeps, in the frame of the blocks.

    Attributes
    ----------
    weights : ndarray (C, D, K), or (C, D, K+1) for a noise model (the noise's last)
    means : ndarray (C, D, K, d)
    cov : ndarray (C, D, *compact covariance shape)
        The covariance type's compact form (full (K, d, d), tied (d, d),
        diag (K, d), spherical (K,)).
    log_likelihood : ndarray (C, D)
        ``log p(X | theta)`` of each draw.
    log_prior : ndarray (C, D)
        ``log p(theta)`` of each draw (every normalising constant, as EM's objective).
    """

    weights: np.ndarray
    means: np.ndarray
    cov: np.ndarray
    log_likelihood: np.ndarray
    log_prior: np.ndarray


def _pass(blocks, params: Params, streams: Sequence[ChainStreams], index: int) -> SuffStats:
    """One pass over the rows: every chain's assignments of sweep ``index``, reduced to statistics
    with a leading chain axis (``params`` has one too)."""
    return blocks.sampled_statistics(params, [s.row_uniforms(index) for s in streams])


def sweep(blocks, params: Params, hyper: Hyperparameters, streams: Sequence[ChainStreams],
          index: int) -> tuple[Params, np.ndarray]:
    """Sweep ``index`` of every chain: one pass over the rows draws all chains' assignments.

    ``params`` holds the chains' parameters on a leading axis (C = ``len(streams)``).
    Returns the chains' new parameters (the same layout) and
    ``log p(X | params)`` of the parameters they started from (C,).
    """
    stats = _pass(blocks, params, streams, index)
    new = draw_parameters([s.parameter_rng(index) for s in streams], stats, hyper, params.log_noise_density)
    return new, stats.log_likelihood


def run_chains(blocks, start: Params, hyper: Hyperparameters, streams: Sequence[ChainStreams], tune: int,
               draws: int, on_sweep: Callable[[int], None] | None = None) -> GibbsDraws:
    """Run ``len(streams)`` chains from ``start``: ``tune`` sweeps discarded, then ``draws`` kept.

    ``start`` and ``hyper`` are in the frame of ``blocks`` (shifted like its
    rows). Sweep i computes the log-likelihood of the parameters it starts
    from, i.e. of draw i - 1; one last pass gives that of the last draw, so
    a run makes ``tune + draws + 1`` passes over the rows. ``on_sweep(i)``
    is called after sweep i. The chains advance together: one pass over the
    rows serves all of them, and their parameter draws and prior densities
    are each one batched computation.

    BLAS is held to one thread, as in EM (``core.em_driver``): the GEMMs are
    one row block each and the triangular solves d x d, and waking BLAS
    threads for them costs more than the work (a 2 x 2 solve took 28 ms
    with two OpenBLAS threads on the loaded test machine, 0.09 ms with one).
    """
    C = len(streams)
    K, d = start.means.shape
    weights, means = np.empty((C, draws, start.weights.shape[0])), np.empty((C, draws, K, d))
    cov = np.empty((C, draws) + start.cov.shape)
    log_lik, log_pri = np.empty((C, draws)), np.empty((C, draws))
    params = Params.stack([start] * C)
    with threadpool_limits(limits=1, user_api="blas"):
        for i in range(tune + draws):
            params, ll = sweep(blocks, params, hyper, streams, i)
            if i > tune:
                log_lik[:, i - tune - 1] = ll
            if i >= tune:
                weights[:, i - tune], means[:, i - tune], cov[:, i - tune] = params.weights, params.means, params.cov
                log_pri[:, i - tune] = log_prior(params.weights, params.means, params.cov, params.chol, hyper)
            if on_sweep is not None:
                on_sweep(i)
        log_lik[:, -1] = _pass(blocks, params, streams, tune + draws).log_likelihood
    return GibbsDraws(weights, means, cov, log_lik, log_pri)

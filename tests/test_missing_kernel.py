"""The missing-data E-step kernel: every pattern padded to d features (``core.missing_data``).

References are independent of the kernel: scipy's marginal densities, the
regression and conditional covariance by ``np.linalg.solve`` on the observed
sub-blocks, and the row-by-row missing-data EM step of
``tests/test_missing_values.py`` (``reference_em_step``) at parameters that are
not a fixed point.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from scipy import stats

from conftest import COV_TYPES, full_cov, mixture_data
from gmmflow.core.em_steps import Params, m_step
from gmmflow.core.missing_data import MissingBlocks, pattern_groups, pattern_laws
from test_missing_values import reference_em_step, with_missing

D = 4
ALL_PATTERNS = np.array([m for m in itertools.product([False, True], repeat=D) if any(m)])  # 15 x 4


def random_params(t: str, batch: tuple = (2,), K: int = 3, seed: int = 0) -> Params:
    """Seeded parameters of every covariance type, with leading batch axes."""
    rng = np.random.default_rng(seed)
    A = rng.normal(size=batch + (K, D, D))
    full = A @ A.swapaxes(-1, -2) + 0.5 * np.eye(D)
    cov = {"full": full, "tied": full[..., 0, :, :], "diag": np.diagonal(full, axis1=-2, axis2=-1).copy(),
           "spherical": np.diagonal(full, axis1=-2, axis2=-1).mean(axis=-1)}[t]
    return Params.from_cov(rng.dirichlet(np.ones(K), size=batch), rng.normal(size=batch + (K, D)), cov, t)


@pytest.mark.parametrize("t", COV_TYPES)
def test_pattern_laws_are_the_marginal_and_conditional_gaussians(t):
    """For every pattern of 4 features, batch entry and component: ``whiten`` and ``log_const`` give
    scipy's marginal log-density of the observed values, ``regression`` and ``cond_cov`` are
    ``Sigma_mo Sigma_oo^-1`` and ``Sigma_mm - Sigma_mo Sigma_oo^-1 Sigma_om`` by ``np.linalg.solve``, and
    ``offset`` is ``mu_m - B mu_o`` (0 at the observed features)."""
    params = random_params(t)
    laws = pattern_laws(params, ALL_PATTERNS)
    covs = np.stack([full_cov(params.cov[r], t, 3, D) for r in range(2)])
    x = np.random.default_rng(1).normal(size=(5, D))
    x1 = np.concatenate([x, np.ones((5, 1))], axis=1)
    for g, o in enumerate(ALL_PATTERNS):
        m = ~o
        for r, k in itertools.product(range(2), range(3)):
            S, mu = covs[r, k], params.means[r, k]
            y = laws.whiten[g, r, k] @ x1.T
            ours = laws.log_const[g, r, k] - 0.5 * np.square(y).sum(axis=0)
            np.testing.assert_allclose(ours, stats.multivariate_normal(mu[o], S[np.ix_(o, o)]).logpdf(x[:, o]),
                                       rtol=1e-12)
            B = np.linalg.solve(S[np.ix_(o, o)], S[np.ix_(o, m)]).T
            C = S[np.ix_(m, m)] - B @ S[np.ix_(o, m)]
            np.testing.assert_array_equal(laws.offset[g, r, k][o], 0.0)
            np.testing.assert_allclose(laws.offset[g, r, k][m], mu[m] - B @ mu[o], rtol=1e-12, atol=1e-12)
            if laws.regression is None:  # diag, spherical: nothing to regress on
                np.testing.assert_allclose(laws.cond_cov[g, r, k][m], np.diag(C), rtol=1e-12)
                continue
            A = laws.regression[g, r, k]
            np.testing.assert_array_equal(A[o], np.eye(D)[o])
            np.testing.assert_allclose(A[np.ix_(m, o)], B, rtol=1e-10, atol=1e-12)
            np.testing.assert_array_equal(A[:, m], 0.0)
            np.testing.assert_allclose(laws.cond_cov[g, r, k][np.ix_(m, m)], C, rtol=1e-10, atol=1e-12)
            np.testing.assert_array_equal(laws.cond_cov[g, r, k][o], 0.0)


@pytest.mark.parametrize("t", COV_TYPES)
def test_em_step_at_any_point_is_the_row_by_row_reference(t):
    """At parameters far from the estimate (not a fixed point), gmmflow's E-step followed by its M-step
    is the plain-loop missing-data EM step (responsibilities by scipy, conditional moments by solve),
    MLE and MAP, whatever the blocking (blocks and groups cutting through the patterns)."""
    from gmmflow.core.hyperparameters import Hyperparameters

    X = with_missing(mixture_data(seed=3, n_per=40, d=D, K=3), 0.3, seed=4)[0]
    params = random_params(t, batch=(), seed=5)
    hyper = Hyperparameters(t, 3, alpha=1.5, shrinkage=0.1, mean=np.nanmean(X, axis=0), dof=D + 2.0,
                            scale={"full": np.eye(D), "tied": np.eye(D), "diag": np.ones(D),
                                   "spherical": 1.0}[t])
    for h in (None, hyper):
        w, mu, cov = reference_em_step(X, params.weights, params.means, full_cov(params.cov, t, 3, D), t, h, 1e-6)
        for chunk in (None, 1, 3, 17):
            ours = m_step(MissingBlocks(X, chunk_size=chunk).e_step(params), t, h, 1e-6)
            np.testing.assert_allclose(ours.weights, w, rtol=1e-12)
            np.testing.assert_allclose(ours.means, mu, rtol=1e-11, atol=1e-12)
            np.testing.assert_allclose(ours.cov, cov, rtol=1e-11)


def test_groups_and_blocks_cover_every_row_once():
    """Blocks hold at most ``chunk_size`` rows and groups at most ``chunk_size // d`` patterns; their
    segments tile the sorted rows in order, each inside one pattern."""
    starts = np.array([0, 1, 2, 40, 41, 100, 103, 180])
    for chunk in (1, 4, 8, 39, 500):
        groups = pattern_groups(starts, chunk, D)
        rows = []
        for group in groups:
            assert group.patterns.stop - group.patterns.start <= max(1, chunk // D)
            for block in group.blocks:
                assert 0 < block.stop - block.start <= chunk
                for g, a, b in block.segments:
                    p = group.patterns.start + g
                    assert starts[p] <= a < b <= starts[p + 1]
                    rows += list(range(a, b))
        assert rows == list(range(starts[-1]))


def test_shifted_blocks_share_the_grouping_and_equal_fresh_ones():
    """``with_shift`` reuses the grouping of its data (computed once per data set) and gives the
    statistics of blocks built afresh with that shift; blocks of other data in the same process
    have their own grouping and statistics."""
    X = with_missing(mixture_data(seed=6, n_per=50, d=D, K=3), 0.25, seed=7)[0]
    other = with_missing(mixture_data(seed=8, n_per=50, d=D, K=3), 0.25, seed=9)[0]
    shift = np.nanmean(X, axis=0)
    blocks = MissingBlocks(X, chunk_size=23)
    shifted = blocks.with_shift(shift)
    assert shifted.layout is blocks.layout
    params = random_params("full", seed=10)
    a, b = shifted.e_step(params), MissingBlocks(X, chunk_size=23, shift=shift).e_step(params)
    for field in ("nk", "sx", "sxx", "log_likelihood"):
        np.testing.assert_allclose(getattr(a, field), getattr(b, field), rtol=1e-13, atol=1e-10)
    mine = MissingBlocks(other, chunk_size=23, shift=shift)
    assert mine.layout is not blocks.layout
    np.testing.assert_array_equal(mine.layout.order, MissingBlocks(other).layout.order)
    assert not np.allclose(mine.e_step(params).sx, a.sx)

"""The Gibbs sampler's numerics (core/gibbs.py) against independent references.

- each conditional's density is proportional to the posterior it claims to
  sample from (scipy densities, textbook scatter matrices, no gmmflow code);
- many draws from one conditional have the closed-form moments of its law;
- the assignment draw inverts the cumulative responsibilities exactly (scipy
  responsibilities, the same uniforms), whatever the blocking.
"""

import numpy as np
import pytest
from scipy import stats
from threadpoolctl import threadpool_limits

from conftest import COV_TYPES, full_cov, mixture_data, scipy_log_prior, scipy_log_prob
from gmmflow.core.dask_blocks import DaskBlocks
from gmmflow.core.em_steps import Params, statistics_from_responsibilities
from gmmflow.core.assignment_draws import ChainStreams, RowUniforms, draw_components, hard_assignment_statistics
from gmmflow.core.gibbs import draw_parameters, run_chains
from gmmflow.core.prior_density import log_prior
from gmmflow.core.row_blocks import ArrayBlocks
from gmmflow.models.spec import GMM

K, D = 3, 2


def setting(t, empty=False, seed=0):
    """Data, hard assignments (component 2 empty if asked), their statistics and the prior."""
    X = mixture_data(seed=seed, n_per=40, d=D, K=K)
    rng = np.random.default_rng(seed)
    z = rng.integers(K - 1 if empty else K, size=X.shape[0])
    hyper = GMM(K, t).hyperparameters(X.mean(axis=0), np.cov(X.T))
    return X, z, hard_assignment_statistics(X.T.copy(), z, K, t), hyper


def textbook_posterior(X, z, hyper):
    """Per component: n_k, posterior mean mhat_k, and Lambda-free scatter B_k =
    W_k + kappa n_k / (kappa + n_k) (xbar_k - m)(xbar_k - m)^T, from the rows themselves."""
    kappa, m = hyper.shrinkage, hyper.mean
    out = []
    for k in range(K):
        rows = X[z == k]
        n = rows.shape[0]
        xbar = rows.mean(axis=0) if n else m
        W = (rows - xbar).T @ (rows - xbar)
        B = W + kappa * n / (kappa + n) * np.outer(xbar - m, xbar - m)
        out.append((n, (n * xbar + kappa * m) / (n + kappa), B))
    return out


def conditional_law(X, z, hyper, tied_extra_dof=0.0):
    """The conditional's laws as scipy frozen distributions: (Dirichlet, covariance laws, mean precision)."""
    t, nu = hyper.covariance_type, hyper.dof
    post = textbook_posterior(X, z, hyper)
    alpha = np.array([hyper.alpha + n for n, _, _ in post])
    if t == "full":
        cov_laws = [stats.invwishart(df=nu + n, scale=hyper.scale + B) for n, _, B in post]
    elif t == "tied":
        cov_laws = [stats.invwishart(df=nu + X.shape[0] + tied_extra_dof,
                                     scale=hyper.scale + sum(B for _, _, B in post))]
    elif t == "diag":
        cov_laws = [stats.invgamma(a=(nu + n) / 2, scale=(hyper.scale + np.diag(B)) / 2) for n, _, B in post]
    else:
        cov_laws = [stats.invgamma(a=(nu + n * D) / 2, scale=(hyper.scale + np.trace(B)) / 2) for n, _, B in post]
    return stats.dirichlet(alpha), cov_laws, post


def log_conditional(w, mu, cov, X, z, hyper, **kw):
    dirichlet, cov_laws, post = conditional_law(X, z, hyper, **kw)
    t = hyper.covariance_type
    covs = full_cov(cov, t, K, D)
    out = dirichlet.logpdf(w)
    out += sum(stats.multivariate_normal(mhat, c / (n + hyper.shrinkage)).logpdf(m)
               for (n, mhat, _), c, m in zip(post, covs, mu))
    if t in ("full", "tied"):
        out += sum(law.logpdf(c) for law, c in zip(cov_laws, cov if t == "full" else [cov]))
    else:
        out += sum(np.sum(law.logpdf(c)) for law, c in zip(cov_laws, cov))
    return out


def log_target(w, mu, cov, X, z, hyper):
    """log p(theta) + log p(z, X | theta) by scipy (conftest's references)."""
    t = hyper.covariance_type
    log_joint = scipy_log_prob(X, w, mu, full_cov(cov, t, K, D))
    return scipy_log_prior(w, mu, cov, t, hyper) + log_joint[np.arange(X.shape[0]), z].sum()


@pytest.mark.parametrize("empty", [False, True])
@pytest.mark.parametrize("t", COV_TYPES)
def test_conditional_density_is_proportional_to_the_posterior(t, empty):
    """log q(theta) - log p(theta, z, X) is the same at every theta: q is the posterior given z.

    Exact identity, checked to rounding (1e-8 absolute on log densities of order 1e2).
    """
    X, z, suff, hyper = setting(t, empty)
    rng = np.random.default_rng(1)
    points = [draw_parameters(rng, suff, hyper) for _ in range(6)]
    gaps = [log_target(p.weights, p.means, p.cov, X, z, hyper) - log_conditional(p.weights, p.means, p.cov, X, z,
                                                                                 hyper) for p in points]
    assert np.ptp(gaps) < 1e-8, gaps
    if t == "tied":
        # the test has power: the conditional given the means (nu + n + K) is not the collapsed one
        wrong = [log_target(p.weights, p.means, p.cov, X, z, hyper)
                 - log_conditional(p.weights, p.means, p.cov, X, z, hyper, tied_extra_dof=K) for p in points]
        assert np.ptp(wrong) > 1e-3


def inverse_wishart_moments(df, scale):
    """Mean and entrywise variance of IW(df, scale) (Press 1982; p = dimension)."""
    p = scale.shape[0]
    mean = scale / (df - p - 1)
    diag = np.diag(scale)
    var = ((df - p + 1) * scale**2 + (df - p - 1) * np.outer(diag, diag)) / (
        (df - p) * (df - p - 1) ** 2 * (df - p - 3))
    return mean, var


def inverse_gamma_moments(a, b):
    return b / (a - 1), b**2 / ((a - 1) ** 2 * (a - 2))


def z_of_mean(draws, mean, var):
    return (draws.mean(axis=0) - mean) / np.sqrt(var / draws.shape[0])


def z_of_variance(draws, var):
    """(sample variance - var) / its standard error, estimated from the draws' fourth moment."""
    centred = draws - draws.mean(axis=0)
    m4 = np.mean(centred**4, axis=0)
    s2 = centred.var(axis=0, ddof=1)
    return (s2 - var) / np.sqrt((m4 - s2**2) / draws.shape[0])


N_DRAWS = 4000
Z_MAX = 4.5  # two-sided 6.8e-6 per check; about 100 checks over the four types: family-wise < 1e-3


@pytest.mark.parametrize("t", COV_TYPES)
def test_conditional_draws_have_the_closed_form_moments(t):
    """4000 draws of (w, mu, Sigma) | z: means and variances against the conditional's closed forms.

    Fails with probability < 1e-3 (all four types together) if the draws have the stated law.
    """
    # every component holds about 40 rows: an empty one would draw from the prior, whose dof (d + 2) leaves
    # the inverse-Wishart without a variance (its law is checked by the proportionality test above)
    X, z, suff, hyper = setting(t, seed=2)
    dirichlet, cov_laws, post = conditional_law(X, z, hyper)
    rng = np.random.default_rng(3)
    with threadpool_limits(limits=1, user_api="blas"):  # as run_chains does: d x d solves
        draws = [draw_parameters(rng, suff, hyper) for _ in range(N_DRAWS)]
    w = np.array([p.weights for p in draws])
    mu = np.array([p.means for p in draws])
    cov = np.array([p.cov for p in draws])
    chol = np.array([p.chol for p in draws])
    checks = [z_of_mean(w, dirichlet.mean(), dirichlet.var())]
    if t in ("full", "tied"):
        laws = [(law.df, law.scale) for law in cov_laws]
        for k, (df, scale) in enumerate(laws):
            mean, var = inverse_wishart_moments(df, scale)
            checks.append(z_of_mean(cov[:, k] if t == "full" else cov, mean, var))
        np.testing.assert_allclose(chol @ np.swapaxes(chol, -1, -2), cov, rtol=1e-12)
        assert np.all(np.triu(chol, 1) == 0) and np.all(np.diagonal(chol, axis1=-2, axis2=-1) > 0)
        # Bartlett's draw has the exact marginal Sigma_00 ~ InvGamma((df - d + 1)/2, scale_00/2)
        df, scale = laws[0]
        marginal = stats.invgamma(a=(df - D + 1) / 2, scale=scale[0, 0] / 2)
        assert stats.kstest(cov[:, 0, 0, 0] if t == "full" else cov[:, 0, 0], marginal.cdf).pvalue > 1e-4
        cov_means = np.array([inverse_wishart_moments(df, scale)[0] for df, scale in laws])
    else:
        b = np.array([law.kwds["scale"] for law in cov_laws])
        a = np.array([law.kwds["a"] for law in cov_laws]).reshape((K,) + (1,) * (b.ndim - 1))
        mean, var = inverse_gamma_moments(a, b)
        checks.append(z_of_mean(cov, mean, var))
        np.testing.assert_allclose(chol**2, cov, rtol=1e-12)
        cov_means = mean
    # mu_k | z: mean mhat_k, covariance E[Sigma_k] / (n_k + kappa)
    mean_variances = {"full": lambda c: np.diagonal(c, axis1=1, axis2=2), "tied": lambda c: np.diag(c[0])[None],
                      "diag": lambda c: c, "spherical": lambda c: c[:, None]}[t](cov_means)
    mu_var = np.broadcast_to(mean_variances, (K, D)) / np.array([n + hyper.shrinkage for n, _, _ in post])[:, None]
    checks.append(z_of_mean(mu, np.array([mhat for _, mhat, _ in post]), mu_var))
    checks.append(z_of_variance(mu.reshape(N_DRAWS, -1), mu_var.ravel()))
    worst = max(float(np.max(np.abs(c))) for c in checks)
    assert worst < Z_MAX, worst


def test_components_invert_the_cumulative_probabilities():
    joint = np.array([[1.0, 0.0, 2.0], [2.0, 1.0, 0.0], [3.0, 0.0, 2.0]])  # rows: components; columns: rows
    total = joint.sum(axis=0)
    # column 0: P = 1/6, 2/6, 3/6; column 1: only component 1; column 2: components 0 and 2, 1/2 each
    u = np.array([0.0, 0.16, 1 / 6, 0.49, 0.5, 0.999999])
    z = np.array([draw_components(np.repeat(joint[:, [j]], u.size, axis=1), np.full(u.size, total[j]), u)
                  for j in range(3)])
    np.testing.assert_array_equal(z[0], [0, 0, 1, 1, 2, 2])
    np.testing.assert_array_equal(z[1], [1] * 6)  # zero-probability components never drawn, even at u = 0
    np.testing.assert_array_equal(z[2], [0, 0, 0, 0, 2, 2])


def test_row_uniforms_do_not_depend_on_the_split():
    u = RowUniforms((7, 11), 3)
    whole = u(0, 1000)
    np.testing.assert_array_equal(np.concatenate([u(0, 7), u(7, 130), u(130, 131), u(131, 1000)]), whole)
    assert np.all((whole >= 0) & (whole < 1))
    assert not np.array_equal(RowUniforms((7, 11), 4)(0, 1000), whole)  # another sweep
    assert not np.array_equal(RowUniforms((7, 12), 3)(0, 1000), whole)  # another chain
    # another purpose: the parameter stream of the same chain and sweep is not the row stream
    assert not np.array_equal(ChainStreams((7, 11)).parameter_rng(3).random(1000), whole)


@pytest.mark.parametrize("t", COV_TYPES)
def test_hard_statistics_equal_one_hot_responsibilities(t):
    X, z, suff, _ = setting(t, empty=True)
    onehot = np.zeros((K, X.shape[0]))
    onehot[z, np.arange(X.shape[0])] = 1.0
    ref = statistics_from_responsibilities(X.T.copy(), onehot, t)
    np.testing.assert_array_equal(suff.nk, ref.nk)
    assert suff.nk[2] == 0
    for name in ("sx", "sxx"):
        np.testing.assert_allclose(getattr(suff, name), getattr(ref, name), rtol=1e-12, atol=1e-12)
    assert suff.weight_sum == ref.weight_sum


def reference_assignments(X, params: Params, uniforms):
    """Components by scipy densities and inverse-CDF sampling with the given uniforms."""
    t = params.covariance_type
    lp = scipy_log_prob(X, params.weights, params.means, full_cov(params.cov, t, K, X.shape[1]))
    p = np.exp(lp - lp.max(axis=1, keepdims=True))
    cdf = np.cumsum(p / p.sum(axis=1, keepdims=True), axis=1)
    return np.minimum((cdf < uniforms[:, None]).sum(axis=1), K - 1)


def start_params(t, X):
    rng = np.random.default_rng(5)
    cov = full_cov(np.cov(X.T), "tied", K, X.shape[1]) * 0.3
    compact = {"full": cov, "tied": cov[0], "diag": np.diagonal(cov, axis1=1, axis2=2).copy(),
               "spherical": cov[:, 0, 0].copy()}[t]
    return Params.from_cov(np.array([0.2, 0.3, 0.5]), X[rng.choice(X.shape[0], K, replace=False)], compact, t)


@pytest.mark.parametrize("t", COV_TYPES)
def test_assignment_pass_draws_from_the_responsibilities_whatever_the_blocking(t):
    """Rows' components equal scipy's inverse-CDF draws at the same uniforms; the statistics do not
    depend on block size, thread count or dask chunking (counts exactly, sums to rounding)."""
    X = mixture_data(seed=4, n_per=150, d=3, K=K)
    params = start_params(t, X)
    u = RowUniforms((3, 5), 0)
    z = reference_assignments(X, params, u(0, X.shape[0]))
    want = hard_assignment_statistics(X.T.copy(), z, K, t)
    extra = ArrayBlocks(X, chunk_size=100).sampled_statistics(Params.stack([params, params]), [RowUniforms((1, 1), 0), u]).take(1)
    assert_sampled_statistics_equal(X, params, u, want, [extra])


def assert_sampled_statistics_equal(X, params, u, want, extra=()):
    """The sampled statistics of ``X`` under ``params`` and uniforms ``u`` equal ``want`` in memory
    (one block, 37-row blocks on 2 threads) and on dask (50- and 173-row chunks), and in ``extra``."""
    got = [ArrayBlocks(X).sampled_statistics(Params.stack([params]), [u]).take(0),
           ArrayBlocks(X, chunk_size=37, n_threads=2).sampled_statistics(Params.stack([params]), [u]).take(0), *extra]
    da = pytest.importorskip("dask.array")
    got += [DaskBlocks(da.from_array(X, chunks=(c, X.shape[1])), inner_chunk=64).sampled_statistics(Params.stack([params]), [u]).take(0)
            for c in (50, 173)]
    for s in got:
        np.testing.assert_array_equal(s.nk, want.nk)
        np.testing.assert_allclose(s.sx, want.sx, rtol=1e-12, atol=1e-10)
        np.testing.assert_allclose(s.sxx, want.sxx, rtol=1e-12, atol=1e-10)
        np.testing.assert_allclose(s.log_likelihood, ArrayBlocks(X).e_step(params).log_likelihood, rtol=1e-12)


def test_chains_record_each_draws_log_likelihood_and_prior():
    X = mixture_data(seed=6, n_per=60, d=2, K=K)
    blocks = ArrayBlocks(X, chunk_size=50)
    hyper = GMM(K).hyperparameters(X.mean(axis=0), np.cov(X.T))
    out = run_chains(blocks, start_params("full", X), hyper, ChainStreams.spawn(np.random.SeedSequence(0), 2),
                     tune=3, draws=4)
    assert out.means.shape == (2, 4, K, 2) and out.cov.shape == (2, 4, K, 2, 2)
    for c in range(2):
        for j in range(4):
            p = Params.from_cov(out.weights[c, j], out.means[c, j], out.cov[c, j], "full")
            np.testing.assert_allclose(out.log_likelihood[c, j], blocks.e_step(p).log_likelihood, rtol=1e-12)
            np.testing.assert_allclose(out.log_prior[c, j], log_prior(p.weights, p.means, p.cov, p.chol, hyper),
                                       rtol=1e-12)
    assert not np.array_equal(out.means[0], out.means[1])  # independent streams


@pytest.mark.parametrize("noise", [False, True])
@pytest.mark.parametrize("t", COV_TYPES)
def test_chains_share_one_pass_and_one_batched_draw(t, noise):
    """C chains drawn together equal each chain drawn alone: the hard-assignment statistics of one
    sort over (chain, component) equal each chain's own (counts exactly), and the batched parameter
    draw with one Generator per chain equals each Generator's unbatched draw (same variates, in the
    same order from each stream; to rounding)."""
    X = mixture_data(seed=7, n_per=50, d=3, K=K)
    classes = K + noise
    Z = np.random.default_rng(8).integers(classes, size=(4, X.shape[0]))
    Z[2] = 0  # a chain with empty components
    XT = X.T.copy()
    together = hard_assignment_statistics(XT, Z, classes, t, np.arange(4.0), noise=noise)
    hyper = GMM(K, t, noise=noise).hyperparameters(X.mean(axis=0), np.cov(X.T))
    drawn = draw_parameters([np.random.default_rng(c) for c in range(4)], together, hyper)
    for c in range(4):
        alone = hard_assignment_statistics(XT, Z[c], classes, t, float(c), noise=noise)
        got = together.take(c)
        np.testing.assert_array_equal(got.nk, alone.nk)
        for field in ("sx", "sxx", "log_likelihood"):
            np.testing.assert_allclose(getattr(got, field), getattr(alone, field), rtol=1e-13, atol=1e-12)
        want = draw_parameters(np.random.default_rng(c), alone, hyper)
        for field in ("weights", "means", "cov", "chol"):
            np.testing.assert_allclose(getattr(drawn, field)[c], getattr(want, field), rtol=1e-12, atol=1e-13)

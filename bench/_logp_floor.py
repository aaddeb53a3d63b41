"""The floor of issue 11: the GMM's log-density and its gradient in plain numpy (full covariance).

Copied from phase 1 (branch ``nuts-bench``). ``floor_logp_grad`` evaluates, on the
unconstrained vector NUTS samples, the same target as gmmflow's PyMC model
(``GMM(K, "full")``, conjugate prior, Jacobians included) with a hand-derived
gradient; ``bench/mcmc_backends.py`` checks it against the PyMC model's own
log-density before timing it.
"""

from __future__ import annotations


def floor_logp_grad(theta, X, K, alpha, nu, scale_chol, mean, kappa):
    """log p(theta | X) on the unconstrained vector NUTS samples (jacobian included) and its
    gradient, in plain numpy. theta = [y (K-1) simplex coordinates | v (K, d(d+1)/2)
    log-Cholesky of each Sigma_k | mu (K, d)], the layout of gmmflow's PyMC model.

    Gradient by hand: with L_k from v_k, P_k = L_k^{-1}, z_ik = P_k (x_i - mu_k),
    r_ik the responsibilities, every quadratic term -c/2 |P_k e|^2 has dL-gradient
    c P_k^T (P_k e)(P_k e)^T (lower triangle), every log L_ii term is linear in v_ii.
    """
    import numpy as np
    from scipy.linalg import solve_triangular
    from scipy.special import gammaln

    n, d = X.shape
    m = d * (d + 1) // 2
    rows, cols = np.tril_indices(d)
    diag_pos = np.array([i * (i + 1) // 2 + i for i in range(d)])
    y = theta[:K - 1]
    v = theta[K - 1:K - 1 + K * m].reshape(K, m)
    mu = theta[K - 1 + K * m:].reshape(K, d)

    # weights: w = softmax([y, -sum y])
    u = np.concatenate([y, [-y.sum()]])
    e = np.exp(u - u.max())
    w = e / e.sum()
    logw = np.log(w)

    L = np.zeros((K, d, d))
    L[:, rows, cols] = v
    L[:, np.arange(d), np.arange(d)] = np.exp(v[:, diag_pos])
    logdiag = v[:, diag_pos]                                          # (K, d) = log L_ii
    P = np.stack([solve_triangular(L[k], np.eye(d), lower=True) for k in range(K)])

    # likelihood: per component one (n, d) x (d, d) matmul on contiguous arrays
    b = np.einsum("kij,kj->ki", P, mu)
    Zs = [X @ P[k].T - b[k] for k in range(K)]                        # z_ik, (n, d) each
    a = np.empty((n, K))
    const = logw - logdiag.sum(1) - 0.5 * d * np.log(2 * np.pi)
    for k in range(K):
        a[:, k] = const[k] - 0.5 * np.einsum("ij,ij->i", Zs[k], Zs[k])
    amax = a.max(1, keepdims=True)
    s = np.exp(a - amax)
    tot = s.sum(1, keepdims=True)
    loglik = float(np.sum(np.log(tot)) + np.sum(amax))
    R = s / tot                                                       # (n, K)
    Nk = R.sum(0)

    # priors (jacobian included)
    lp = loglik
    lp += gammaln(K * alpha) - K * gammaln(alpha) + (alpha - 1) * logw.sum()
    ssum = y.sum()
    ex = np.concatenate([y + ssum, [0.0]])
    exm = ex.max()
    lse = exm + np.log(np.exp(ex - exm).sum())
    lp += np.log(K) + K * ssum - K * lse                               # simplex log-Jacobian
    Q = np.einsum("kij,kj->ki", P, mu - mean)                          # (K, d)
    lp += np.sum(-0.5 * kappa * np.sum(Q * Q, 1) - logdiag.sum(1) + 0.5 * d * np.log(kappa)
                 - 0.5 * d * np.log(2 * np.pi))
    PB = P @ scale_chol                                                # (K, d, d)
    log_det_scale = 2 * np.sum(np.log(np.diag(scale_chol)))
    log_mgamma = d * (d - 1) / 4 * np.log(np.pi) + np.sum(gammaln(nu / 2 - np.arange(d) / 2))
    lp += np.sum(nu / 2 * log_det_scale - nu * d / 2 * np.log(2.0) - log_mgamma
                 - (nu + d + 1) * logdiag.sum(1) - 0.5 * np.sum(PB * PB, axis=(1, 2)))
    jw = np.array([d - i + 1 for i in range(d)], dtype=float)
    lp += np.sum(d * np.log(2.0) + logdiag @ jw)                      # log|dSigma/dv|

    # ---- gradient
    # weights: d/du_j of sum_k c_k log w_k = c_j - w_j sum c ; c = (alpha - 1) + N_k
    c = (alpha - 1) + Nk
    gu = c - w * c.sum()
    gy = gu[:-1] - gu[-1]
    soft = np.exp(ex - lse)
    gy += K - K * (soft[:-1] + 1.0 - soft[-1])
    # mu: likelihood sum_i r_ik P^T z_ik ; prior -kappa P^T q
    Rt = np.ascontiguousarray(R.T)
    RZ = np.stack([Rt[k] @ Zs[k] for k in range(K)])
    gmu = np.einsum("kji,kj->ki", P, RZ - kappa * Q)
    # L: P^T (S_lik + kappa q q^T + PB PB^T), lower triangle, then v
    gv = np.empty((K, m))
    for k in range(K):
        Zk = Zs[k]
        S = (Zk * Rt[k][:, None]).T @ Zk + kappa * np.outer(Q[k], Q[k]) + PB[k] @ PB[k].T
        G = P[k].T @ S
        lin = -Nk[k] - 1.0 - (nu + d + 1) + jw                         # coefficients of log L_ii
        gk = G[rows, cols].copy()
        gk[diag_pos] = np.diag(G) * np.exp(logdiag[k]) + lin
        gv[k] = gk
    grad = np.concatenate([gy, gv.ravel(), gmu.ravel()])
    return lp, grad


def simulated(n, d, K, seed=0):
    """Well-separated K-component data: means 6 sd apart on a simplex-ish layout."""
    import numpy as np

    rng = np.random.default_rng(seed)
    means = 6.0 * np.eye(K, d) if K <= d else rng.normal(0, 6, (K, d))
    A = rng.normal(size=(K, d, d)) * 0.3 + np.eye(d)
    covs = A @ A.transpose(0, 2, 1)
    z = rng.integers(K, size=n)
    X = means[z] + np.einsum("nij,nj->ni", np.linalg.cholesky(covs)[z], rng.standard_normal((n, d)))
    return X, means, covs

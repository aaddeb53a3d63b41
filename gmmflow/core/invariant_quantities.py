"""Label-invariant scalar summaries of mixture parameters, for calibration ranks.

A mixture's posterior is symmetric under permuting its components, so a
calibration rank is only meaningful for a quantity that does not depend on
the labels. For parameters ``(w, mu, Sigma)`` of K components in d
dimensions, data ``X`` (n, d) and fixed points ``P`` (m, d):

- ``w (j)``: the weights sorted ascending, j = 1..K;
- ``mu[f] (j)``: the means' coordinate f sorted ascending, j = 1..K, for each
  feature f (sorting each feature on its own is still invariant);
- ``log_likelihood``: ``sum_i log sum_k w_k N(x_i | mu_k, Sigma_k)``;
- ``log_density[p]``: ``log sum_k w_k N(p | mu_k, Sigma_k)`` at each fixed point;
- ``assignment_entropy``: ``-(1/n) sum_i sum_k r_ik log r_ik``, the mean entropy
  of the assignment probabilities ``r_ik = p(z_i = k | x_i, theta)``, in nats.

Each is a symmetric function of the K component triples, hence
label-invariant; the densities come from ``em_steps.log_resp_and_norm``
(Cholesky factors, logsumexp), vectorised over a leading axis of draws.
"""

from __future__ import annotations

import numpy as np

from gmmflow.core.em_steps import Params, log_resp_and_norm

DRAW_BLOCK = 256  # draws per vectorised block: bounds the (block, K, n) temporaries


def quantity_names(n_components: int, features: list[str], n_points: int) -> list[str]:
    """The names of :func:`invariant_quantities`' columns, in order."""
    sorted_w = [f"w ({j + 1})" for j in range(n_components)]
    sorted_mu = [f"mu[{f}] ({j + 1})" for f in features for j in range(n_components)]
    points = [f"log_density[p{p}]" for p in range(n_points)]
    return sorted_w + sorted_mu + ["log_likelihood"] + points + ["assignment_entropy"]


def _density_block(w, mu, cov, X, points):
    """(log_likelihood, log densities at points (S, m), assignment entropy) of one block of draws."""
    params = Params.from_cov(w, mu, cov, "full", check_symmetric=False)
    log_resp, log_norm = log_resp_and_norm(X.T, np.log(w), mu, params.precision, "full")
    resp = np.exp(log_resp)
    entropy = -np.sum(resp * np.where(resp > 0, log_resp, 0.0), axis=(-2, -1)) / X.shape[0]
    _, log_at_points = log_resp_and_norm(points.T, np.log(w), mu, params.precision, "full")
    return log_norm.sum(axis=-1), log_at_points, entropy


def invariant_quantities(w: np.ndarray, mu: np.ndarray, cov: np.ndarray, X: np.ndarray,
                         points: np.ndarray) -> np.ndarray:
    """The label-invariant quantities (S, Q) of S parameter draws.

    Parameters
    ----------
    w : ndarray (S, K)
    mu : ndarray (S, K, d)
    cov : ndarray (S, K, d, d)
        Full covariance matrices whatever the covariance type.
    X : ndarray (n, d)
        The data the log-likelihood and the assignment entropy are of.
    points : ndarray (m, d)
        The fixed points of the log-densities.

    Returns
    -------
    ndarray (S, K + K d + 1 + m + 1), columns as :func:`quantity_names`.
    """
    S_ = w.shape[0]
    sorted_w = np.sort(w, axis=1)
    sorted_mu = np.sort(mu, axis=1).transpose(0, 2, 1).reshape(S_, -1)  # feature-major, then rank
    blocks = [_density_block(w[a:a + DRAW_BLOCK], mu[a:a + DRAW_BLOCK], cov[a:a + DRAW_BLOCK], X, points)
              for a in range(0, S_, DRAW_BLOCK)]
    loglik, at_points, entropy = (np.concatenate(part) for part in zip(*blocks))
    return np.column_stack([sorted_w, sorted_mu, loglik, at_points, entropy])

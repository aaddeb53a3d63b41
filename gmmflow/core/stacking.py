"""Stacking of non-mixing chains (Yao, Vehtari & Gelman 2022).

When chains stay in different modes their pooled draws are not a posterior
sample, but each chain c still gives a predictive density. With ``lpd[i, c]``
the leave-one-out log predictive density of observation i under chain c
(PSIS-LOO of the chain's own draws), stacking chooses simplex weights

    w* = argmax_{w in simplex} sum_i log sum_c w_c exp(lpd[i, c]),

the combination that predicts held-out points best. The objective is concave
in w (the log of a linear function, summed), so a stationary point on the
simplex is the global maximum. It is maximised over ``w = softmax(z)`` by
L-BFGS with the exact gradient: with ``q_ic = w_c exp(lpd_ic) / sum_c' w_c'
exp(lpd_ic')`` (logsumexp), ``dJ/dw_c = sum_i q_ic / w_c`` and, through the
softmax, ``dJ/dz_c = sum_i q_ic - n w_c``. The stacked ELPD is the objective
at ``w*``.
"""

from __future__ import annotations

import numpy as np
from scipy import optimize
from scipy.special import logsumexp


def stacked_elpd(lpd: np.ndarray, weights: np.ndarray) -> float:
    """``sum_i log sum_c w_c exp(lpd[i, c])`` for ``lpd`` (n, C)."""
    with np.errstate(divide="ignore"):
        return float(logsumexp(lpd + np.log(weights), axis=1).sum())


def _softmax(z: np.ndarray) -> np.ndarray:
    return np.exp(z - logsumexp(z))


def stacking_weights(lpd: np.ndarray) -> np.ndarray:
    """The stacking weights (C,) of pointwise log predictive densities ``lpd`` (n, C)."""
    n, C = lpd.shape

    def negative(z):
        joint = lpd + np.log(_softmax(z))
        norm = logsumexp(joint, axis=1, keepdims=True)
        q = np.exp(joint - norm)
        return -float(norm.sum()), -(q.sum(axis=0) - n * _softmax(z))

    found = optimize.minimize(negative, np.zeros(C), jac=True, method="L-BFGS-B",
                              options={"gtol": 1e-10, "ftol": 1e-15, "maxiter": 10_000})
    return _softmax(found.x)

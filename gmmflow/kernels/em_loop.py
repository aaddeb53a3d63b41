r"""EM for a batch of starts on in-memory rows, compiled by numba.

The twin of :func:`gmmflow.core.em_driver.run_em` with the in-memory E-step of
:class:`gmmflow.core.row_blocks.ArrayBlocks` and the M-step and objective of
:mod:`gmmflow.core.em_steps` and :mod:`gmmflow.core.prior_density`: the same
formulas (derived in ``core.em_steps``' docstring), the same objective
``log p(X | theta) + log p(theta)`` and the same stopping rule
``|f_t - f_{t-1}| <= tol |f_t|`` or ``t = max_iter``. Where numpy advances all
starts together, one vectorised call per step, this loop runs each start to
its end in turn: on small data numpy's cost is its ~170 calls per iteration,
not the arithmetic, and a start that needs many iterations no longer pays them
at full per-call cost. The order of floating-point operations differs from
numpy's (sums over rows in another order, ``exp`` and the factorisations
written out), so the two paths agree to rounding, not bit for bit.

One kernel serves the four covariance types (an integer code: 0 full, 1 tied,
2 diag, 3 spherical), MLE and MAP, the noise component and weights per start.
Inside, every covariance is a (d, d) matrix, one per component (one in all
for tied): diag and spherical keep their variances on the diagonal (a
spherical variance repeated d times) and use only the diagonal. Each
covariance is factored ``Sigma = L L^T`` and whitened by ``P = L^{-T}`` (upper
triangular, ``P P^T = Sigma^{-1}``), so the Mahalanobis distance is
``|P^T (x - mu)|^2`` without a division; ``log|P| = -sum log L_jj``.

E-step, three passes over the rows (rows innermost, so that they vectorise):
the log joint densities ``l_ik = log w_k + log|P_k| - d/2 log 2 pi -
|P_k^T (x_i - mu_k)|^2 / 2`` (a noise model's last row ``log w_0 - log V``);
``top_i = max_k l_ik``, ``e_ik = exp(l_ik - top_i)`` (0 below ``LOG_FLOOR``, as
``core.em_steps``), the row's log-density ``log sum_k e_ik + top_i`` (times its
weight into the log-likelihood) and its weighted responsibilities ``sw_i e_ik /
sum_k e_ik``; their sums ``n_k``, ``s_k``, ``S_k`` (lower triangle; diag and
spherical the diagonal; tied one total weighted by the Gaussian share of each
row). ``exp`` is the loop's own (:func:`_exp_floored`, within one unit in the
last place of the C library's), branch-free so that its pass vectorises: with
the C library's ``exp``, one call per number, the E-step took twice as long.

M-step: ``core.em_steps.m_step`` (``EPS`` added to every ``n_k``), then each
covariance is factored; a pivot that is not positive and finite stops the
start with status 1 (not SPD). An objective that is not finite stops it with
status 2. The caller (``core.em_driver``) turns a status into numpy's own
error by rerunning the batch on the numpy path, so the message is numpy's.

Log prior: the terms that depend on ``theta`` (``(alpha - 1) sum log w``,
``-(nu + d + 1)/2 log|Sigma| - tr(Lambda Sigma^{-1})/2`` for the inverse
Wishart with ``tr(Lambda Sigma^{-1}) = |P^T L_Lambda|_F^2``, ``-(a + 1) log
sigma2 - b / sigma2`` for the inverse gammas, ``-log|Sigma_k|/2 - kappa
|P_k^T (mu_k - m)|^2 / 2`` for the means' normals) plus ``constant``, the sum
of their normalising constants, computed once by the caller
(``core.prior_density.log_prior_constant``).

``numba`` is imported at module import: ``core.em_driver`` imports this module
only when it runs EM on in-memory rows, and takes its numpy loop when the
import fails. Compiled code is cached on disk (``cache=True``) as for
:mod:`gmmflow.kernels.hc_merge`; all arrays are allocated by numpy in
:func:`run_batch` (numba's own constructors are compiled in every process).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, types
from numba.extending import intrinsic

FULL, TIED, DIAG, SPHERICAL = 0, 1, 2, 3
TYPE_CODES = {"full": FULL, "tied": TIED, "diag": DIAG, "spherical": SPHERICAL}
OK, NOT_SPD, NOT_FINITE = 0, 1, 2
EPS = 10 * np.finfo(np.float64).eps  # as core.em_steps.EPS
LOG_FLOOR = -600.0  # as core.em_steps.LOG_FLOOR
LOG_2PI = math.log(2.0 * math.pi)
LOG2E = 1.4426950408889634  # 1 / log(2)
LN2_HI = 6.93145751953125e-1  # log(2) = LN2_HI + LN2_LO (Cephes); LN2_HI has 14 significant bits, so k LN2_HI is exact
LN2_LO = 1.42860682030941723212e-6
INV_FACTORIAL = tuple(1.0 / math.factorial(j) for j in range(14))

_compiled = njit(cache=True, nogil=True, error_model="numpy")
# sums over rows may be reassociated (vectorised): they then differ from numpy's by rounding only
_summing = njit(cache=True, nogil=True, error_model="numpy", fastmath={"reassoc", "contract"})


@_compiled
def _factor(code, C, L, P, log_det_P):  # pragma: no cover - compiled
    """``L`` (lower Cholesky), ``P = L^{-T}`` and ``log|P|`` of every covariance ``C``
    (Kc, d, d); False when a pivot is not positive and finite (not SPD)."""
    d = C.shape[1]
    for c in range(C.shape[0]):
        s = 0.0
        for j in range(d):
            pivot = C[c, j, j]
            if code <= TIED:
                for m in range(j):
                    pivot -= L[c, j, m] * L[c, j, m]
            if not (pivot > 0.0 and pivot < math.inf):
                return False
            root = math.sqrt(pivot)
            L[c, j, j] = root
            P[c, j, j] = 1.0 / root
            s -= math.log(root)
            if code <= TIED:
                for i in range(j + 1, d):
                    v = C[c, i, j]
                    for m in range(j):
                        v -= L[c, i, m] * L[c, j, m]
                    L[c, i, j] = v / root
        log_det_P[c] = s
        if code <= TIED:  # X = L^{-1} by forward substitution, column by column; P = X^T
            for col in range(d):
                for i in range(col + 1, d):
                    v = 0.0
                    for m in range(col, i):
                        v -= L[c, i, m] * P[c, col, m]
                    P[c, col, i] = v / L[c, i, i]
    return True


@_compiled
def _maha(code, P, c, X, i, M, k, diff):  # pragma: no cover - compiled
    """``|P_c^T (X[i] - M[k])|^2`` (diag, spherical: the diagonal of ``P_c`` only)."""
    d = X.shape[1]
    out = 0.0
    if code <= TIED:
        for j in range(d):
            diff[j] = X[i, j] - M[k, j]
        for j in range(d):
            y = 0.0
            for m in range(j + 1):
                y += P[c, m, j] * diff[m]
            out += y * y
    else:
        for j in range(d):
            y = (X[i, j] - M[k, j]) * P[c, j, j]
            out += y * y
    return out


@_compiled
def _log_joint(code, XT, w, M, P, log_det_P, log_noise, J, Y):  # pragma: no cover - compiled
    """``J[k, i] = log w_k + log N(x_i | mu_k, Sigma_k)`` (a noise model's last row
    ``log w_0 - log V``), rows innermost; ``Y`` (n,) is scratch."""
    d, n = XT.shape
    K = M.shape[0]
    for k in range(K):
        c = 0 if code == TIED else k
        for i in range(n):
            J[k, i] = 0.0
        if code <= TIED:  # y_j = sum_{m <= j} P_mj x_m - (P^T mu)_j
            for j in range(d):
                b = 0.0
                for m in range(j + 1):
                    b += P[c, m, j] * M[k, m]
                for i in range(n):
                    Y[i] = -b
                for m in range(j + 1):
                    p = P[c, m, j]
                    for i in range(n):
                        Y[i] += p * XT[m, i]
                for i in range(n):
                    J[k, i] += Y[i] * Y[i]
        else:
            for j in range(d):
                p, mu = P[c, j, j], M[k, j]
                for i in range(n):
                    y = (XT[j, i] - mu) * p
                    J[k, i] += y * y
        base = math.log(w[k]) + log_det_P[c] - 0.5 * d * LOG_2PI
        for i in range(n):
            J[k, i] = base - 0.5 * J[k, i]
    if w.shape[0] > K:
        v = math.log(w[K]) + log_noise
        for i in range(n):
            J[K, i] = v


@intrinsic
def _float_from_bits(typingctx, bits):
    """The float64 whose IEEE 754 bits are the int64 ``bits`` (a bit cast)."""
    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], context.get_value_type(types.float64))
    return types.float64(types.int64), codegen


@_compiled
def _exp_floored(v):  # pragma: no cover - compiled
    """``exp(v)`` for ``v <= 0``, 0 below ``LOG_FLOOR`` (and for -inf), NaN for NaN.

    ``exp(v) = 2^k e^r`` with ``k = round(v / log 2)`` and ``r = v - k log 2``
    (``|r| <= log(2) / 2``, ``log 2`` split in two so that ``k log2_hi`` is exact),
    ``e^r`` by its Taylor polynomial of degree 13 (remainder below ``|r|^14 / 14! <
    5e-18``), ``2^k`` built from its exponent bits. Within 1 unit in the last place
    of the C library's ``exp`` (tested), and branch-free, so that the loops calling
    it run vectorised (the C library's ``exp`` is a call per number: 4x slower).
    """
    x = max(v, LOG_FLOOR)
    k = np.floor(x * LOG2E + 0.5)
    r = (x - k * LN2_HI) - k * LN2_LO
    p = INV_FACTORIAL[13]
    for j in range(12, -1, -1):
        p = p * r + INV_FACTORIAL[j]
    e = p * _float_from_bits((np.int64(k) + 1023) << 52)
    return e if v >= LOG_FLOOR else (0.0 if v < LOG_FLOOR else math.nan)


@_compiled
def _responsibilities(J, sw, T):  # pragma: no cover - compiled
    """``J`` (log joint) becomes the weighted responsibilities ``sw_i r_ik``; returns the
    weighted log-likelihood ``sum_i sw_i log sum_k exp(J[k, i])`` and ``sum_i sw_i``.
    ``T`` (3, n) is scratch: each row's largest ``J``, its sum of ``exp(J - top)``, its scale."""
    K1, n = J.shape
    top, total, scale = T[0], T[1], T[2]
    for i in range(n):
        top[i] = J[0, i]
    for k in range(1, K1):  # a NaN is not the top: exp(NaN - top) makes the row's density NaN
        for i in range(n):
            top[i] = J[k, i] if J[k, i] > top[i] else top[i]
    for i in range(n):
        total[i] = 0.0
    for k in range(K1):
        for i in range(n):
            e = _exp_floored(J[k, i] - top[i])
            J[k, i] = e
            total[i] += e
    ll, total_weight = 0.0, 0.0
    for i in range(n):
        ll += sw[i] * (math.log(total[i]) + top[i])
        total_weight += sw[i]
        scale[i] = sw[i] / total[i]
    for k in range(K1):
        for i in range(n):
            J[k, i] *= scale[i]
    return ll, total_weight


@_summing
def _moments(code, XT, sw, J, K, nk, sx, S, Y):  # pragma: no cover - compiled
    """``n_k``, ``s_k`` and ``S_k`` (lower triangle; diag and spherical the diagonal, tied
    one total weighted by the Gaussian share of each row) from the weighted
    responsibilities ``J``."""
    d, n = XT.shape
    K1 = J.shape[0]
    for k in range(K1):
        nk[k] = 0.0
        for i in range(n):
            nk[k] += J[k, i]
    for k in range(K):
        for j in range(d):
            v = 0.0
            for i in range(n):
                v += J[k, i] * XT[j, i]
            sx[k, j] = v
            for m in range(j + 1 if code == FULL else 0):
                v = 0.0
                for i in range(n):
                    v += J[k, i] * (XT[j, i] * XT[m, i])
                S[k, j, m] = v
            if code >= DIAG:
                v = 0.0
                for i in range(n):
                    v += J[k, i] * (XT[j, i] * XT[j, i])
                S[k, j, j] = v
    if code == TIED:  # weighted by the Gaussian share of the row (without noise: its weight)
        if K1 > K:
            for i in range(n):
                Y[i] = 0.0
            for k in range(K):
                for i in range(n):
                    Y[i] += J[k, i]
        else:
            for i in range(n):
                Y[i] = sw[i]
        for j in range(d):
            for m in range(j + 1):
                v = 0.0
                for i in range(n):
                    v += Y[i] * (XT[j, i] * XT[m, i])
                S[0, j, m] = v


@_compiled
def _e_step(code, XT, sw, w, M, P, log_det_P, log_noise, nk, sx, S, J, Y):  # pragma: no cover - compiled
    """Statistics of all rows into ``nk``, ``sx``, ``S``; returns (log-likelihood, sum of weights).
    ``Y`` (3, n) is scratch."""
    _log_joint(code, XT, w, M, P, log_det_P, log_noise, J, Y[0])
    ll, total_weight = _responsibilities(J, sw, Y)
    _moments(code, XT, sw, J, M.shape[0], nk, sx, S, Y[0])
    return ll, total_weight


@_compiled
def _m_step(code, use_prior, nk, sx, S, total_weight, hyper, m, scale, reg_covar, w, M, C):  # pragma: no cover
    """``core.em_steps.m_step`` into ``w``, ``M``, ``C`` (the lower triangle mirrored)."""
    K, d = M.shape
    K1 = w.shape[0]
    alpha, kappa, nu = hyper[0], hyper[1], hyper[2]
    total = 0.0
    for k in range(K1):
        total += nk[k] + EPS
    for k in range(K1):
        w[k] = (nk[k] + EPS + alpha - 1.0) / (total + K1 * (alpha - 1.0)) if use_prior else (nk[k] + EPS) / total
    if K1 > K:  # the Gaussian statistics' weight sum: the counts without the noise's
        total_weight = 0.0
        for k in range(K):
            total_weight += nk[k]
    for k in range(K):
        for j in range(d):
            M[k, j] = (sx[k, j] + kappa * m[j]) / (nk[k] + kappa) if use_prior else sx[k, j] / (nk[k] + EPS)
    if code == FULL:
        for k in range(K):
            n_k = nk[k] if use_prior else nk[k] + EPS
            for j in range(d):
                for i in range(j + 1):
                    if use_prior:
                        B = S[k, j, i] + kappa * m[j] * m[i] - (n_k + kappa) * (M[k, j] * M[k, i])
                        v = (scale[j, i] + B) / (nu + n_k + d + 2)
                    else:
                        v = S[k, j, i] / n_k - M[k, j] * M[k, i] + (reg_covar if i == j else 0.0)
                    C[k, j, i] = v
                    C[k, i, j] = v
    elif code == TIED:
        n_all = 0.0
        for k in range(K):
            n_all += nk[k] + EPS
        for j in range(d):
            for i in range(j + 1):
                B = S[0, j, i] + (K * kappa * m[j] * m[i] if use_prior else 0.0)
                for k in range(K):
                    B -= ((nk[k] + kappa) if use_prior else (nk[k] + EPS)) * (M[k, j] * M[k, i])
                if use_prior:
                    v = (scale[j, i] + B) / (nu + total_weight + K + d + 1)
                else:
                    v = B / n_all + (reg_covar if i == j else 0.0)
                C[0, j, i] = v
                C[0, i, j] = v
    else:
        for k in range(K):
            n_k = nk[k] if use_prior else nk[k] + EPS
            tr_S, tr_m, tr_mu = 0.0, 0.0, 0.0
            for j in range(d):
                if code == DIAG:
                    if use_prior:
                        B = S[k, j, j] + kappa * m[j] ** 2 - (n_k + kappa) * M[k, j] ** 2
                        C[k, j, j] = (scale[j, j] + B) / (nu + n_k + 3)
                    else:
                        C[k, j, j] = S[k, j, j] / n_k - M[k, j] ** 2 + reg_covar
                tr_S += S[k, j, j]
                tr_m += m[j] ** 2
                tr_mu += M[k, j] ** 2
            if code == SPHERICAL:
                if use_prior:
                    v = (scale[0, 0] + tr_S + kappa * tr_m - (n_k + kappa) * tr_mu) / (nu + (n_k + 1) * d + 2)
                else:
                    v = (tr_S / n_k - tr_mu) / d + reg_covar
                for j in range(d):
                    C[k, j, j] = v


@_compiled
def _log_prior(code, w, M, C, P, log_det_P, hyper, m, scale, scale_chol, constant, diff):  # pragma: no cover
    """The log prior density of ``w``, ``M``, ``C`` (see the module docstring)."""
    K, d = M.shape
    alpha, kappa, nu = hyper[0], hyper[1], hyper[2]
    out = constant
    for k in range(w.shape[0]):
        out += (alpha - 1.0) * math.log(w[k])
    if code <= TIED:  # inverse Wishart: -(nu + d + 1)/2 log|Sigma| - |P^T L_Lambda|_F^2 / 2
        for c in range(C.shape[0]):
            tr = 0.0
            for j in range(d):
                for col in range(j + 1):
                    y = 0.0
                    for i in range(col, j + 1):
                        y += P[c, i, j] * scale_chol[i, col]
                    tr += y * y
            out += (nu + d + 1) * log_det_P[c] - 0.5 * tr
    else:  # inverse gamma per variance (diag) or per component (spherical)
        a = 0.5 * nu
        for k in range(K):
            for j in range(d if code == DIAG else 1):
                out -= (a + 1.0) * math.log(C[k, j, j]) + 0.5 * scale[j, j] / C[k, j, j]
    m2 = m.reshape((1, d))
    for k in range(K):  # the means' normals N(mu_k | m, Sigma_k / kappa)
        c = 0 if code == TIED else k
        out += log_det_P[c] - 0.5 * kappa * _maha(code, P, c, M, k, m2, 0, diff)
    return out


@_compiled
def _em_loop(code, XT, SW, rows, W, M, C, log_noise, use_prior, hyper, m, scale, scale_chol, constant,
             reg_covar, max_iter, tol, trace, parts, ints, L, P, log_det_P, nk, sx, S, J, Y, diff):  # pragma: no cover
    """Every start ``r`` to its end; results in place (see :func:`run_batch`)."""
    for r in range(W.shape[0]):
        w, mu, cov, sw = W[r], M[r], C[r], SW[rows[r]]
        status, converged, it = OK, False, 0
        ll, lp, objective, total_weight = math.nan, math.nan, math.nan, 0.0
        if _factor(code, cov, L, P, log_det_P):
            ll, total_weight = _e_step(code, XT, sw, w, mu, P, log_det_P, log_noise, nk, sx, S, J, Y)
            lp = _log_prior(code, w, mu, cov, P, log_det_P, hyper, m, scale, scale_chol, constant, diff) \
                if use_prior else 0.0
            objective = ll + lp
            trace[r, 0] = objective
        else:
            status = NOT_SPD
        while status == OK and it < max_iter:
            it += 1
            _m_step(code, use_prior, nk, sx, S, total_weight, hyper, m, scale, reg_covar, w, mu, cov)
            if not _factor(code, cov, L, P, log_det_P):
                status = NOT_SPD
                break
            ll, total_weight = _e_step(code, XT, sw, w, mu, P, log_det_P, log_noise, nk, sx, S, J, Y)
            lp = _log_prior(code, w, mu, cov, P, log_det_P, hyper, m, scale, scale_chol, constant, diff) \
                if use_prior else 0.0
            previous, objective = objective, ll + lp
            if not math.isfinite(objective):
                status = NOT_FINITE
                break
            trace[r, it] = objective
            if abs(objective - previous) <= tol * abs(objective):
                converged = True
                break
        parts[r, 0], parts[r, 1] = ll, lp
        ints[r, 0], ints[r, 1], ints[r, 2] = it, converged, status


def run_batch(covariance_type: str, X: np.ndarray, sample_weight: np.ndarray, rows: np.ndarray,
              weights: np.ndarray, means: np.ndarray, cov: np.ndarray, log_noise: float,
              hyper: tuple | None, reg_covar: float, max_iter: int, tol: float) -> dict:
    """EM from each of R starts to its end (convergence, ``max_iter`` or a failure).

    Parameters
    ----------
    covariance_type : {"full", "tied", "diag", "spherical"}
    X : ndarray (n, d)
        The rows, in the frame of the parameters (the blocks' shifted frame).
    sample_weight : ndarray (B, n)
        Rows of weights (ones for an unweighted fit); start r uses row ``rows[r]``.
    rows : ndarray (R,) of int
    weights : ndarray (R, K1)
        K1 = K, or K + 1 for a noise model (the noise's last).
    means : ndarray (R, K, d)
    cov : ndarray (R, Kc, d, d)
        Every covariance as a matrix (Kc = 1 for tied; diag and spherical diagonal).
    log_noise : float
        ``log(1/V)`` of a noise model (unused without one).
    hyper : tuple or None
        MAP: ``(alpha, kappa, nu, mean (d,), scale (d, d), scale_chol (d, d), constant)``
        in the rows' frame, the scale as a matrix (diag: ``diag(s2)``, spherical ``s2 I``),
        ``constant`` the normalising constants of the log prior; None: MLE.
    reg_covar, max_iter, tol : as ``core.em_driver.run_em``.

    Returns
    -------
    dict
        ``weights``, ``means``, ``cov`` (final, same shapes as given), ``trace`` (R,
        max_iter + 1; entries after ``n_iter`` unset), ``log_likelihood``,
        ``log_prior`` (R,), ``n_iter``, ``converged``, ``status`` (R,; 0 ok, 1 a
        covariance not SPD, 2 a non-finite objective; the counts at the stop).
    """
    code = TYPE_CODES[covariance_type]
    R, K, d = means.shape
    Kc = cov.shape[1]
    f = np.ascontiguousarray
    W, M, C = (np.array(a, dtype=np.float64, order="C") for a in (weights, means, cov))
    use_prior = hyper is not None
    if use_prior:
        alpha, kappa, nu, m, scale, scale_chol, constant = hyper
    else:
        alpha, kappa, nu, m, scale, scale_chol, constant = 1.0, 0.0, 0.0, np.zeros(d), np.zeros((d, d)), \
            np.zeros((d, d)), 0.0
    trace = np.full((R, max_iter + 1), np.nan)
    parts = np.empty((R, 2))
    ints = np.zeros((R, 3), dtype=np.int64)
    n = X.shape[0]
    _em_loop(code, f(X.T, dtype=np.float64), f(sample_weight, dtype=np.float64), f(rows, dtype=np.int64), W, M, C,
             float(log_noise), use_prior, np.array([alpha, kappa, nu], dtype=np.float64), f(m, dtype=np.float64),
             f(scale, dtype=np.float64), f(scale_chol, dtype=np.float64), float(constant), float(reg_covar),
             int(max_iter), float(tol), trace, parts, ints, np.zeros((Kc, d, d)), np.zeros((Kc, d, d)),
             np.empty(Kc), np.empty(W.shape[1]), np.empty((K, d)), np.zeros((K, d, d)),
             np.empty((W.shape[1], n)), np.empty((3, n)), np.empty(d))
    return {"weights": W, "means": M, "cov": C, "trace": trace, "log_likelihood": parts[:, 0],
            "log_prior": parts[:, 1], "n_iter": ints[:, 0], "converged": ints[:, 1].astype(bool),
            "status": ints[:, 2]}

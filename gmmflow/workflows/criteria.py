"""Information criteria of an EM fit: BIC, AIC, ICL (lower is better, sklearn's sign).

On the fitted data (``X=None``) they read the stored estimate; for a
weighted fit ``log L = sum_i w_i log p(x_i)`` with the weights rescaled to
sum to ``n_+``, the number of rows of positive weight, which is BIC's ``n``
(so scaling every weight by a constant changes no criterion). With ``X``
they score the estimate on those data, matched to the fitted features by
name when both carry names, else by position (``inputs.alignment``).
"""

from __future__ import annotations

import arviz as az
import numpy as np

from gmmflow import schema as S
from gmmflow.results.from_idata import em_params, sample_weights, stored_responsibilities
from gmmflow.workflows.prediction import fitted_log_resp_and_norm


def _criterion_parts(idata, X):
    model, _, features = em_params(idata)
    if X is None:
        resp = stored_responsibilities(idata)
        if resp is None:
            raise ValueError("This result stores no responsibilities; pass X explicitly.")
        ll = float(idata[S.EM_ESTIMATE]["log_likelihood"])
        sw = sample_weights(idata)
        n = resp.shape[0] if sw is None else np.count_nonzero(sw)
    else:
        log_resp, log_norm = fitted_log_resp_and_norm(idata, X)
        ll, resp, sw, n = float(log_norm.sum()), np.exp(log_resp), None, log_norm.shape[0]
    return model.n_parameters(len(features)), ll, resp, sw, n


def bic(idata: az.InferenceData, X=None) -> float:
    """Bayesian information criterion ``-2 log L + p log n``; lower is better.

    sklearn's sign (mclust reports the negative). ``log L`` is the
    log-likelihood at the EM estimate on ``X`` (default: the fitted data).
    """
    p, ll, _, _, n = _criterion_parts(idata, X)
    return -2.0 * ll + p * np.log(n)


def aic(idata: az.InferenceData, X=None) -> float:
    """Akaike information criterion ``-2 log L + 2 p``; lower is better."""
    p, ll, _, _, _ = _criterion_parts(idata, X)
    return -2.0 * ll + 2.0 * p


def icl(idata: az.InferenceData, X=None) -> float:
    """Integrated completed likelihood (Biernacki et al. 2000); lower is better.

    ``BIC - 2 sum_i log r_{i, c_i}`` with ``c_i`` the hard assignment: BIC
    penalised by the entropy of the classification, so ``ICL >= BIC``.
    """
    p, ll, resp, sw, n = _criterion_parts(idata, X)
    with np.errstate(divide="ignore"):
        log_hard = np.log(resp.max(axis=1))
    ent = log_hard.sum() if sw is None else sw @ log_hard
    return -2.0 * ll + p * np.log(n) - 2.0 * ent

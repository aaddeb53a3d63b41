"""Modes of a multimodal posterior: which chains sit together, and stacking them.

Chains that mix explore the same region; chains stuck in different modes do
not. Two chains are put in the same mode when every label-invariant quantity
(sorted weights, sorted means along each feature, the total log-likelihood)
has a rank-normalised r_hat below ``MODE_RHAT`` over the pair of them, or when
no quantity's chain means lie more than ``MODE_SEPARATION`` pooled
within-chain sds apart; the modes are the connected groups of that relation.

The second condition keeps short runs from splitting one mode: r_hat compares
the chain means with their Monte-Carlo error, and with a few dozen effective
draws per chain it passes 1.1 by chance (its means differ by about
``sqrt(2 / ESS)`` sds). Chains in distinct modes sit in regions that barely
overlap, so some quantity's means differ by several sds; chains of one mode
differ by more than one sd only when a chain has fewer than ~10 effective draws
(then ``diagnose`` flags the ESS anyway). Each EM restart optimum
joins the mode whose draws it sits in: the mode where its largest
standardised distance, ``max_q |v_q - mean_q| / sd_q`` over the same
quantities, is smallest and below ``RESTART_Z`` (otherwise it is an optimum
no chain visited). Stacking (``core.stacking``) weighs the chains by their
leave-one-out predictive densities from the stored pointwise log-likelihood.
"""

from __future__ import annotations

import warnings

import arviz as az
import numpy as np
import pandas as pd
import xarray as xr

from gmmflow import schema as S
from gmmflow.core.stacking import stacked_elpd, stacking_weights

MODE_RHAT = 1.1  # chains whose pair r_hat is below this on every quantity share a mode (Gelman & Rubin's 1.1)
MODE_SEPARATION = 1.0  # ... unless no quantity's chain means are more than 1 pooled within-chain sd apart
RESTART_Z = 4.0  # an EM optimum within 4 posterior sds of a mode's mean on every quantity belongs to it


def _invariant(w: np.ndarray, mu: np.ndarray, loglik: np.ndarray | None) -> np.ndarray:
    """(..., Q): sorted weights, sorted means per feature, and the log-likelihood when given."""
    parts = [np.sort(w, axis=-1), np.sort(mu, axis=-2).reshape(*mu.shape[:-2], -1)]
    if loglik is not None:
        parts.append(loglik[..., None])
    return np.concatenate(parts, axis=-1)


def chain_quantities(idata: az.InferenceData) -> np.ndarray:
    """Label-invariant quantities of every draw, (chain, draw, Q)."""
    post = idata[S.POSTERIOR]
    w = post["w"].transpose(S.CHAIN, S.DRAW, S.COMPONENT).values
    mu = post["mu"].transpose(S.CHAIN, S.DRAW, S.FEATURE, S.COMPONENT).values
    loglik = idata[S.LOG_LIKELIHOOD][S.X].sum(S.OBS).transpose(S.CHAIN, S.DRAW).values \
        if S.has_groups(idata, S.LOG_LIKELIHOOD) else None
    return _invariant(w, np.swapaxes(mu, -1, -2), loglik)


def _pair_rhat(a: np.ndarray, b: np.ndarray) -> float:
    """Largest rank-normalised r_hat over the quantities of two chains (D, Q); constant ones skipped."""
    with np.errstate(divide="ignore", invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        values = [az.rhat(np.stack([a[:, q], b[:, q]])) for q in range(a.shape[1])]
    values = [float(v) for v in values if np.isfinite(v)]
    return max(values) if values else 1.0


def _separation(a: np.ndarray, b: np.ndarray) -> float:
    """Largest distance between two chains' means (D, Q) over the quantities, in pooled within-chain sds
    (``inf`` where a quantity is constant in both chains but differs between them)."""
    gap = np.abs(a.mean(0) - b.mean(0))
    sd = np.sqrt((a.var(0) + b.var(0)) / 2)
    with np.errstate(divide="ignore", invalid="ignore"):
        return float(np.max(np.where(gap > 0, gap / sd, 0.0)))


def _same_mode(a: np.ndarray, b: np.ndarray, rhat_max: float) -> bool:
    return _separation(a, b) <= MODE_SEPARATION or _pair_rhat(a, b) < rhat_max


def group_chains(quantities: np.ndarray, rhat_max: float = MODE_RHAT) -> list[list[int]]:
    """Chains (C, D, Q) grouped into modes: connected components of "pair r_hat below ``rhat_max``, or
    chain means within ``MODE_SEPARATION`` sds"."""
    C = quantities.shape[0]
    parent = list(range(C))

    def root(c):
        while parent[c] != c:
            c = parent[c]
        return c

    for a in range(C):
        for b in range(a + 1, C):
            if root(a) != root(b) and _same_mode(quantities[a], quantities[b], rhat_max):
                parent[root(b)] = root(a)
    groups: dict[int, list[int]] = {}
    for c in range(C):
        groups.setdefault(root(c), []).append(c)
    return sorted(groups.values(), key=lambda g: (-len(g), g))


def _restart_quantities(idata: az.InferenceData) -> tuple[np.ndarray, np.ndarray] | None:
    if not S.has_groups(idata, S.EM_RESTARTS):
        return None
    restarts = idata[S.EM_RESTARTS]
    w = restarts["w"].transpose(S.RESTART, S.COMPONENT).values
    mu = restarts["mu"].transpose(S.RESTART, S.COMPONENT, S.FEATURE).values
    loglik = restarts["log_likelihood"].values if S.has_groups(idata, S.LOG_LIKELIHOOD) else None
    return _invariant(w, mu, loglik), restarts["objective"].values.astype(float)


def find_modes(idata: az.InferenceData) -> pd.DataFrame:
    """The posterior's modes: one row per group of chains, then any EM optimum no chain visited.

    Columns: ``chains`` (the chains' indices), ``share`` (of all draws), ``weights`` (mean sorted
    weights), ``log_likelihood`` (mean over the mode's draws), ``restarts`` (the EM restarts
    whose optimum sits in the mode) and ``em_objective`` (the best of their objectives; NaN when
    none). A row with no chains is an EM optimum the sampler never visited.
    """
    S.require_groups(idata, S.POSTERIOR)
    q = chain_quantities(idata)
    C, D, _ = q.shape
    K = idata[S.POSTERIOR].sizes[S.COMPONENT]
    groups = group_chains(q)
    pooled = [q[g].reshape(-1, q.shape[-1]) for g in groups]
    restarts = _restart_quantities(idata)
    owner = []
    if restarts is not None:
        for v in restarts[0]:
            z = [np.max(np.abs(v - p.mean(0)) / np.where(p.std(0) > 0, p.std(0), np.inf)) for p in pooled]
            owner.append(int(np.argmin(z)) if np.min(z) < RESTART_Z else -1)
    rows = []
    for m, (g, p) in enumerate(zip(groups, pooled)):
        mine = [r for r, o in enumerate(owner) if o == m]
        rows.append({"chains": g, "share": len(g) / C, "weights": p[:, :K].mean(0).round(3).tolist(),
                     "log_likelihood": float(p[:, -1].mean()) if S.has_groups(idata, S.LOG_LIKELIHOOD)
                     else np.nan, "restarts": mine,
                     "em_objective": float(restarts[1][mine].max()) if mine else np.nan})
    unvisited = [r for r, o in enumerate(owner) if o == -1]
    for r in distinct_optima(unvisited, restarts[1] if restarts is not None else None):
        rows.append({"chains": [], "share": 0.0, "weights": np.sort(restarts[0][r[0], :K]).round(3).tolist(),
                     "log_likelihood": np.nan, "restarts": r, "em_objective": float(restarts[1][r].max())})
    return pd.DataFrame(rows).rename_axis("mode")


def distinct_optima(indices: list[int], objectives) -> list[list[int]]:
    """Restarts grouped by objective (equal to 1e-6 relative): one group per distinct optimum, the
    best optimum first, each group's restarts in decreasing objective."""
    groups: list[list[int]] = []
    for r in sorted(indices, key=lambda r: -objectives[r]):
        for g in groups:
            if abs(objectives[g[0]] - objectives[r]) <= 1e-6 * max(1.0, abs(objectives[r])):
                g.append(r)
                break
        else:
            groups.append([r])
    return groups


def describe_modes(modes: pd.DataFrame) -> str:
    """The modes in words: each one's chains, share of draws, weights and EM objective."""
    parts = []
    for m, row in modes.iterrows():
        where = (f"chains {', '.join(map(str, row['chains']))} ({row['share']:.0%} of draws)" if row["chains"]
                 else "no chain (an EM optimum never visited)")
        em = (f", EM objective {row['em_objective']:.2f} (restarts {', '.join(map(str, row['restarts']))})"
              if row['restarts'] else ", no EM restart")
        parts.append(f"mode {m}: {where}, weights {', '.join(f'{w:.2f}' for w in row['weights'])}{em}")
    return "; ".join(parts)


def _loo_pointwise(idata: az.InferenceData, chains: list[int]) -> tuple[np.ndarray, float]:
    """PSIS-LOO pointwise log predictive densities (n,) and ELPD of the draws of ``chains`` pooled."""
    sub = az.InferenceData(**{S.POSTERIOR: idata[S.POSTERIOR].isel({S.CHAIN: chains}),
                              S.LOG_LIKELIHOOD: idata[S.LOG_LIKELIHOOD].isel({S.CHAIN: chains})})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Pareto k warnings: the k values are what they are per chain
        loo = az.loo(sub, pointwise=True)
    return loo.loo_i.values, float(loo.elpd_loo)


def stack_chains(idata: az.InferenceData) -> az.InferenceData:
    """Stacking weights of the chains (Yao, Vehtari & Gelman 2022), recorded in a ``chain_stacking`` group.

    Each chain's PSIS-LOO pointwise log predictive densities (from the stored
    ``log_likelihood``) are combined by :func:`gmmflow.core.stacking.stacking_weights`.

    Returns
    -------
    arviz.InferenceData
        A copy with ``chain_stacking``: ``weight``, ``elpd_loo`` and ``chain_mode`` per chain,
        ``mode_weight`` and ``mode_elpd_loo`` (the mode's chains pooled) per mode; attr
        ``elpd_stacked``, the stacked predictive density's ELPD, to set beside each mode's.
    """
    S.require_groups(idata, S.POSTERIOR, S.LOG_LIKELIHOOD)
    C = idata[S.POSTERIOR].sizes[S.CHAIN]
    per_chain = [_loo_pointwise(idata, [c]) for c in range(C)]
    lpd = np.column_stack([p for p, _ in per_chain])
    weights = stacking_weights(lpd)
    groups = group_chains(chain_quantities(idata))
    mode_of = np.empty(C, dtype=np.int64)
    for m, g in enumerate(groups):
        mode_of[g] = m
    ds = xr.Dataset({
        S.STACKING_WEIGHT: ((S.CHAIN,), weights),
        "elpd_loo": ((S.CHAIN,), np.array([e for _, e in per_chain])),
        "chain_mode": ((S.CHAIN,), mode_of),
        "mode_weight": ((S.MODE,), np.array([weights[g].sum() for g in groups])),
        "mode_elpd_loo": ((S.MODE,), np.array([_loo_pointwise(idata, g)[1] for g in groups])),
    }, coords={S.CHAIN: idata[S.POSTERIOR][S.CHAIN].values, S.MODE: np.arange(len(groups))})
    ds.attrs = {"elpd_stacked": stacked_elpd(lpd, weights)}
    out = idata.copy()
    if S.CHAIN_STACKING in out.groups():
        del out[S.CHAIN_STACKING]
    out.add_groups({S.CHAIN_STACKING: ds})
    return out

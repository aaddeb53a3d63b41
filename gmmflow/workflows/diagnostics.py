"""Sampling diagnostics: one table of checks, and a warning for each failed one."""

from __future__ import annotations

import warnings

import arviz as az
import numpy as np
import pandas as pd

from gmmflow import schema as S
from gmmflow.exceptions import SamplingWarning
from gmmflow.workflows.modes import describe_modes, find_modes

RHAT_MAX, ESS_MIN, MIN_CHAINS = 1.01, 400, 4
INFORMATION = ("draws relabelled",)  # rows that inform (threshold: the number of draws) and cannot fail

ADVICE = {
    "divergences": "divergent transitions: the posterior has regions NUTS cannot explore; "
                   "check the prior or use fewer components",
    "max r_hat": "chains disagree (r_hat above 1.01): run longer or check for multimodality",
    "min ess_bulk": "bulk effective sample size below 400: draw more",
    "min ess_tail": "tail effective sample size below 400: draw more",
    "tree depth saturated": "NUTS hit its maximum tree depth: the posterior is badly scaled",
    "chains": "fewer than 4 chains: r_hat is unreliable",
    "modes": "the chains sit in separate modes of the posterior; combine them with gmmflow.stack_chains or "
             "see gmmflow.find_modes",
}


def _stat(stats, *names):
    for name in names:
        if name in stats:
            return stats[name].values
    return None


def diagnose(idata: az.InferenceData) -> pd.DataFrame:
    """The sampling checks as a table: one row per check with value, threshold, ok.

    r_hat and ESS are computed on the (relabelled) ``w``, ``mu`` and ``cov``
    entries that vary (constant entries, e.g. zero off-diagonals of a diag
    model, are skipped).

    When r_hat fails with two or more chains, the chains are grouped into
    modes (:func:`gmmflow.find_modes`); with more than one mode a ``modes`` row
    (the number of modes, threshold 1) is added, and ``table.attrs["modes"]``
    holds the modes table (each mode's chains, share of draws, weights and
    EM objective) and ``table.attrs["modes_text"]`` the same in words.
    """
    if not isinstance(idata, az.InferenceData) or not S.has_groups(idata, S.POSTERIOR, S.SAMPLE_STATS):
        raise ValueError(f"diagnose needs a gmmflow.sample_posterior result (posterior and sample_stats "
                         f"groups); got {type(idata).__name__}"
                         + (f" with groups {idata.groups()}" if isinstance(idata, az.InferenceData) else "") + ".")
    post, stats = idata[S.POSTERIOR], idata[S.SAMPLE_STATS]
    with np.errstate(divide="ignore", invalid="ignore"):  # constant entries (w with K = 1) have no r_hat
        summary = az.summary(idata, var_names=list(S.PARAMETERS), kind="diagnostics")
    varying = summary.dropna(subset=["r_hat"])
    diverging = _stat(stats, "diverging")
    saturated = _stat(stats, "reached_max_treedepth", "maxdepth_reached")
    n_draws = post.sizes[S.CHAIN] * post.sizes[S.DRAW]
    perm = stats[S.RELABEL_PERMUTATION].values
    permuted = int(np.any(perm != np.arange(perm.shape[-1]), axis=-1).sum())
    rows = [
        ("divergences", int(diverging.sum()) if diverging is not None else 0, 0, "<="),
        ("max r_hat", float(varying["r_hat"].max()), RHAT_MAX, "<="),
        ("min ess_bulk", float(varying["ess_bulk"].min()), ESS_MIN, ">="),
        ("min ess_tail", float(varying["ess_tail"].min()), ESS_MIN, ">="),
        ("tree depth saturated", int(saturated.sum()) if saturated is not None else 0, 0, "<="),
        ("chains", int(post.sizes[S.CHAIN]), MIN_CHAINS, ">="),
        ("draws relabelled", permuted, n_draws, "<="),
    ]
    table = pd.DataFrame(rows, columns=["check", "value", "threshold", "rule"]).set_index("check")
    modes = find_modes(idata) if rows[1][1] > RHAT_MAX and post.sizes[S.CHAIN] >= 2 else None
    if modes is not None and int((modes["share"] > 0).sum()) > 1:
        rows.insert(-1, ("modes", int((modes["share"] > 0).sum()), 1, "<="))
    table = pd.DataFrame(rows, columns=["check", "value", "threshold", "rule"]).set_index("check")
    table["ok"] = [(v <= th) if r == "<=" else (v >= th) for v, th, r in
                   zip(table["value"], table["threshold"], table["rule"])]
    if "modes" in table.index:
        table.attrs["modes"] = modes
        table.attrs["modes_text"] = describe_modes(modes)
    return table


def sampling_status(table: pd.DataFrame) -> str:
    """``"ok"`` or ``"warnings: <failed checks>"`` (the ``sampling_status`` attr)."""
    failed = [name for name, row in table.iterrows() if not row["ok"]]
    return "ok" if not failed else "warnings: " + ", ".join(failed)


def warn_failed_checks(table: pd.DataFrame, stacklevel: int = 3) -> None:
    """One :class:`SamplingWarning` per failed check of :func:`diagnose`, with what to do."""
    for check, row in table.iterrows():
        if check in ADVICE and not row["ok"]:
            detail = f" ({table.attrs['modes_text']})" if check == "modes" else ""
            warnings.warn(f"{check} = {row['value']:.4g} (threshold {row['threshold']}): {ADVICE[check]}{detail}.",
                          SamplingWarning, stacklevel=stacklevel)

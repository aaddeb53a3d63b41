"""EM's point estimate beside the posterior: parameters, assignments, predictive fit.

``compare(idata, kind=...)`` reads a ``sample_posterior`` result (which
carries the EM groups of its start); only EM's leave-one-out refits.

- ``"parameters"``: for every weight, mean, variance and correlation the EM
  MAP, the posterior mean, sd and HDI, whether the MAP lies in the HDI and
  its distance from the posterior mean in posterior sds; with an
  ``em_bootstrap`` group (``gmmflow.bootstrap``) also the EM estimate's
  bootstrap sd and percentile interval of the same probability.
- ``"assignments"``: EM responsibilities against posterior assignment
  probabilities (mean absolute difference, share of hard labels that
  differ, adjusted Rand index).
- ``"predictive"``: EM plug-in log score against the posterior predictive
  log score (lppd) on the data, and out of sample: EM's exact leave-one-out
  (n warm-started refits) against the posterior's PSIS-LOO.
"""

from __future__ import annotations

import warnings

import arviz as az
import numpy as np
import pandas as pd
import xarray as xr
from scipy.special import comb, logsumexp

from gmmflow import defaults
from gmmflow import schema as S
from gmmflow.checks import check_int, check_probability
from gmmflow.results.from_idata import (
    bootstrap_draws,
    em_params,
    hyperparameters_from_idata,
    model_from_idata,
    observed_values,
    pointwise_log_likelihood,
    posterior_assignment,
    stored_responsibilities,
)
from gmmflow.workflows.bootstrap import weighted_refits
from gmmflow.workflows.prediction import log_resp_and_norm

KINDS = ("parameters", "assignments", "predictive")
STATISTICS = ("em", "mean", "sd", "hdi_lower", "hdi_upper", "map_in_hdi", "z")
BOOT_STATISTICS = ("boot_sd", "boot_lower", "boot_upper")  # with an em_bootstrap group
# the groups each kind of comparison reads
NEEDED = {
    "parameters": (S.POSTERIOR, S.EM_ESTIMATE),
    "assignments": (S.POSTERIOR, S.EM_ESTIMATE, S.OBSERVED_DATA, S.POSTERIOR_ASSIGNMENT),
    "predictive": (S.POSTERIOR, S.EM_ESTIMATE, S.OBSERVED_DATA, S.LOG_LIKELIHOOD),
}


def _missing_groups_hint(idata) -> str:
    if S.has_groups(idata, S.POSTERIOR) and not int(idata.attrs.get("observed_data_stored", 1)):
        return ("it was sampled on chunked data too large to keep (attrs observed_data_stored = 0), so it holds "
                "no observed data, pointwise log-likelihood or assignment probabilities; "
                "compare(kind='parameters') needs none of them")
    return "compare needs a gmmflow.sample_posterior result (it holds the posterior and its EM start)"


def comparable(idata, kind: str) -> bool:
    """True when ``idata`` holds what comparison ``kind`` reads."""
    return S.has_groups(idata, *NEEDED[kind])


def check_comparable(idata, kind: str | None = None) -> None:
    """Raise unless ``idata`` holds what comparison ``kind`` reads (every kind when None): a
    posterior, the EM estimate it started from, and the data and pointwise groups the kind uses."""
    if not isinstance(idata, az.InferenceData):
        raise TypeError(f"compare needs an arviz.InferenceData, got {type(idata).__name__}.")
    needed = dict.fromkeys(g for k in ([kind] if kind else KINDS) for g in NEEDED[k])
    S.require_groups(idata, *needed, hint=_missing_groups_hint(idata))
    model_from_idata(idata)


# --------------------------------------------------------------------------
# Parameters
# --------------------------------------------------------------------------
def variances(cov: xr.DataArray) -> xr.DataArray:
    """Diagonals of covariance matrices, over ``feature``."""
    return xr.apply_ufunc(np.diagonal, cov, input_core_dims=[[S.FEATURE, S.FEATURE2]],
                          output_core_dims=[[S.FEATURE]], kwargs={"axis1": -2, "axis2": -1})


def correlations(cov: xr.DataArray) -> xr.DataArray:
    """Correlation matrices of covariance matrices over (``feature``, ``feature2``)."""
    sd = np.sqrt(variances(cov))
    return cov / (sd * sd.rename({S.FEATURE: S.FEATURE2}))


def _parameter_views(ds: xr.Dataset) -> xr.Dataset:
    """Weights, means, variances, correlations of a dataset with ``w``, ``mu``, ``cov``."""
    cov = ds["cov"]
    return xr.Dataset({"w": ds["w"], "mu": ds["mu"], "var": variances(cov), "corr": correlations(cov)})


def _statistics(draws: xr.DataArray, em: xr.DataArray, hdi_prob: float) -> xr.DataArray:
    mean = draws.mean(S.SAMPLE_DIMS)
    sd = draws.std(S.SAMPLE_DIMS, ddof=1)
    hdi = az.hdi(draws.to_dataset(name="v"), hdi_prob=hdi_prob)["v"]
    lower, upper = hdi.sel(hdi="lower", drop=True), hdi.sel(hdi="higher", drop=True)
    inside = ((em >= lower) & (em <= upper)).astype(float)
    with np.errstate(divide="ignore", invalid="ignore"):
        z = (em - mean) / sd
    return _stacked([em, mean, sd, lower, upper, inside, z], STATISTICS)


def _bootstrap_statistics(replicates: xr.DataArray, prob: float) -> xr.DataArray:
    """Bootstrap sd (ddof=1) and equal-tailed percentile interval of mass ``prob``."""
    sd = replicates.std(S.REPLICATE, ddof=1)
    q = replicates.quantile([(1 - prob) / 2, (1 + prob) / 2], dim=S.REPLICATE)
    return _stacked([sd, q.isel(quantile=0), q.isel(quantile=1)], BOOT_STATISTICS)


def _stacked(values: list, names: tuple) -> xr.DataArray:
    return xr.concat([v.drop_vars(["hdi", "quantile"], errors="ignore") for v in values],
                     dim=xr.DataArray(list(names), dims="statistic", name="statistic"))


def compare_parameters(idata: az.InferenceData, *, hdi_prob: float = defaults.INTERVAL_PROB) -> xr.Dataset:
    """The parameter comparison in labelled form: each parameter with a ``statistic`` dim.

    Variables ``w``, ``mu``, ``var``, ``corr`` (every entry, constant ones
    included); ``statistic`` runs over ``em``, ``mean``, ``sd``,
    ``hdi_lower``, ``hdi_upper``, ``map_in_hdi`` (0/1) and ``z``, and, when the
    result holds an ``em_bootstrap`` group, ``boot_sd``, ``boot_lower`` and
    ``boot_upper`` (the equal-tailed percentile interval of mass ``hdi_prob``).
    The flat table of :func:`compare` keeps one row per free parameter.
    """
    hdi_prob = check_probability(hdi_prob, "hdi_prob")
    check_comparable(idata, "parameters")
    posterior = _parameter_views(idata[S.POSTERIOR])
    em = _parameter_views(idata[S.EM_ESTIMATE])
    stats = {name: _statistics(posterior[name], em[name], hdi_prob) for name in posterior}
    if S.has_groups(idata, S.EM_BOOTSTRAP):
        boot = _parameter_views(bootstrap_draws(idata))
        stats = {name: xr.concat([stats[name], _bootstrap_statistics(boot[name], hdi_prob)], dim="statistic")
                 for name in stats}
    return xr.Dataset(stats)


def _kept_entries(name: str, covariance_type: str, n_features: int):
    """Which (component, feature, feature2) entries are free parameters for this type."""
    if name == "corr":
        if covariance_type not in ("full", "tied") or n_features == 1:
            return None
        keep = lambda k, f, g: f < g and (covariance_type == "full" or k == 0)  # noqa: E731
    elif name == "var":
        keep = {"full": lambda k, f: True, "diag": lambda k, f: True,
                "tied": lambda k, f: k == 0, "spherical": lambda k, f: f == 0}[covariance_type]
    else:
        keep = lambda *_: True  # noqa: E731
    return keep


def parameter_table(ds: xr.Dataset, covariance_type: str, hdi_prob: float) -> pd.DataFrame:
    """Flatten :func:`compare_parameters` to one row per free parameter.

    A tied covariance is reported once (under component 0), a spherical
    variance once (under the first feature); constant zero correlations of
    diag/spherical models are left out.
    """
    features = list(ds[S.FEATURE].values)
    pos = {f: i for i, f in enumerate(features)}
    rows = []
    for name in ("w", "mu", "var", "corr"):
        keep = _kept_entries(name, covariance_type, len(features))
        if keep is None:
            continue
        frame = ds[name].to_dataframe().reset_index().pivot_table(
            index=[c for c in (S.COMPONENT, S.FEATURE, S.FEATURE2) if c in ds[name].dims],
            columns="statistic", values=name, dropna=False, sort=False)
        for index, values in frame.iterrows():
            index = index if isinstance(index, tuple) else (index,)
            k, f, g = (list(index) + [None, None])[:3]
            if not keep(*([k] + [pos[x] for x in (f, g) if x is not None])):
                continue
            rows.append({"parameter": name, S.COMPONENT: int(k), S.FEATURE: f, S.FEATURE2: g,
                         **{s: values[s] for s in ds["statistic"].values}})
    table = pd.DataFrame(rows)
    table["map_in_hdi"] = table["map_in_hdi"].astype(bool)
    pct = round(100 * hdi_prob)
    lo, hi = f"{(100 - pct) / 2:g}%", f"{100 - (100 - pct) / 2:g}%"
    return table.rename(columns={"hdi_lower": f"hdi_{lo}", "hdi_upper": f"hdi_{hi}",
                                 "boot_lower": f"boot_{lo}", "boot_upper": f"boot_{hi}"})


def parameter_label(row) -> str:
    """The name of one row of the parameter table: ``w[1]``, ``mu[0, waiting]``, ``corr[0, a, b]``."""
    parts = [str(row[S.COMPONENT])] + [str(row[c]) for c in (S.FEATURE, S.FEATURE2) if pd.notna(row[c])]
    return f"{row['parameter']}[{', '.join(parts)}]"


# --------------------------------------------------------------------------
# Assignments
# --------------------------------------------------------------------------
def adjusted_rand_index(a: np.ndarray, b: np.ndarray) -> float:
    """Adjusted Rand index of two labellings (Hubert & Arabie 1985), 1 for identical partitions."""
    _, ia = np.unique(a, return_inverse=True)
    _, ib = np.unique(b, return_inverse=True)
    table = np.zeros((ia.max() + 1, ib.max() + 1))
    np.add.at(table, (ia, ib), 1)
    pairs = comb(table, 2).sum()
    rows, cols = comb(table.sum(1), 2).sum(), comb(table.sum(0), 2).sum()
    expected = rows * cols / comb(len(a), 2) if len(a) > 1 else 0.0
    maximum = 0.5 * (rows + cols)
    if maximum == expected:  # both partitions trivial (one cluster or all singletons)
        return 1.0
    return float((pairs - expected) / (maximum - expected))


def assignment_comparison(idata: az.InferenceData) -> pd.DataFrame:
    """EM responsibilities vs posterior assignment probabilities: one row, one column per measure."""
    em = _em_responsibilities(idata)
    post = posterior_assignment(idata)
    em_label, post_label = em.argmax(1), post.argmax(1)
    difference = np.abs(em - post)
    return pd.DataFrame({
        "n_obs": em.shape[0],
        "mean_abs_difference": float(difference.mean()),
        "max_abs_difference": float(difference.max()),
        "share_labels_differ": float(np.mean(em_label != post_label)),
        "adjusted_rand_index": adjusted_rand_index(em_label, post_label),
        "em_mean_uncertainty": float(np.mean(1 - em.max(1))),
        "posterior_mean_uncertainty": float(np.mean(1 - post.max(1))),
    }, index=pd.Index(["assignments"], name="comparison"))


def _em_responsibilities(idata) -> np.ndarray:
    stored = stored_responsibilities(idata)
    return stored if stored is not None else np.exp(_em_log_resp_and_norm(idata)[0])


def _em_log_resp_and_norm(idata):
    return log_resp_and_norm(em_params(idata)[1], observed_values(idata))


# --------------------------------------------------------------------------
# Predictive fit
# --------------------------------------------------------------------------
def lppd_pointwise(log_lik: np.ndarray) -> np.ndarray:
    """Posterior predictive log density of each observation: log mean_s p(x_i | theta_s).

    ``log_lik`` is (S, n), draws stacked.
    """
    return logsumexp(log_lik, axis=0) - np.log(log_lik.shape[0])


def em_loo_pointwise(idata: az.InferenceData, max_obs: int = defaults.EM_LOO_MAX_OBS) -> np.ndarray | None:
    """Exact leave-one-out plug-in log scores of EM: ``log p(x_i | theta_MAP(-i))`` for every i.

    Each of the n refits drops one observation (weight 0) and restarts EM
    from the full-data estimate, which sits next to the leave-one-out one,
    so a refit takes a few iterations. The hyper-parameters (and a noise
    model's volume) stay the full data's. The n refits
    advance together as replicates with their own rows of weights
    (``bootstrap.weighted_refits``, one batched E-step for many of them); a
    refit that fails (a covariance collapses) scores NaN. ``None`` above
    ``max_obs`` rows.
    """
    X = observed_values(idata)
    n = X.shape[0]
    if n > max_obs:
        return None
    model, pivot, _ = em_params(idata)

    def leave_one_out(reps):
        W = np.ones((reps.size, n))
        W[np.arange(reps.size), reps] = 0.0
        return W

    fits = weighted_refits(X, leave_one_out, n, model=model, pivot=pivot, hyper=hyperparameters_from_idata(idata),
                           max_iter=defaults.MAX_ITER, tol=defaults.TOL, shift=np.nanmean(X, axis=0))
    return np.array([np.nan if fit is None else log_resp_and_norm(fit.params, X[i: i + 1])[1][0]
                     for i, fit in enumerate(fits)])


def _elpd(pointwise: np.ndarray) -> tuple[float, float]:
    """Sum of pointwise scores and its standard error ``sqrt(n var)``."""
    return float(pointwise.sum()), float(np.sqrt(pointwise.size * pointwise.var(ddof=1)))


def predictive_comparison(idata: az.InferenceData, em_loo_max_obs: int = defaults.EM_LOO_MAX_OBS) -> pd.DataFrame:
    """EM plug-in log score and posterior lppd on the data; EM's exact LOO and the posterior's PSIS-LOO."""
    model = model_from_idata(idata)
    em_pointwise = _em_log_resp_and_norm(idata)[1]
    em_loo = em_loo_pointwise(idata, em_loo_max_obs)
    em_elpd, em_se = _elpd(em_loo) if em_loo is not None else (np.nan, np.nan)
    post_pointwise = lppd_pointwise(pointwise_log_likelihood(idata))
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*Pareto.*")
        loo = az.loo(idata, pointwise=True)
    n, d = em_pointwise.shape[0], len(idata[S.OBSERVED_DATA][S.FEATURE])
    rows = {
        "em_plugin": {"log_score": em_pointwise.sum(), "log_score_per_obs": em_pointwise.sum() / n,
                      "elpd_loo": em_elpd, "elpd_loo_se": em_se, "p_loo": em_pointwise.sum() - em_elpd,
                      "n_pareto_k_above_0.7": np.nan, "n_parameters": model.n_parameters(d)},
        "posterior": {"log_score": post_pointwise.sum(), "log_score_per_obs": post_pointwise.sum() / n,
                      "elpd_loo": float(loo["elpd_loo"]), "elpd_loo_se": float(loo["se"]),
                      "p_loo": float(loo["p_loo"]),
                      "n_pareto_k_above_0.7": int((loo["pareto_k"].values > 0.7).sum()),
                      "n_parameters": model.n_parameters(d)},
    }
    return pd.DataFrame.from_dict(rows, orient="index")


# --------------------------------------------------------------------------
# Public entry point
# --------------------------------------------------------------------------
def compare(idata: az.InferenceData, kind: str = "parameters", *, hdi_prob: float = defaults.INTERVAL_PROB,
            em_loo_max_obs: int = defaults.EM_LOO_MAX_OBS) -> pd.DataFrame:
    """Set the EM estimate beside the posterior of the same model and data, as a table.

    Parameters
    ----------
    idata : arviz.InferenceData
        A :func:`gmmflow.sample_posterior` result (posterior plus its EM start).
    kind : {"parameters", "assignments", "predictive"}
        ``"parameters"``: one row per free parameter (``w``, ``mu``, ``var``,
        ``corr``) with columns ``em`` (the MAP), ``mean``, ``sd`` (ddof=1),
        the HDI bounds (``hdi_3%``, ``hdi_97%`` for 0.94), ``map_in_hdi`` and
        ``z = (em - mean) / sd``; after :func:`gmmflow.bootstrap`, also the EM
        estimate's bootstrap ``boot_sd`` and percentile interval (``boot_3%``,
        ``boot_97%``). (:func:`compare_parameters` gives the same numbers as a
        labelled ``xarray.Dataset``.)
        ``"assignments"``: one row of agreement measures between EM
        responsibilities and posterior assignment probabilities.
        ``"predictive"``: rows ``em_plugin`` and ``posterior``; in-sample
        ``log_score`` (sum over observations of log p(x_i | MAP), resp.
        log mean_s p(x_i | theta_s)) and leave-one-out ``elpd_loo`` with its
        ``se`` and ``p_loo = log_score - elpd_loo``: for the posterior by
        PSIS-LOO (``arviz.loo``, with the count of Pareto k > 0.7), for EM by
        exact refits without each observation (warm-started from the
        estimate, prior pinned; NaN above ``em_loo_max_obs`` rows). The
        posterior's lppd and LOO use the draws the ``log_likelihood`` group
        holds (a Gibbs run on many rows thins them: see ``sample_posterior``).
    hdi_prob : float, default 0.94
    em_loo_max_obs : int, default 2000
        Largest data set on which EM's exact leave-one-out is run (n refits).

    Returns
    -------
    pandas.DataFrame
    """
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {', '.join(map(repr, KINDS))}; got {kind!r}.")
    hdi_prob = check_probability(hdi_prob, "hdi_prob")
    check_comparable(idata, kind)
    if kind == "assignments":
        return assignment_comparison(idata)
    if kind == "predictive":
        return predictive_comparison(idata, check_int(em_loo_max_obs, "em_loo_max_obs", 0))
    ds = compare_parameters(idata, hdi_prob=hdi_prob)
    return parameter_table(ds, model_from_idata(idata).covariance_type, hdi_prob)

"""Posterior sampling: NUTS from the EM estimate, relabelled, in one InferenceData."""

from __future__ import annotations

import dataclasses
import warnings
from importlib.util import find_spec

import arviz as az
import numpy as np
import pandas as pd
import pymc as pm

from gmmflow import io
from gmmflow._validation import as_data_matrix, check_int, check_seed
from gmmflow.core.blocks import ArrayBlocks
from gmmflow.core.em import Params
from gmmflow.core.gaussian import cholesky, compact_covariances, full_covariances, sample_mixture
from gmmflow.core.relabel import apply_permutation, relabel_costs, relabel_permutations
from gmmflow.exceptions import SamplingError, SamplingWarning
from gmmflow.models.pymc_model import covariance_value_name, unconstrained_point_function
from gmmflow.models.spec import GMM
from gmmflow.resources import check_memory, posterior_bytes
from gmmflow.workflows.em import check_model, check_rows, fit_em

SAMPLERS = ("auto", "pymc", "nutpie")
JITTER = 0.05  # sd of the start-point jitter, in the unconstrained space
RHAT_MAX, ESS_MIN, MIN_CHAINS = 1.01, 400, 4


def available_sampler(sampler: str) -> str:
    """Resolve ``"auto"``: nutpie (compiled with numba) if installed, else PyMC's NUTS."""
    if sampler not in SAMPLERS:
        raise ValueError(f"sampler must be one of {', '.join(map(repr, SAMPLERS))}; got {sampler!r}.")
    if sampler == "auto":
        return "nutpie" if find_spec("nutpie") and find_spec("numba") else "pymc"
    if sampler == "nutpie" and not find_spec("nutpie"):
        raise ImportError("sampler='nutpie' needs nutpie (a gmmflow dependency): pip install nutpie, or use "
                          "sampler='pymc'.")
    return sampler


def _em_start(em: az.InferenceData, model: GMM) -> dict:
    """EM estimate as constrained values of the PyMC model's free variables."""
    est = em["em_estimate"]
    t = model.covariance_type
    return {"w": est["w"].values, "mu": est["mu"].values,
            covariance_value_name(t): compact_covariances(est["cov"].values, t)}


def _check_em(em, model: GMM, n_features: int) -> None:
    if not isinstance(em, az.InferenceData) or "em_estimate" not in em.groups():
        raise TypeError("em must be the InferenceData returned by gmmflow.fit_em.")
    if io.model_from_idata(em) != model:
        raise ValueError("em was fitted with a different model spec; refit EM with this model or pass em=None.")
    if io.hyperparameters_from_idata(em) is None:
        raise ValueError("em has no prior (an MLE fit): NUTS needs the prior; fit EM with a prior.")
    if em["em_estimate"].sizes["feature"] != n_features:
        raise ValueError("em was fitted on data with a different number of features than X.")


def _jittered_starts(to_point, start: dict, chains: int, rng) -> list[dict]:
    base = to_point(start)
    return [{k: v + JITTER * rng.standard_normal(np.shape(v)) for k, v in base.items()} for _ in range(chains)]


def _run_pymc(pm_model, start, draws, tune, chains, seed, jitter_rng, progressbar):
    from gmmflow.models.pymc_model import constrained_point_function

    to_values = constrained_point_function(pm_model)
    starts = _jittered_starts(unconstrained_point_function(pm_model), start, chains, jitter_rng)
    initvals = [to_values(p) for p in starts]
    with pm_model:
        return pm.sample(draws=draws, tune=tune, chains=chains, cores=min(chains, 2), init="adapt_diag",
                         initvals=initvals, random_seed=seed, progressbar=progressbar,
                         compute_convergence_checks=False, return_inferencedata=True)


def _run_nutpie(pm_model, start, draws, tune, chains, seed, jitter_rng, progressbar):
    import nutpie

    compiled = nutpie.compile_pymc_model(pm_model, initial_points=start, jitter_rvs=set())
    base = np.asarray(compiled.initial_point_func(0), dtype=np.float64)

    stream = int(jitter_rng.integers(1 << 62))

    def jittered(chain_seed):  # each chain (nutpie passes its seed): the EM point plus seeded jitter
        rng = np.random.default_rng(np.random.SeedSequence([stream, int(chain_seed) % (1 << 63)]))
        return base + JITTER * rng.standard_normal(base.shape)

    compiled = dataclasses.replace(compiled, initial_point_func=jittered)
    return nutpie.sample(compiled, draws=draws, tune=tune, chains=chains, cores=min(chains, 2),
                         seed=seed, progress_bar=progressbar, save_warmup=False)


def _draw_arrays(raw: az.InferenceData, model: GMM, n_features: int):
    """(S, K), (S, K, d), (S, K, d, d) arrays of the raw draws, chains stacked."""
    post = raw["posterior"]
    C, D = post.sizes["chain"], post.sizes["draw"]
    K, t = model.n_components, model.covariance_type
    w = post["w"].values.reshape(C * D, K)
    mu = post["mu"].values.reshape(C * D, K, n_features)
    c = post[covariance_value_name(t)].values
    c = c.reshape(C * D, *c.shape[2:])
    cov = np.stack([full_covariances(ci, t, K, n_features) for ci in c])
    return (C, D), w, mu, cov


def _draw_params(w, mu, cov, t) -> list[Params]:
    """Each draw as core parameters (its Cholesky factors computed once)."""
    return [Params.from_cov(w[s], mu[s], compact_covariances(cov[s], t), t) for s in range(w.shape[0])]


def _pointwise(X, draws: list[Params]):
    """Per draw: pointwise log-likelihood (S, n) and mean responsibilities (n, K)."""
    blocks = ArrayBlocks(X, np.zeros(X.shape[1]))
    loglik = np.empty((len(draws), X.shape[0]))
    resp_sum = np.zeros((X.shape[0], draws[0].weights.shape[0]))
    for s, p in enumerate(draws):
        log_resp, loglik[s] = blocks.log_resp_and_norm(p)
        resp_sum += np.exp(log_resp)
    return loglik, resp_sum / len(draws)


def sample_posterior(
    model: GMM,
    X,
    *,
    em: az.InferenceData | None = None,
    draws: int = 1000,
    tune: int = 1000,
    chains: int = 4,
    sampler: str = "auto",
    seed: int | None = None,
    progressbar: bool = True,
    relabel: bool = True,
    posterior_predictive: bool = False,
    em_kwargs: dict | None = None,
) -> az.InferenceData:
    """Sample the exact posterior of ``model`` given ``X`` with NUTS.

    Runs EM first (unless ``em`` is given), starts every chain at the EM
    estimate plus a small seeded jitter, samples the marginalised model, and
    relabels every draw to the EM estimate (label switching).

    Parameters
    ----------
    model : GMM
        Must have a prior.
    X : array_like (n, d), DataFrame or DataArray
    em : InferenceData, optional
        A ``fit_em`` result of the same model and data (its hyper-parameters are used).
    draws, tune, chains : int
    sampler : {"auto", "pymc", "nutpie"}
        ``"auto"`` is nutpie when installed, else PyMC's NUTS.
    seed : int, optional
        Same seed and backend, same draws.
    progressbar : bool
    relabel : bool, default True
        False keeps the raw draws (``relabel_permutation`` is then the identity).
    posterior_predictive : bool, default False
        Add ``posterior_predictive.x`` (one replicate data set per draw).
    em_kwargs : dict, optional
        Passed to ``fit_em`` when ``em`` is None (default ``n_init=10``).

    Returns
    -------
    arviz.InferenceData
        ``posterior`` (w, mu, cov; relabelled), ``sample_stats`` (with
        ``relabel_permutation``), ``log_likelihood``, ``observed_data``,
        ``posterior_assignment``, the EM groups, and ``posterior_predictive`` if asked.

    Warns
    -----
    SamplingWarning
        Divergences, r_hat > 1.01, bulk/tail ESS < 400, tree depth saturation,
        fewer than 4 chains. The result is still returned, with
        ``attrs["sampling_status"]`` = ``"warnings: <failed checks>"`` (else ``"ok"``).

    Raises
    ------
    SamplingError
        The sampler failed (e.g. could not initialise); ``err.partial`` is the
        EM result, marked ``attrs["sampling_status"] = "failed: ..."``.
    MemoryError
        The draws would not fit in memory (estimated before any work).
    """
    check_model(model)
    if model.prior is None:
        raise ValueError("sample_posterior needs a prior; GMM(..., prior=None) is for the MLE only.")
    data = as_data_matrix(X)  # NaN rejected here, before any PyMC model (which would impute)
    check_rows(data.shape, model)
    draws, chains = check_int(draws, "draws", 1), check_int(chains, "chains", 1)
    tune = check_int(tune, "tune", 0)
    seed = check_seed(seed)
    backend = available_sampler(sampler)
    check_memory(posterior_bytes(*data.shape, model.n_components, chains, draws, posterior_predictive),
                 f"sample_posterior with {chains} chains x {draws} draws on {data.shape[0]} rows",
                 "draw fewer samples, use fewer chains, or thin the data")
    em_seed, jitter_seed, pp_seed = np.random.SeedSequence(seed).spawn(3)
    if em is None:
        em = fit_em(model, data, seed=int(em_seed.generate_state(1)[0]), **({"n_init": 10} | (em_kwargs or {})))
    else:
        _check_em(em, model, data.shape[1])
    hyper = io.hyperparameters_from_idata(em)

    pm_model = model.pymc_model(data, hyperparameters=hyper)
    run = _run_nutpie if backend == "nutpie" else _run_pymc
    try:
        raw = run(pm_model, _em_start(em, model), draws, tune, chains, seed,
                  np.random.default_rng(jitter_seed), progressbar)
    except Exception as err:  # the sampler's own errors vary by backend and version
        reason = " ".join(str(err).split()) or type(err).__name__
        partial = em.copy()
        partial.attrs["sampling_status"] = f"failed: {reason}"
        raise SamplingError(
            f"NUTS ({backend}) failed: {reason}. The EM estimate it was to start from is in "
            "err.partial (attrs['sampling_status'] marks it); check the model and data, or try "
            "sampler='pymc'.", partial=partial) from err

    d, t = data.shape[1], model.covariance_type
    (C, D), w, mu, cov = _draw_arrays(raw, model, d)
    if relabel:
        pivot = io.em_params(em)[1]
        pivot_chol = cholesky(full_covariances(pivot.cov, t, model.n_components, d), "full")
        perm = relabel_permutations(relabel_costs(mu, pivot.means, pivot_chol))
        w, mu, cov = (apply_permutation(a, perm) for a in (w, mu, cov))
    else:
        perm = np.broadcast_to(np.arange(model.n_components), w.shape).copy()
    draw_params = _draw_params(w, mu, cov, t)
    loglik, assignment = _pointwise(data.values, draw_params)
    predictive = None
    if posterior_predictive:
        rng = np.random.default_rng(pp_seed)
        predictive = np.stack([
            sample_mixture(rng, data.shape[0], p.weights, p.means, p.chol, t)[0] for p in draw_params
        ])
    idata = io.posterior_inference_data(
        model=model, data=data, hyper=hyper, em=em, shape=(C, D),
        w=w, mu=mu, cov=cov, permutation=perm, log_likelihood=loglik,
        assignment=assignment, sample_stats=raw["sample_stats"], predictive=predictive,
        seed=seed, sampler=backend, draws=draws, tune=tune, relabelled=relabel,
    )
    checks = diagnose(idata)
    failed = [name for name, row in checks.iterrows() if not row["ok"]]
    idata.attrs["sampling_status"] = "ok" if not failed else "warnings: " + ", ".join(failed)
    _warn(checks)
    return idata


# --------------------------------------------------------------------------
# Diagnostics
# --------------------------------------------------------------------------
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
    """
    if not isinstance(idata, az.InferenceData) or not {"posterior", "sample_stats"} <= set(idata.groups()):
        raise ValueError(f"diagnose needs a gmmflow.sample_posterior result (posterior and sample_stats "
                         f"groups); got {type(idata).__name__}"
                         + (f" with groups {idata.groups()}" if isinstance(idata, az.InferenceData) else "") + ".")
    post, stats = idata["posterior"], idata["sample_stats"]
    with np.errstate(divide="ignore", invalid="ignore"):  # constant entries (w with K = 1) have no r_hat
        summary = az.summary(idata, var_names=["w", "mu", "cov"], kind="diagnostics")
    varying = summary.dropna(subset=["r_hat"])
    diverging = _stat(stats, "diverging")
    saturated = _stat(stats, "reached_max_treedepth", "maxdepth_reached")
    n_draws = post.sizes["chain"] * post.sizes["draw"]
    perm = stats["relabel_permutation"].values
    permuted = int(np.any(perm != np.arange(perm.shape[-1]), axis=-1).sum())
    rows = [
        ("divergences", int(diverging.sum()) if diverging is not None else 0, 0, "<="),
        ("max r_hat", float(varying["r_hat"].max()), RHAT_MAX, "<="),
        ("min ess_bulk", float(varying["ess_bulk"].min()), ESS_MIN, ">="),
        ("min ess_tail", float(varying["ess_tail"].min()), ESS_MIN, ">="),
        ("tree depth saturated", int(saturated.sum()) if saturated is not None else 0, 0, "<="),
        ("chains", int(post.sizes["chain"]), MIN_CHAINS, ">="),
        ("draws relabelled", permuted, n_draws, "<="),
    ]
    table = pd.DataFrame(rows, columns=["check", "value", "threshold", "rule"]).set_index("check")
    table["ok"] = [(v <= th) if r == "<=" else (v >= th) for v, th, r in
                   zip(table["value"], table["threshold"], table["rule"])]
    return table


def _warn(table: pd.DataFrame) -> None:
    advice = {
        "divergences": "divergent transitions: the posterior has regions NUTS cannot explore; "
                       "check the prior or use fewer components",
        "max r_hat": "chains disagree (r_hat above 1.01): run longer or check for multimodality",
        "min ess_bulk": "bulk effective sample size below 400: draw more",
        "min ess_tail": "tail effective sample size below 400: draw more",
        "tree depth saturated": "NUTS hit its maximum tree depth: the posterior is badly scaled",
        "chains": "fewer than 4 chains: r_hat is unreliable",
    }
    for check, row in table.iterrows():
        if check in advice and not row["ok"]:
            warnings.warn(f"{check} = {row['value']:.4g} (threshold {row['threshold']}): {advice[check]}.",
                          SamplingWarning, stacklevel=3)

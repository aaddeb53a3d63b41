"""Simulation-based calibration (SBC) of the posterior samplers.

The walk of a call: check everything -> draw N (parameters, data) pairs from
the model's own prior in one compiled PyMC function (``simulation``) ->
sample each data set's posterior with ``sample_posterior`` (any backend) ->
keep L draws evenly spaced over the chains -> rank the true value of every
label-invariant quantity (``core.invariant_quantities``) among them
(``core.rank_uniformity``) -> one uniformity test per quantity -> one
``InferenceData`` (``results``).

Why the ranks are uniform when the sampler is right, and the two tests, are
derived in :mod:`gmmflow.core.rank_uniformity`. A correct sampler can still
fail when its chains mix badly (the L draws are not independent): each
simulation's ``sampling_status`` and smallest bulk ESS are recorded.
"""

from __future__ import annotations

import time
import warnings

import arviz as az
import numpy as np

from gmmflow import schema as S
from gmmflow.checks import check_int, check_probability, check_seed, numeric_array
from gmmflow.core.invariant_quantities import invariant_quantities, quantity_names
from gmmflow.core.rank_uniformity import (
    chi_square_test,
    ecdf_band_test,
    null_band_statistics,
    ranks,
    simultaneous_band,
)
from gmmflow.exceptions import SamplingError, SamplingWarning
from gmmflow.models.priors import Prior
from gmmflow.models.spec import GMM
from gmmflow.results.records import CalibrationRecord
from gmmflow.results.to_idata import calibration_inference_data
from gmmflow.workflows.diagnostics import diagnose
from gmmflow.workflows.em_fit import check_model, check_rows
from gmmflow.workflows.posterior_sampling import sample_posterior
from gmmflow.workflows.sampler_options import SamplerOptions
from gmmflow.workflows.simulation import prior_simulations

N_RANKED = 99  # posterior draws each rank is taken among: ranks on 0..99, 100 values
MAX_BINS = 20  # chi-square bins at most (5 rank values each by default)
MIN_EXPECTED = 5  # chi-square: at least 5 expected ranks per bin when the simulations allow it
N_NULL = 10_000  # null replicates of the ECDF band statistic: p-values down to 1e-4
ALPHA = 0.001  # level of the uniformity tests and of the ECDF band drawn
POINT_OFFSETS = (0.0, 1.0, -2.0)  # the fixed points: prior mean + offset * sqrt(diag(prior scale))


def _check_prior(model: GMM, what: str) -> None:
    check_model(model)
    if model.prior is None:
        raise ValueError(f"calibrate needs a prior for {what}; GMM(..., prior=None) is the MLE, which has no "
                         "posterior to calibrate. Give a Prior(mean=..., scale=...).")
    if model.prior.mean is None or model.prior.scale is None:
        raise ValueError(
            f"calibrate needs the prior of {what} fully specified: Prior(mean=..., scale=...). Its defaults "
            "come from each data set, so the prior the data were simulated from would differ from the one "
            "they are fitted under; e.g. gmmflow.Prior(mean=[0.0, 0.0], scale=[[1.0, 0.0], [0.0, 1.0]]).")


def _check_sampling_model(model: GMM, sampling_model: GMM | None) -> GMM:
    if sampling_model is None:
        return model
    _check_prior(sampling_model, "sampling_model")
    if sampling_model.n_components != model.n_components or \
            len(sampling_model.prior.mean) != len(model.prior.mean):
        raise ValueError(
            f"sampling_model must have the model's n_components ({model.n_components}) and dimension "
            f"({len(model.prior.mean)}), got {sampling_model.n_components} and {len(sampling_model.prior.mean)}: "
            "the quantities ranked are compared component by component.")
    return sampling_model


def _bins(n_bins: int | None, n_values: int, n_sims: int) -> int:
    """The chi-square bins: given (must divide ``n_values``), or the most up to 20 that divide it
    with at least 5 expected ranks each (at least 2)."""
    if n_bins is not None:
        n_bins = check_int(n_bins, "n_bins", 2)
        if n_values % n_bins:
            raise ValueError(f"n_bins ({n_bins}) must divide n_ranked + 1 ({n_values}), so that every bin "
                             "holds as many rank values; e.g. n_ranked=99 with n_bins=20, 10 or 5.")
        return n_bins
    divisors = [b for b in range(2, min(MAX_BINS, n_values) + 1) if n_values % b == 0]
    enough = [b for b in divisors if n_sims / b >= MIN_EXPECTED]
    return max(enough) if enough else min(divisors)


def default_points(prior: Prior) -> np.ndarray:
    """Fixed points (3, d): the prior mean, and the mean moved by +1 and -2 times
    ``sqrt(diag(prior scale))`` in every feature (the scale's diagonal for full/tied, itself for
    diag, the scalar for spherical)."""
    mean = np.asarray(prior.mean, dtype=np.float64)
    scale = np.asarray(prior.scale, dtype=np.float64)
    spread = np.sqrt(np.broadcast_to(np.diagonal(scale) if scale.ndim == 2 else scale, mean.shape))
    return mean + np.asarray(POINT_OFFSETS)[:, None] * spread


def _check_points(points, d: int, prior: Prior) -> np.ndarray:
    if points is None:
        return default_points(prior)
    arr = numeric_array(points, "points")
    if arr.ndim != 2 or arr.shape[1] != d or arr.shape[0] < 1 or not np.all(np.isfinite(arr)):
        raise ValueError(f"points must be a finite (m, {d}) array of fixed points (m >= 1), one column per "
                         f"feature; got shape {arr.shape}.")
    return arr


def _thinned(idata: az.InferenceData, n_ranked: int):
    """``n_ranked`` draws evenly spaced over the chains (chains concatenated): w, mu, full cov."""
    post = idata[S.POSTERIOR].stack(s=S.SAMPLE_DIMS)
    total = post.sizes["s"]
    keep = (np.arange(n_ranked) * total) // n_ranked
    pick = lambda name, dims: post[name].transpose("s", *dims).values[keep]  # noqa: E731
    return (pick("w", (S.COMPONENT,)), pick("mu", (S.COMPONENT, S.FEATURE)),
            pick("cov", (S.COMPONENT, S.FEATURE, S.FEATURE2)))


def _posterior_quantities(sampling_model, X, points, seed, n_ranked, em_kwargs, options, index):
    """Quantities (L, Q) of one simulation's thinned posterior, its status and smallest bulk ESS."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", SamplingWarning)  # recorded per simulation, summarised once
            idata = sample_posterior(sampling_model, X, seed=seed, em_kwargs=em_kwargs, **options)
    except SamplingError as err:
        raise SamplingError(f"calibrate: the posterior of simulation {index} could not be sampled: {err}",
                            partial=err.partial) from err
    w, mu, cov = _thinned(idata, n_ranked)
    ess = float(diagnose(idata).loc["min ess_bulk", "value"])
    return invariant_quantities(w, mu, cov, X, points), idata.attrs[S.SAMPLING_STATUS_ATTR], ess


def calibrate(
    model: GMM,
    n_obs: int,
    n_sims: int,
    *,
    sampler: str = "auto",
    seed: int | None = None,
    n_ranked: int = N_RANKED,
    sampling_model: GMM | None = None,
    points=None,
    n_bins: int | None = None,
    alpha: float = ALPHA,
    em_kwargs: dict | None = None,
    **sampling,
) -> az.InferenceData:
    """Simulation-based calibration: is the posterior sampler right, over the model's own prior?

    For each of ``n_sims`` simulations, draws parameters and ``n_obs`` rows from
    ``model``'s prior (:func:`gmmflow.simulate`), samples their posterior with
    :func:`gmmflow.sample_posterior`, keeps ``n_ranked`` draws evenly spaced over
    the chains, and ranks the true value of each label-invariant quantity among
    them: the sorted weights, the sorted means along each feature, the
    log-likelihood of the simulated data, the log-density at a few fixed points
    and the mean entropy of the assignment probabilities. Under a correct
    sampler every rank is uniform on ``0..n_ranked`` (Talts et al. 2018); each
    quantity gets the ECDF simultaneous-band test (Säilynoja et al. 2022,
    ``p_value``) and a chi-square test on rank bins (``p_value_chi2``).

    Parameters
    ----------
    model : GMM
        Its prior must be fully specified (``Prior(mean=..., scale=...)``): the
        data are simulated from it, so it cannot take defaults from data.
    n_obs : int
        Rows per simulated data set (at least ``n_components``).
    n_sims : int
        Number of simulations N >= 1 (a test at level 0.001 needs N of about 100 or more).
    sampler : str, default "auto"
        Passed to :func:`sample_posterior` (any backend it has).
    seed : int, optional
        Same seed and backend, same ranks.
    n_ranked : int, default 99
        L, the posterior draws each rank is taken among; at most ``chains * draws``.
        Ranks lie in ``0..L``. Draws should be nearly independent: L above
        the posterior's bulk ESS makes even a correct sampler's ranks non-uniform.
    sampling_model : GMM, optional
        The model the posterior is sampled under (default ``model``). A
        different prior here is a negative control: calibration must fail.
    points : array_like (m, d), optional
        Fixed points of the log-densities. Default: the prior mean, and the
        mean moved by +1 and -2 times the square roots of the prior scale's diagonal.
    n_bins : int, optional
        Chi-square bins; must divide ``n_ranked + 1``. Default: the most, up to
        20, with at least 5 expected ranks each.
    alpha : float, default 0.001
        Level of the tests (recorded) and of the simultaneous ECDF band stored for the plot.
    em_kwargs : dict, optional
        Passed to :func:`sample_posterior` (the EM start of every posterior).
    **sampling
        ``draws``, ``tune``, ``chains``, ``progressbar`` of
        :class:`~gmmflow.workflows.sampler_options.SamplerOptions` (default ``progressbar=False``).

    Returns
    -------
    arviz.InferenceData
        One ``calibration`` group: ``rank`` and ``true_value (simulation,
        quantity)``, ``p_value`` and ``p_value_chi2 (quantity)``,
        ``sampling_status`` and ``min_ess_bulk (simulation)``, ``fixed_point``, and
        the ECDF band ``band_lower``/``band_upper``; root ``attrs["method"] ==
        "calibration"``. Saved and loaded with :func:`gmmflow.save` / :func:`gmmflow.load`;
        drawn by :func:`gmmflow.plots.plot_calibration`.

    Warns
    -----
    SamplingWarning
        Once, when some simulations' posteriors failed their sampling checks
        or their bulk ESS is below ``n_ranked`` (ranks of correlated draws).

    Examples
    --------
    >>> prior = gmmflow.Prior(mean=[0.0], scale=[[1.0]])  # doctest: +SKIP
    >>> cal = gmmflow.calibrate(gmmflow.GMM(2, prior=prior), 50, 100, sampler="gibbs", seed=1)  # doctest: +SKIP
    >>> cal.calibration["p_value"].to_series()  # doctest: +SKIP
    """
    _check_prior(model, "the model")
    sampling_model = _check_sampling_model(model, sampling_model)
    n_obs = check_int(n_obs, "n_obs", 1)
    check_rows((n_obs,), model)
    n_sims = check_int(n_sims, "n_sims", 1)
    n_ranked = check_int(n_ranked, "n_ranked", 1)
    options = SamplerOptions.from_kwargs("calibrate", {"sampler": sampler, "progressbar": False} | sampling)
    if n_ranked > options.chains * options.draws:
        raise ValueError(f"n_ranked ({n_ranked}) exceeds the {options.chains} chains x {options.draws} draws of "
                         "each posterior; draw more (draws=...) or rank among fewer (n_ranked=...).")
    n_values = n_ranked + 1
    n_bins = _bins(n_bins, n_values, n_sims)
    alpha = check_probability(alpha, "alpha")
    hyper = model.prior.resolve(covariance_type=model.covariance_type, n_components=model.n_components)
    sampling_hyper = sampling_model.prior.resolve(covariance_type=sampling_model.covariance_type,
                                                  n_components=sampling_model.n_components)
    d = hyper.n_features
    points = _check_points(points, d, model.prior)
    seed = check_seed(seed)
    em_kwargs = dict(em_kwargs or {})
    sim_seed, tie_seed, null_seed, *post_seeds = np.random.SeedSequence(seed).spawn(3 + n_sims)

    started = time.perf_counter()
    sims = prior_simulations(model, n_obs, n_sims, int(sim_seed.generate_state(1)[0]), hyper)
    X, w, mu, cov = (sims[name].values for name in ("x", "w", "mu", "cov"))
    truth = np.stack([invariant_quantities(w[i:i + 1], mu[i:i + 1], cov[i:i + 1], X[i], points)[0]
                      for i in range(n_sims)])
    kwargs = {f: getattr(options, f) for f in ("draws", "tune", "chains", "sampler", "progressbar")}
    per_sim = [_posterior_quantities(sampling_model, X[i], points, int(post_seeds[i].generate_state(1)[0]),
                                     n_ranked, em_kwargs, kwargs, i) for i in range(n_sims)]
    draws = np.stack([q for q, _, _ in per_sim])
    status = [s for _, s, _ in per_sim]
    ess = np.array([e for _, _, e in per_sim])

    rank = ranks(draws, truth, np.random.default_rng(tie_seed))
    null = null_band_statistics(n_sims, n_values, N_NULL, np.random.default_rng(null_seed))
    lower, upper = simultaneous_band(n_sims, n_values, alpha, null)
    record = CalibrationRecord(
        model=model, hyper=hyper, sampling_model=sampling_model, sampling_hyper=sampling_hyper,
        features=[str(f) for f in sims[S.FEATURE].values],
        quantities=quantity_names(model.n_components, [str(f) for f in sims[S.FEATURE].values], len(points)),
        ranks=rank, true_values=truth, p_value=ecdf_band_test(rank, n_values, null),
        p_value_chi2=chi_square_test(rank, n_values, n_bins)[1], sampling_status=status, min_ess_bulk=ess,
        points=points, band_lower=lower, band_upper=upper, n_values=n_values, n_bins=n_bins, alpha=alpha,
        n_null=N_NULL, sampler=options.sampler, n_obs=n_obs, seed=seed,
        options={"draws": options.draws, "tune": options.tune, "chains": options.chains,
                 "n_ranked": n_ranked, "wall_seconds": round(time.perf_counter() - started, 3)},
    )
    _warn_mixing(status, ess, n_ranked)
    return calibration_inference_data(record)


def _warn_mixing(status: list[str], ess: np.ndarray, n_ranked: int) -> None:
    """One warning for the simulations whose posterior draws may not be independent enough."""
    failed = sum(s != "ok" for s in status)
    low = int(np.sum(ess < n_ranked))
    if failed or low:
        warnings.warn(
            f"{failed} of {len(status)} simulations' posteriors failed a sampling check and {low} have a bulk "
            f"ESS below n_ranked={n_ranked} (see calibration.sampling_status and min_ess_bulk): correlated "
            "draws make even a correct sampler's ranks non-uniform; draw more or rank among fewer.",
            SamplingWarning, stacklevel=3)

"""The result schema: every group, dim and attr name gmmflow writes, in one place.

A result is an ArviZ ``InferenceData``; this module owns its names and the
checks "does this result hold group X" that every reader shares. It imports
nothing from gmmflow, so any layer may use it.

Dims: ``obs_id``, ``feature``, ``feature2`` (second covariance axis),
``component``, ``chain``, ``draw``, ``restart``, ``iteration``, ``candidate``
(rows of a model-selection table), ``replicate`` (bootstrap refits), ``simulation``, ``quantity``,
``point``, ``ecdf_point`` (calibration). Covariances are always stored as full
(feature, feature2) matrices whatever the covariance type.

=========================  ==========================================================
group                      contents
=========================  ==========================================================
``observed_data``          ``x (obs_id, feature)``
``constant_data``          ``sample_weight (obs_id)`` when the fit was weighted
``em_estimate``            ``w``, ``mu``, ``cov``, ``responsibilities (obs_id, component)``,
                           ``objective``, ``log_likelihood``, ``log_prior``, ``converged``,
                           ``n_iter``, ``best_restart``
``em_restarts``            the same parameters and scalars with a leading ``restart`` dim,
                           plus ``init_method (restart)``: where each restart started
``em_trace``               ``objective (restart, iteration)``, NaN after a restart stopped
``posterior``              ``w (chain, draw, component)``, ``mu``, ``cov``; relabelled
``sample_stats``           the sampler's own, plus ``relabel_permutation (chain, draw, component)``
``log_likelihood``         ``x (chain, draw, obs_id)``: pointwise marginal, for LOO
``posterior_assignment``   ``posterior_assignment (obs_id, component)``
``posterior_predictive``   ``x (chain, draw, obs_id, feature)`` when asked
``model_selection``        the ``select_components`` table along ``candidate``
``em_bootstrap``           ``w (replicate, component)``, ``mu``, ``cov``: bootstrap refits of
                           the EM estimate, relabelled; ``relabel_permutation``,
                           ``relabel_ambiguous``, ``objective``, ``log_likelihood``,
                           ``converged``, ``n_iter`` and ``failed`` per replicate
``chain_stacking``         ``weight``, ``elpd_loo``, ``chain_mode (chain)``; ``mode_weight``,
                           ``mode_elpd_loo (mode)``; attr ``elpd_stacked``
``calibration``            ``rank``, ``true_value (simulation, quantity)``; ``p_value``,
                           ``p_value_chi2 (quantity)``; ``sampling_status``, ``min_ess_bulk
                           (simulation)``; ``fixed_point (point, feature)``; the ECDF band
                           ``band_lower``, ``band_upper (ecdf_point)``
=========================  ==========================================================

A noise model (``GMM(noise=True)``) keeps ``component`` for the K Gaussian
components: ``w`` holds their weights and ``noise_weight`` the uniform
component's (``em_estimate``: a scalar; ``em_restarts``: per restart;
``posterior``: per draw), so ``w`` and ``noise_weight`` together sum to one;
``noise_responsibility (obs_id)`` is each row's probability of being noise
(the responsibilities of the K components and it sum to one per row), and
``noise_assignment (obs_id)`` its posterior mean in ``posterior_assignment``. The
root attr ``noise_log_volume`` holds ``log V`` of the noise's region, as fitted.
"""

from __future__ import annotations

from typing import Any

# dims
OBS = "obs_id"
FEATURE = "feature"
FEATURE2 = "feature2"
COMPONENT = "component"
CHAIN = "chain"
DRAW = "draw"
RESTART = "restart"
ITERATION = "iteration"
CANDIDATE = "candidate"
REPLICATE = "replicate"
SIMULATION = "simulation"  # calibration: one prior simulation and its posterior
QUANTITY = "quantity"  # calibration: one label-invariant quantity ranked
POINT = "point"  # calibration: a fixed point the log-density is ranked at
MODE = "mode"  # chain_stacking: a group of chains that sit together
ECDF_POINT = "ecdf_point"  # calibration: where the rank ECDF and its band are evaluated, j / (L + 1)
SAMPLE_DIMS = (CHAIN, DRAW)

# groups
OBSERVED_DATA = "observed_data"
CONSTANT_DATA = "constant_data"
EM_ESTIMATE = "em_estimate"
EM_RESTARTS = "em_restarts"
EM_TRACE = "em_trace"
POSTERIOR = "posterior"
SAMPLE_STATS = "sample_stats"
LOG_LIKELIHOOD = "log_likelihood"
POSTERIOR_ASSIGNMENT = "posterior_assignment"
POSTERIOR_PREDICTIVE = "posterior_predictive"
MODEL_SELECTION = "model_selection"
EM_BOOTSTRAP = "em_bootstrap"
CALIBRATION = "calibration"
CHAIN_STACKING = "chain_stacking"
EM_GROUPS = (EM_ESTIMATE, EM_RESTARTS, EM_TRACE)

# variables
X = "x"  # the data, in observed_data, log_likelihood and posterior_predictive
PARAMETERS = ("w", "mu", "cov")
RESPONSIBILITIES = "responsibilities"
SAMPLE_WEIGHT = "sample_weight"
RELABEL_PERMUTATION = "relabel_permutation"
INIT_METHOD = "init_method"  # em_restarts: where each restart started (hc, kmeans++, user, ...)
RELABEL_AMBIGUOUS = "relabel_ambiguous"  # em_bootstrap: the replicate's labelling was ambiguous
FAILED = "failed"  # em_bootstrap: the replicate's refit failed (its parameters are NaN)
RANK = "rank"  # calibration: rank of the true value among the posterior draws
STACKING_WEIGHT = "weight"  # chain_stacking: each chain's stacking weight
P_VALUE = "p_value"  # calibration: ECDF simultaneous-band uniformity test, per quantity
P_VALUE_CHI2 = "p_value_chi2"  # calibration: chi-square uniformity test on rank bins, per quantity
NOISE_WEIGHT = "noise_weight"  # a noise model's uniform component weight (w_0)
NOISE_RESPONSIBILITY = "noise_responsibility"  # P(row i is noise), (obs_id)
NOISE_ASSIGNMENT = "noise_assignment"  # posterior_assignment: P(row i is noise | data), (obs_id)
NOISE_LABEL = -1  # the label predict() gives noise rows

# root attrs
VERSION_ATTR = "gmmflow_version"
MODEL_ATTR = "model"
HYPERPARAMETERS_ATTR = "hyperparameters"
SAMPLING_STATUS_ATTR = "sampling_status"
SELECTION_CRITERION_ATTR = "selection_criterion"  # gmmflow run --k LOW:HIGH: the criterion K was chosen by
FINGERPRINT_ATTR = "data_fingerprint"  # JSON: shape, feature names, hashes of the values and weights
MISSING_ATTR = "missing"  # the missing= option: "error" or "marginalize"
N_MISSING_ATTR = "n_missing"  # the count of missing (NaN) cells fitted with missing="marginalize"
METHOD_ATTR = "method"  # "em", "nuts", "calibration": which groups the result must have (METHOD_GROUPS)
SAMPLING_MODEL_ATTR = "sampling_model"  # calibration: the spec the posterior was sampled under (JSON)
SAMPLING_HYPERPARAMETERS_ATTR = "sampling_hyperparameters"  # calibration: its resolved prior (JSON)
NOISE_LOG_VOLUME_ATTR = "noise_log_volume"  # a noise model's log V, as fitted

# what each group must hold, variable -> dims; checked when a result is loaded (results.from_idata.check_schema)
_PARAMETER_DIMS = {"w": (COMPONENT,), "mu": (COMPONENT, FEATURE), "cov": (COMPONENT, FEATURE, FEATURE2)}
_EM_SCALARS = ("objective", "log_likelihood", "log_prior", "converged", "n_iter")
VARIABLES = {
    OBSERVED_DATA: {X: (OBS, FEATURE)},
    CONSTANT_DATA: {SAMPLE_WEIGHT: (OBS,)},
    EM_ESTIMATE: _PARAMETER_DIMS | {name: () for name in _EM_SCALARS} | {"best_restart": ()},
    EM_RESTARTS: {name: (RESTART,) + dims for name, dims in _PARAMETER_DIMS.items()}
    | {name: (RESTART,) for name in _EM_SCALARS},
    EM_TRACE: {"objective": (RESTART, ITERATION)},
    POSTERIOR: {name: SAMPLE_DIMS + dims for name, dims in _PARAMETER_DIMS.items()},
    SAMPLE_STATS: {RELABEL_PERMUTATION: SAMPLE_DIMS + (COMPONENT,)},
    LOG_LIKELIHOOD: {X: SAMPLE_DIMS + (OBS,)},
    POSTERIOR_ASSIGNMENT: {POSTERIOR_ASSIGNMENT: (OBS, COMPONENT)},
    POSTERIOR_PREDICTIVE: {X: SAMPLE_DIMS + (OBS, FEATURE)},
    MODEL_SELECTION: {"covariance_type": (CANDIDATE,), "k": (CANDIDATE,)},
    CALIBRATION: {RANK: (SIMULATION, QUANTITY), "true_value": (SIMULATION, QUANTITY), P_VALUE: (QUANTITY,),
                  P_VALUE_CHI2: (QUANTITY,), SAMPLING_STATUS_ATTR: (SIMULATION,), "min_ess_bulk": (SIMULATION,),
                  "fixed_point": (POINT, FEATURE), "band_lower": (ECDF_POINT,), "band_upper": (ECDF_POINT,)},
    CHAIN_STACKING: {STACKING_WEIGHT: (CHAIN,), "elpd_loo": (CHAIN,), "chain_mode": (CHAIN,), "mode_weight": (MODE,),
                     "mode_elpd_loo": (MODE,)},
}
OPTIONAL_VARIABLES = {
    EM_ESTIMATE: {RESPONSIBILITIES: (OBS, COMPONENT), NOISE_WEIGHT: (), NOISE_RESPONSIBILITY: (OBS,)},
    EM_RESTARTS: {NOISE_WEIGHT: (RESTART,)},
    POSTERIOR: {NOISE_WEIGHT: SAMPLE_DIMS},
    POSTERIOR_ASSIGNMENT: {NOISE_ASSIGNMENT: (OBS,)},
}
# the groups every result of a method has (root attr "method")
# (a Gibbs run on chunked data above fit_em's storage limit keeps no pointwise groups)
METHOD_GROUPS = {"em": EM_GROUPS, "nuts": EM_GROUPS + (POSTERIOR, SAMPLE_STATS, LOG_LIKELIHOOD, POSTERIOR_ASSIGNMENT),
                 "gibbs": EM_GROUPS + (POSTERIOR, SAMPLE_STATS), "calibration": (CALIBRATION,)}

# what a reader is told to do when a group is missing
HINTS = {
    EM_ESTIMATE: "fit with gmmflow.fit_em or gmmflow.sample_posterior",
    EM_TRACE: "fit with gmmflow.fit_em first",
    POSTERIOR: "sample with gmmflow.sample_posterior first",
    POSTERIOR_PREDICTIVE: "sample with gmmflow.sample_posterior(..., posterior_predictive=True)",
    OBSERVED_DATA: "the data were not stored (fit_em stores them unless they exceeded its storage limit)",
    EM_BOOTSTRAP: "run gmmflow.bootstrap(idata, X) first",
    CALIBRATION: "run gmmflow.calibrate(model, n_obs, n_sims) first",
}


def groups(idata: Any) -> set[str]:
    """The group names of a result (empty for anything that is not an InferenceData)."""
    list_groups = getattr(idata, "groups", None)
    return set(list_groups()) if callable(list_groups) else set()


def has_groups(idata: Any, *names: str) -> bool:
    """True when ``idata`` holds every group in ``names``."""
    return set(names) <= groups(idata)


def require_groups(idata: Any, *names: str, hint: str | None = None) -> None:
    """Raise a message naming the missing groups and what to do, before any work.

    Raises
    ------
    TypeError
        ``idata`` is not an InferenceData.
    ValueError
        Some groups are missing; ``hint`` (or the group's standard hint) says how to get them.
    """
    if not callable(getattr(idata, "groups", None)):
        raise TypeError(f"expected a gmmflow result (arviz.InferenceData), got {type(idata).__name__}.")
    missing = [g for g in names if g not in groups(idata)]
    if missing:
        advice = hint or "; ".join(dict.fromkeys(HINTS.get(g, "") for g in missing if g in HINTS)) \
            or "use a result of gmmflow.sample_posterior"
        raise ValueError(f"This result has no {', '.join(missing)} group(s); {advice}.")

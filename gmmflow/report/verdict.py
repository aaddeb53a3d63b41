"""The report's verdict: what the numbers say, as sentences, with what to do when a check fails.

Each function reads one table a workflow returns (:func:`diagnose`,
:func:`compare`, :func:`select_components`) or a small table of the EM
restarts, and returns :class:`Finding` records: a status (``"ok"``,
``"warning"`` or ``"info"``), the sentences with the numbers in them, and
the anchor of the report section holding the details. They read nothing
else, so each is tested on hand-made tables, failing cases included.

Thresholds are those of the checks themselves (``workflows.diagnostics``)
plus a few stated here:

- a restart *reached the best objective* when it ends within
  ``REACHED_RTOL * |best|`` of it: EM stops at a relative step of 1e-8, and
  distinct optima of a mixture likelihood differ by far more than 1e-5;
- a component holding fewer than ``d + 1`` observations (``n * w``) cannot
  have its covariance estimated from the data: the prior decides it;
- a variance's posterior is right-skewed (inverse-gamma or inverse-Wishart
  like), so its mode, which EM's MAP estimates, lies below its mean: a MAP
  below the posterior mean of a variance is expected, and said so;
- BIC differences are read on Kass & Raftery's (1995) scale (2 log Bayes
  factor: < 2 weak, 2-6 positive, 6-10 strong, > 10 very strong evidence);
- ELPD differences below ``SMALL_ELPD`` = 4 are small (Sivula et al. 2022).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import pandas as pd

from gmmflow.report import outline
from gmmflow.report.number_format import beside, count_of, fixed, percent, plural, significant, whole
from gmmflow.workflows.compare import parameter_label
from gmmflow.workflows.diagnostics import INFORMATION, RHAT_MAX

OK, WARNING, INFO = "ok", "warning", "info"
REACHED_RTOL = 1e-5
SMALL_ELPD = 4.0
PARETO_K_MAX = 0.7
CRITERION_NAMES = {"bic": "BIC", "icl": "ICL", "loo": "LOO"}


@dataclass(frozen=True)
class Finding:
    """One statement of the verdict: ``status``, its ``text`` and the ``section`` with the details."""

    status: str
    text: str
    section: str


def headline(findings: Sequence[Finding]) -> str:
    """One line above the findings: all clear, or how many need attention."""
    warnings = sum(f.status == WARNING for f in findings)
    if not warnings:
        return "Nothing needs attention: every check passed."
    return f"{plural(warnings, 'finding')} {'needs' if warnings == 1 else 'need'} attention (marked \u26a0)."


# --------------------------------------------------------------------------
# EM
# --------------------------------------------------------------------------
def em_findings(restarts: pd.DataFrame, weights: Sequence[float], n_obs: int, n_features: int) -> list[Finding]:
    """What EM found: converged or not, how many restarts reached the best objective, the weights.

    ``restarts``: one row per restart with ``objective``, ``converged``,
    ``n_iter`` and ``chosen`` (exactly one True); ``weights``: the chosen
    estimate's component weights.
    """
    best = restarts[restarts["chosen"]].iloc[0]
    total = len(restarts)
    top = float(best["objective"])
    reached = int((top - restarts["objective"] <= REACHED_RTOL * max(abs(top), 1.0)).sum())
    iterations = plural(int(best["n_iter"]), "iteration")
    found = []
    if not bool(best["converged"]):
        converged = int(restarts["converged"].sum())
        found.append(Finding(WARNING, f"EM did not converge: the chosen restart stopped after {iterations} "
                                      f"(max_iter) still improving; {converged} of {total} restarts converged. "
                                      "Raise max_iter (gmmflow em --max-iter) or loosen tol before trusting "
                                      "the estimate.", outline.EM))
    elif total == 1:
        found.append(Finding(INFO, f"EM converged in {iterations} from a single start (objective "
                                   f"{fixed(top, 2)}); several restarts (n_init, --n-init) guard against a "
                                   "local optimum.", outline.EM))
    elif reached == 1:
        others = restarts.loc[~restarts["chosen"], "objective"]
        found.append(Finding(WARNING, f"EM converged in {iterations}, but only 1 of {total} restarts reached "
                                      f"the best objective ({fixed(top, 2)}); the others ended "
                                      f"{significant(top - others.max(), 2)} or more below it. The likelihood "
                                      "has several optima: raise n_init (--n-init) to be sure the best is "
                                      "found.", outline.EM))
    else:
        found.append(Finding(OK, f"EM converged in {iterations}; {reached} of {total} restarts reached the "
                                 f"best objective ({fixed(top, 2)}), so the optimum is well found.", outline.EM))
    listed = ", ".join(f"{fixed(w, 3)} (component {k})" for k, w in enumerate(weights))
    found.append(Finding(INFO, f"The component weights are {listed}.", outline.EM))
    for k, w in enumerate(weights):
        expected = n_obs * w
        if expected < n_features + 1:
            found.append(Finding(WARNING, f"Component {k} holds about {significant(expected, 2)} observations "
                                          f"(weight {significant(w, 2)}): too few to estimate a "
                                          f"{n_features}-dimensional covariance, which the prior decides. "
                                          "Fewer components may describe the data as well.", outline.EM))
    return found


# --------------------------------------------------------------------------
# Sampling
# --------------------------------------------------------------------------
FAILED_CHECK = {  # diagnose()'s failed checks: what the number means and what to do
    "divergences": "{divergences} ({share} of draws). NUTS could not follow the posterior's curvature somewhere, "
                   "so intervals there may be wrong. The pair plot shows where they sit; fewer components or a "
                   "stronger prior usually removes them.",
    "max r_hat": "the chains disagree (r_hat {value} > {threshold}), so the posterior summaries are not reliable "
                 "yet. Run longer (tune=, draws=; --tune, --draws) and look in the trace plot for chains stuck in "
                 "different modes.",
    "min ess_bulk": "bulk ESS {value} < {threshold}: too few effective draws for stable means and sds. Draw more "
                    "(draws=, --draws).",
    "min ess_tail": "tail ESS {value} < {threshold}: too few effective draws for stable interval ends. Draw more "
                    "(draws=, --draws).",
    "tree depth saturated": "{of_draws} draws hit NUTS's maximum tree depth: the posterior is badly scaled or "
                            "strongly correlated, so sampling is slow and may not have explored it all. Look for "
                            "strongly correlated parameters in the pair plot; standardising the data often helps.",
    "modes": "the chains sit in {value} separate modes of the posterior (grouped by pairwise r_hat): each mode "
             "is a different clustering of the data. gmmflow.find_modes lists them (chains, weights, EM "
             "objective, share of draws); gmmflow.stack_chains weighs them by their predictive performance.",
    "chains": "only {chains} (at least {threshold} recommended): r_hat cannot tell reliably whether chains agree. "
              "Run {threshold} chains (chains=, --chains).",
}


def failed_check_sentence(check: str, value: float, threshold: float, draws: float) -> str:
    """The warning for one failed check of :func:`diagnose` (``draws``: chains x draws)."""
    shown = beside(value, threshold) if check == "max r_hat" else (whole(value), whole(threshold))
    numbers = {"value": shown[0], "threshold": shown[1], "share": percent(value / draws),
               "of_draws": count_of(value, draws), "divergences": plural(int(value), "divergent transition"),
               "chains": plural(int(value), "chain")}
    return "Sampling: " + FAILED_CHECK[check].format(**numbers)


def sampling_findings(checks: pd.DataFrame) -> list[Finding]:
    """From :func:`diagnose`'s table: "trustworthy" with the numbers, or one warning per failed check.

    The ``draws relabelled`` row is information (it cannot fail): it becomes
    a sentence of its own.
    """
    value = checks["value"]
    draws = float(checks.loc["draws relabelled", "threshold"]) if "draws relabelled" in checks.index else math.nan
    failed = [name for name in checks.index if name not in INFORMATION and not checks.loc[name, "ok"]]
    found = [Finding(WARNING, failed_check_sentence(name, value[name], checks.loc[name, "threshold"], draws),
                     outline.MODES if name == "modes" else outline.SAMPLING) for name in failed if name in FAILED_CHECK]
    if not failed:
        ess = min(value["min ess_bulk"], value["min ess_tail"])
        found.append(Finding(OK, f"Sampling is trustworthy: {whole(value['divergences'])} divergences, r_hat "
                                 f"{fixed(value['max r_hat'], 2)}, ESS >= {whole(ess)} (bulk and tail) from "
                                 f"{plural(int(value['chains']), 'chain')}, "
                                 f"{whole(value['tree depth saturated'])} draws at the maximum tree depth.",
                             outline.SAMPLING))
    if "draws relabelled" in checks.index:
        moved = int(value["draws relabelled"])
        text = ("No posterior draw needed relabelling: the components never switched labels." if moved == 0 else
                f"{count_of(moved, draws)} posterior draws were relabelled to EM's component order (label "
                "switching, undone before every summary).")
        found.append(Finding(INFO, text, outline.SAMPLING))
    return found


# --------------------------------------------------------------------------
# EM against the posterior
# --------------------------------------------------------------------------
def describe(row) -> str:
    """A parameter row in words: ``the variance of waiting in component 1``."""
    k, f, g = row["component"], row.get("feature"), row.get("feature2")
    return {"w": f"the weight of component {k}",
            "mu": f"the mean of {f} in component {k}",
            "var": f"the variance of {f} in component {k}",
            "corr": f"the correlation of {f} and {g} in component {k}"}[row["parameter"]]


def hdi_columns(params: pd.DataFrame) -> tuple[str, str, float]:
    """The lower and upper HDI column names of a :func:`compare` table and the HDI's probability."""
    lower, upper = [c for c in params.columns if str(c).startswith("hdi_")]
    return lower, upper, (float(upper[4:-1]) - float(lower[4:-1])) / 100


def _side(z: float) -> str:
    return "below" if z < 0 else "above"


def _skew_note(row) -> str:
    if row["parameter"] == "var" and row["z"] < 0:
        return ", as expected for a right-skewed posterior (a variance's mode lies below its mean)"
    return ""


def parameter_findings(params: pd.DataFrame) -> list[Finding]:
    """From :func:`compare`'s parameter table: is EM's MAP inside every posterior interval, and the largest gap."""
    prob = hdi_columns(params)[2]
    pct = f"{100 * prob:g}%"
    finite = params[params["z"].map(lambda z: z is not None and math.isfinite(z))]
    outside = finite[~finite["map_in_hdi"].astype(bool)]
    if len(outside):
        worst = outside.reindex(outside["z"].abs().sort_values(ascending=False).index)
        listed = [f"{parameter_label(r)} ({fixed(abs(r['z']), 2)} sds {_side(r['z'])} the mean)"
                  for _, r in worst.head(3).iterrows()]
        more = f" and {len(worst) - 3} more" if len(worst) > 3 else ""
        return [Finding(WARNING, f"EM's MAP lies outside the {pct} posterior interval of {len(outside)} of "
                                 f"{len(finite)} parameters: {', '.join(listed)}{more}. EM's optimum and the bulk "
                                 "of the posterior differ: EM may have stopped at another mode, or the posterior "
                                 "has several. Compare the trace and forest plots, and rerun EM with more "
                                 "restarts (--n-init).", outline.PARAMETERS)]
    worst = finite.loc[finite["z"].abs().idxmax()]
    if abs(worst["z"]) < 0.05:
        return [Finding(OK, f"EM's MAP lies inside every {pct} posterior interval and within 0.05 posterior sds "
                            f"of the posterior mean for all {len(finite)} parameters.", outline.PARAMETERS)]
    counted = plural(len(finite), "parameter")
    return [Finding(OK, f"EM's MAP lies inside every {pct} posterior interval ({counted}); the largest gap is "
                        f"{describe(worst)} ({parameter_label(worst)}), {fixed(abs(worst['z']), 2)} "
                        f"posterior sds {_side(worst['z'])} the posterior mean{_skew_note(worst)}.",
                    outline.PARAMETERS)]


def _small(x: float) -> str:
    return "less than 0.001" if x < 5e-4 else significant(x, 2)


def assignment_findings(assignments: pd.DataFrame) -> list[Finding]:
    """From :func:`compare`'s assignment table: do EM and the posterior put observations in the same place."""
    row = assignments.iloc[0]
    n = int(row["n_obs"])
    differ = int(round(row["share_labels_differ"] * n))
    ari = fixed(row["adjusted_rand_index"], 2)
    if differ == 0:
        return [Finding(OK, f"EM and the posterior put every one of the {n} observations in the same component "
                            f"(adjusted Rand index {ari}); their assignment probabilities differ by "
                            f"{_small(row['mean_abs_difference'])} on average.", outline.ASSIGNMENTS)]
    return [Finding(WARNING, f"EM and the posterior put {count_of(differ, n)} observations in different components "
                             f"(adjusted Rand index {ari}). These lie between components, where EM's plug-in "
                             "probabilities understate the uncertainty: use the posterior assignment "
                             "probabilities (posterior_assignment) for them; the assignments plot shows where "
                             "they are.", outline.ASSIGNMENTS)]


def predictive_findings(predictive: pd.DataFrame, n_obs: int) -> list[Finding]:
    """From :func:`compare`'s predictive table: who predicts new data better, and can PSIS-LOO be trusted."""
    em, post = predictive.loc["em_plugin"], predictive.loc["posterior"]
    found = []
    scores = f"{fixed(post['elpd_loo'], 1)} \u00b1 {fixed(post['elpd_loo_se'], 1)} (posterior, PSIS-LOO)"
    if math.isfinite(em["elpd_loo"]):
        diff = post["elpd_loo"] - em["elpd_loo"]
        scores += f" against {fixed(em['elpd_loo'], 1)} \u00b1 {fixed(em['elpd_loo_se'], 1)} (EM, exact leave-one-out)"
        leader = "the posterior" if diff > 0 else "EM"
        judged = ("a difference below 4, small: both predict new data equally well" if abs(diff) < SMALL_ELPD
                  else f"{leader} predicts new data better")
        found.append(Finding(INFO, f"Out of sample: ELPD {scores}; {fixed(abs(diff), 1)} apart, {judged}.",
                             outline.PREDICTIVE))
    else:
        found.append(Finding(INFO, f"Out of sample: ELPD {scores}; EM's exact leave-one-out was skipped "
                                   "(more rows than em_loo_max_obs).", outline.PREDICTIVE))
    high = int(post["n_pareto_k_above_0.7"])
    if high:
        safer = " EM's exact leave-one-out is the safer number here." if math.isfinite(em["elpd_loo"]) else ""
        found.append(Finding(WARNING, f"PSIS-LOO is unreliable for {count_of(high, n_obs)} observations (Pareto k > "
                                      f"{PARETO_K_MAX}), so the posterior's ELPD may be optimistic.{safer} Look at "
                                      "those observations (often outliers or members of a small component) or "
                                      "refit without each of them (arviz.reloo).", outline.PREDICTIVE))
    else:
        found.append(Finding(OK, f"PSIS-LOO is reliable: every Pareto k <= {PARETO_K_MAX}.", outline.PREDICTIVE))
    return found


# --------------------------------------------------------------------------
# Number of components
# --------------------------------------------------------------------------
def bic_evidence(difference: float) -> str:
    """Kass & Raftery's (1995) words for a BIC difference (2 log Bayes factor)."""
    if difference < 2:
        return "weak evidence"
    if difference < 6:
        return "positive evidence"
    return "strong evidence" if difference < 10 else "very strong evidence"


def _names(table: pd.DataFrame):
    """How a row of the selection table is named: ``K = 3`` (``full K = 3`` with several types)."""
    several = table["covariance_type"].nunique() > 1
    return lambda row: f"{row['covariance_type']} K = {int(row['k'])}" if several else f"K = {int(row['k'])}"


def _criterion_reason(ok: pd.DataFrame, criterion: str, name) -> str:
    """Why ``criterion`` chose its row, as a predicate (``"has the lowest BIC, 12.5 below K = 4"``)."""
    best = ok[ok[f"best_{criterion}"].astype(bool)].iloc[0]
    others = ok.drop(best.name)
    if others.empty:
        return "is the only candidate fitted"
    if criterion == "loo":
        top = ok.loc[ok["elpd_diff"].idxmin()]
        if top.name == best.name:
            second = others.sort_values("elpd_diff").iloc[0]
            return (f"has the highest ELPD-LOO, {fixed(second['elpd_diff'], 1)} above {name(second)} (se of the "
                    f"difference {fixed(second['dse'], 1)})")
        return (f"is the simplest model within one standard error of the highest ELPD-LOO ({name(top)}: "
                f"{fixed(best['elpd_diff'], 1)} lower, se {fixed(best['dse'], 1)})")
    second = others.loc[others[criterion].idxmin()]
    gap = second[criterion] - best[criterion]
    evidence = f" ({bic_evidence(gap)} on Kass and Raftery's scale)" if criterion == "bic" else ""
    return f"has the lowest {CRITERION_NAMES[criterion]}, {fixed(gap, 1)} below {name(second)}{evidence}"


def selection_findings(table: pd.DataFrame, shown_k: int, criterion: str | None = None) -> list[Finding]:
    """From :func:`select_components`'s table: which K is shown, chosen by what and by how much, who agrees.

    ``criterion`` is the one the run chose by (``None``: the criteria that
    picked ``shown_k``, in the order BIC, ICL, LOO).
    """
    name = _names(table)
    ok = table[table["status"] == "ok"]
    found = [Finding(WARNING, f"{name(r)} could not be fitted ({r['error']}); it is left out of the choice.",
                     outline.SELECTION) for _, r in table[table["status"] != "ok"].iterrows()]
    if ok.empty:
        return found
    criteria = [c for c in CRITERION_NAMES if f"best_{c}" in ok and ok[f"best_{c}"].astype(bool).any()]
    choice = {c: ok[ok[f"best_{c}"].astype(bool)].iloc[0] for c in criteria}
    if criterion is None:
        criterion = next((c for c in criteria if int(choice[c]["k"]) == shown_k), criteria[0])
    agree = [CRITERION_NAMES[c] for c in criteria if c != criterion and choice[c].name == choice[criterion].name]
    tail = [f"{CRITERION_NAMES[c]} prefers {name(choice[c])}" for c in criteria
            if c != criterion and choice[c].name != choice[criterion].name]
    if agree:
        tail.insert(0, f"{' and '.join(agree)} {'agrees' if len(agree) == 1 else 'agree'}")
    found.insert(0, Finding(INFO, f"{name(choice[criterion])} is shown, chosen by {CRITERION_NAMES[criterion]}: "
                                  f"it {_criterion_reason(ok, criterion, name)}"
                                  + (f"; {'; '.join(tail)}." if tail else "."), outline.SELECTION))
    if "max_r_hat" in ok:
        for _, r in ok.iterrows():
            problems = []
            if r["max_r_hat"] > RHAT_MAX:
                problems.append(f"r_hat {fixed(r['max_r_hat'], 2)}")
            if r["divergences"] > 0:
                problems.append(plural(int(r["divergences"]), "divergence"))
            if r.get("n_pareto_k_above_0.7", 0) > 0:
                problems.append(f"{whole(r['n_pareto_k_above_0.7'])} Pareto k > {PARETO_K_MAX}")
            if problems:
                found.append(Finding(WARNING, f"The posterior of {name(r)} did not sample or score cleanly "
                                              f"({', '.join(problems)}): its ELPD-LOO is less reliable.",
                                     outline.SELECTION))
    return found


# --------------------------------------------------------------------------
# Calibration
# --------------------------------------------------------------------------
def calibration_findings(table: pd.DataFrame, alpha: float, n_sims: int, n_unhealthy: int) -> list[Finding]:
    """From :func:`contents.calibration_table`: every quantity passes the uniformity test, or which fail.

    ``table``: one row per quantity (index) with ``p_value``; ``n_unhealthy``:
    simulations whose posterior failed a sampling check.
    """
    failed = table[table["p_value"] < alpha]
    if failed.empty:
        found = [Finding(OK, f"The sampler is calibrated over the prior: the ranks of all {len(table)} "
                             f"quantities are consistent with uniform over {plural(n_sims, 'simulation')} (ECDF "
                             f"band test, smallest p = {significant(table['p_value'].min(), 2)} >= {alpha:g}).",
                         outline.CALIBRATION)]
    else:
        worst = ", ".join(f"{name} (p = {significant(p, 2)})" for name, p in failed["p_value"].nsmallest(4).items())
        found = [Finding(WARNING, f"{count_of(len(failed), len(table))} quantities fail the uniformity test at "
                                  f"level {alpha:g} over {plural(n_sims, 'simulation')}: {worst}. The posterior "
                                  "draws are not those of the model's posterior (a wrong prior, a biased sampler, "
                                  "or chains that did not mix); the plots show the direction.",
                         outline.CALIBRATION)]
    if n_unhealthy:
        found.append(Finding(INFO, f"{count_of(n_unhealthy, n_sims)} simulations' posteriors failed a sampling "
                                   "check (their sampling_status); badly mixed chains make ranks non-uniform "
                                   "even for a correct sampler.", outline.CALIBRATION))
    return found

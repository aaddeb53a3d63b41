"""The report's verdict: every sentence from hand-made tables, passing and failing cases.

The tables have the layout of the workflows' own (``diagnose``,
``compare``, ``select_components``); the numbers are chosen by hand so the
expected sentence is known exactly.
"""

import numpy as np
import pandas as pd
import pytest

from gmmflow.report import outline
from gmmflow.report.number_format import beside, count_of, fixed, percent, significant, whole
from gmmflow.report.verdict import (
    INFO,
    OK,
    WARNING,
    Finding,
    assignment_findings,
    bic_evidence,
    em_findings,
    headline,
    parameter_findings,
    predictive_findings,
    sampling_findings,
    selection_findings,
)


# ---------------------------------------------------------------- numbers
@pytest.mark.parametrize("x, digits, expected", [
    (1130.514, 4, "1131"), (9.996, 3, "10.0"), (0.035617, 3, "0.0356"), (12345.6, 3, "12346"),
    (-0.4712, 2, "-0.47"), (0.0, 3, "0"), (1e-5, 3, "1.00e-05"), (2.5e9, 2, "2.5e+09"),
    (float("nan"), 3, "\u2013"), (None, 3, "\u2013"), (float("inf"), 3, "inf"),
])
def test_significant_digits(x, digits, expected):
    assert significant(x, digits) == expected


def test_fixed_whole_percent_count():
    assert fixed(-0.001, 2) == "0.00"  # never "-0.00"
    assert fixed(1.004, 2) == "1.00" and fixed(float("nan"), 1) == "\u2013"
    assert whole(2453.6) == "2454"
    assert percent(7 / 272) == "2.6%" and percent(0) == "0%" and percent(1) == "100%"
    assert percent(0.003) == "0.3%" and percent(0.15) == "15%" and percent(2.5e-7) == "2.5e-05%"
    assert count_of(7, 272) == "7 of 272 (2.6%)"


def test_beside_shows_enough_decimals_to_tell_value_from_threshold():
    assert beside(1.31, 1.01) == ("1.31", "1.01")
    assert beside(1.0112, 1.01) == ("1.011", "1.010")
    assert beside(1.01, 1.01) == ("1.01", "1.01")


# ---------------------------------------------------------------- sampling
def checks_table(**changes) -> pd.DataFrame:
    """A diagnose() table: passing values unless ``changes`` says otherwise (key: check with _ for spaces)."""
    rows = {"divergences": [0, 0, "<="], "max r_hat": [1.002, 1.01, "<="], "min ess_bulk": [2454.2, 400, ">="],
            "min ess_tail": [2610.0, 400, ">="], "tree depth saturated": [0, 0, "<="], "chains": [4, 4, ">="],
            "draws relabelled": [0, 4000, "<="]}
    for key, value in changes.items():
        rows[key.replace("_", " ").replace("ess ", "ess_").replace("r hat", "r_hat")][0] = value
    table = pd.DataFrame([[k, *v] for k, v in rows.items()], columns=["check", "value", "threshold", "rule"])
    table = table.set_index("check")
    table["ok"] = [v <= t if r == "<=" else v >= t for v, t, r in zip(table.value, table.threshold, table.rule)]
    return table


def test_sampling_trustworthy_sentence():
    found = sampling_findings(checks_table())
    assert found == [
        Finding(OK, "Sampling is trustworthy: 0 divergences, r_hat 1.00, ESS >= 2454 (bulk and tail) from 4 "
                    "chains, 0 draws at the maximum tree depth.", outline.SAMPLING),
        Finding(INFO, "No posterior draw needed relabelling: the components never switched labels.",
                outline.SAMPLING),
    ]


@pytest.mark.parametrize("change, expected", [
    ({"max_r_hat": 1.31}, "Sampling: the chains disagree (r_hat 1.31 > 1.01), so the posterior summaries are not "
                          "reliable yet. Run longer"),
    ({"max_r_hat": 1.0112}, "Sampling: the chains disagree (r_hat 1.011 > 1.010)"),
    ({"divergences": 12}, "Sampling: 12 divergent transitions (0.3% of draws). NUTS could not follow"),
    ({"divergences": 1}, "Sampling: 1 divergent transition (0.025% of draws)."),
    ({"min_ess_bulk": 212.4}, "Sampling: bulk ESS 212 < 400: too few effective draws for stable means and sds. "
                              "Draw more (draws=, --draws)."),
    ({"min_ess_tail": 87.0}, "Sampling: tail ESS 87 < 400: too few effective draws for stable interval ends."),
    ({"tree_depth_saturated": 400}, "Sampling: 400 of 4000 (10%) draws hit NUTS's maximum tree depth"),
    ({"chains": 2}, "Sampling: only 2 chains (at least 4 recommended): r_hat cannot tell reliably whether chains "
                    "agree. Run 4 chains (chains=, --chains)."),
])
def test_each_failed_check_is_one_warning_with_its_number_and_what_to_do(change, expected):
    found = sampling_findings(checks_table(**change))
    warnings = [f for f in found if f.status == WARNING]
    assert len(warnings) == 1 and warnings[0].text.startswith(expected), warnings
    assert not any("trustworthy" in f.text for f in found)
    assert all(f.section == outline.SAMPLING for f in found)


def test_several_failed_checks_warn_in_table_order():
    found = sampling_findings(checks_table(divergences=3, max_r_hat=1.2, chains=1))
    texts = [f.text for f in found if f.status == WARNING]
    assert len(texts) == 3
    for text, start in zip(texts, ["Sampling: 3 divergent", "Sampling: the chains disagree", "Sampling: only 1 chain"]):
        assert text.startswith(start)


def test_relabelled_draws_are_information_never_a_warning():
    for moved in (312, 4000):
        found = sampling_findings(checks_table(draws_relabelled=moved))
        info = [f for f in found if f.status == INFO]
        assert [f.status for f in found] == [OK, INFO]
        assert info[0].text.startswith(f"{count_of(moved, 4000)} posterior draws were relabelled")
    assert "312 of 4000 (7.8%)" in sampling_findings(checks_table(draws_relabelled=312))[1].text


# ---------------------------------------------------------------- EM against the posterior
def parameters_table(rows, hdi=("hdi_3%", "hdi_97%")) -> pd.DataFrame:
    """compare() rows from (parameter, component, feature, feature2, em, mean, sd, lower, upper)."""
    frame = pd.DataFrame(rows, columns=["parameter", "component", "feature", "feature2", "em", "mean", "sd",
                                        *hdi])
    frame["map_in_hdi"] = (frame["em"] >= frame[hdi[0]]) & (frame["em"] <= frame[hdi[1]])
    frame["z"] = (frame["em"] - frame["mean"]) / frame["sd"]
    return frame


INSIDE = [("w", 0, None, None, 0.356, 0.357, 0.03, 0.30, 0.41),
          ("mu", 0, "waiting", None, 54.48, 54.50, 0.6, 53.4, 55.6),
          ("var", 1, "waiting", None, 33.70, 35.58, 4.0, 28.4, 43.9),
          ("corr", 1, "eruptions", "waiting", 0.29, 0.28, 0.08, 0.13, 0.43)]


def test_map_inside_every_interval_names_the_largest_gap_and_the_skew():
    found = parameter_findings(parameters_table(INSIDE))
    assert found == [Finding(
        OK, "EM's MAP lies inside every 94% posterior interval (4 parameters); the largest gap is the variance of "
            "waiting in component 1 (var[1, waiting]), 0.47 posterior sds below the posterior mean, as expected "
            "for a right-skewed posterior (a variance's mode lies below its mean).", outline.PARAMETERS)]


@pytest.mark.parametrize("row, gap", [
    (("mu", 0, "x", None, 1.0, 1.4, 1.0, -0.6, 3.4), "the mean of x in component 0 (mu[0, x]), 0.40 posterior sds "
                                                     "below"),
    (("var", 0, "x", None, 1.4, 1.0, 1.0, 0.1, 3.0), "the variance of x in component 0 (var[0, x]), 0.40 posterior "
                                                     "sds above"),  # a MAP above the mean is not the skew's doing
])
def test_skew_note_only_for_a_variance_below_its_mean_and_the_probability_from_the_columns(row, gap):
    found = parameter_findings(parameters_table([row], hdi=("hdi_25%", "hdi_75%")))
    assert found[0].text == ("EM's MAP lies inside every 50% posterior interval (1 parameter); the largest gap is "
                             f"{gap} the posterior mean.")


def test_map_close_to_the_mean_everywhere():
    rows = [("w", 0, None, None, 0.5, 0.501, 0.05, 0.4, 0.6), ("w", 1, None, None, 0.5, 0.499, 0.05, 0.4, 0.6)]
    assert parameter_findings(parameters_table(rows))[0].text == (
        "EM's MAP lies inside every 94% posterior interval and within 0.05 posterior sds of the posterior mean for "
        "all 2 parameters.")


def test_map_outside_intervals_is_a_warning_listing_the_worst_first():
    rows = INSIDE + [("mu", 1, "waiting", None, 90.0, 80.0, 1.0, 78.0, 82.0),  # z = +10
                     ("w", 1, None, None, 0.10, 0.50, 0.1, 0.33, 0.67),  # z = -4
                     ("var", 0, "eruptions", None, 1.0, 1.0, 0.0, 1.0, 1.0)]  # constant: z NaN, left out
    found = parameter_findings(parameters_table(rows))
    assert len(found) == 1 and found[0].status == WARNING
    assert found[0].text.startswith(
        "EM's MAP lies outside the 94% posterior interval of 2 of 6 parameters: mu[1, waiting] (10.00 sds above "
        "the mean), w[1] (4.00 sds below the mean). EM's optimum and the bulk of the posterior differ")
    assert "--n-init" in found[0].text


def test_more_than_three_outside_are_counted():
    rows = [("mu", k, "x", None, 10.0 + k, 0.0, 1.0, -2.0, 2.0) for k in range(5)]
    assert "mu[4, x] (14.00 sds above the mean), mu[3, x] (13.00 sds above the mean), mu[2, x] (12.00 sds above " \
           "the mean) and 2 more." in parameter_findings(parameters_table(rows))[0].text


# ---------------------------------------------------------------- assignments
def assignments_table(share, ari, n=272, mad=0.0021):
    return pd.DataFrame({"n_obs": n, "mean_abs_difference": mad, "max_abs_difference": 0.1,
                         "share_labels_differ": share, "adjusted_rand_index": ari, "em_mean_uncertainty": 0.01,
                         "posterior_mean_uncertainty": 0.012}, index=["assignments"])


def test_assignments_agree():
    assert assignment_findings(assignments_table(0.0, 1.0)) == [Finding(
        OK, "EM and the posterior put every one of the 272 observations in the same component (adjusted Rand "
            "index 1.00); their assignment probabilities differ by 0.0021 on average.", outline.ASSIGNMENTS)]
    assert "differ by less than 0.001 on average" in assignment_findings(assignments_table(0, 1, mad=1e-9))[0].text


def test_labels_that_differ_are_a_warning_with_the_count():
    found = assignment_findings(assignments_table(7 / 272, 0.912))
    assert found[0].status == WARNING
    assert found[0].text.startswith("EM and the posterior put 7 of 272 (2.6%) observations in different components "
                                    "(adjusted Rand index 0.91). These lie between components")


# ---------------------------------------------------------------- prediction
def predictive_table(em_elpd=-1142.45, post_elpd=-1141.56, pareto=0, p_loo=6.9, n_parameters=11):
    return pd.DataFrame({
        "log_score": [-1130.51, -1130.42], "log_score_per_obs": [-4.156, -4.156],
        "elpd_loo": [em_elpd, post_elpd], "elpd_loo_se": [18.2, 17.0], "p_loo": [11.9, p_loo],
        "n_pareto_k_above_0.7": [np.nan, pareto], "n_parameters": [n_parameters, n_parameters],
    }, index=["em_plugin", "posterior"])


def test_prediction_equal_and_psis_reliable():
    assert predictive_findings(predictive_table(), 272) == [
        Finding(INFO, "Out of sample: ELPD -1141.6 \u00b1 17.0 (posterior, PSIS-LOO) against -1142.5 \u00b1 18.2 "
                      "(EM, exact leave-one-out); 0.9 apart, a difference below 4, small: both predict new data "
                      "equally well.", outline.PREDICTIVE),
        Finding(OK, "PSIS-LOO is reliable: every Pareto k <= 0.7.", outline.PREDICTIVE)]


@pytest.mark.parametrize("em, post, leader", [(-1150.0, -1141.0, "the posterior"), (-1130.0, -1141.0, "EM")])
def test_prediction_names_who_predicts_better(em, post, leader):
    text = predictive_findings(predictive_table(em_elpd=em, post_elpd=post), 272)[0].text
    assert text.endswith(f"apart, {leader} predicts new data better.")


def test_many_pareto_k_above_threshold_is_a_warning():
    found = predictive_findings(predictive_table(pareto=40), 272)
    assert found[1].status == WARNING
    assert found[1].text.startswith("PSIS-LOO is unreliable for 40 of 272 (15%) observations (Pareto k > 0.7), so "
                                    "the posterior's ELPD may be optimistic. EM's exact leave-one-out is the safer")


def test_without_em_loo_the_sentence_says_why_and_does_not_point_to_it():
    found = predictive_findings(predictive_table(em_elpd=np.nan, pareto=3), 5000)
    assert found[0].text.endswith("EM's exact leave-one-out was skipped (more rows than em_loo_max_obs).")
    assert "safer" not in found[1].text


# ---------------------------------------------------------------- EM
def restarts(objectives, converged=None, n_iter=None, chosen=None):
    objectives = np.asarray(objectives, float)
    return pd.DataFrame({
        "objective": objectives,
        "converged": [True] * len(objectives) if converged is None else converged,
        "n_iter": [23] * len(objectives) if n_iter is None else n_iter,
        "chosen": np.arange(len(objectives)) == (np.argmax(objectives) if chosen is None else chosen)})


def test_em_converged_and_restarts_agree():
    found = em_findings(restarts([-1130.5123, -1130.5124, -1135.0, -1130.5123]), [0.356, 0.644], 272, 2)
    assert found == [
        Finding(OK, "EM converged in 23 iterations; 3 of 4 restarts reached the best objective (-1130.51), so the "
                    "optimum is well found.", outline.EM),
        Finding(INFO, "The component weights are 0.356 (component 0), 0.644 (component 1).", outline.EM)]


def test_em_best_reached_once_is_a_warning():
    found = em_findings(restarts([-1130.5, -1140.0, -1150.0]), [0.5, 0.5], 272, 2)
    assert found[0].status == WARNING
    assert found[0].text == ("EM converged in 23 iterations, but only 1 of 3 restarts reached the best objective "
                             "(-1130.50); the others ended 9.5 or more below it. The likelihood has several optima: "
                             "raise n_init (--n-init) to be sure the best is found.")


def test_em_not_converged_is_a_warning_with_what_to_do():
    table = restarts([-1130.5, -1131.0], converged=[False, True], n_iter=[1000, 40])
    found = em_findings(table, [0.5, 0.5], 272, 2)
    assert found[0] == Finding(WARNING, "EM did not converge: the chosen restart stopped after 1000 iterations "
                                        "(max_iter) still improving; 1 of 2 restarts converged. Raise max_iter "
                                        "(gmmflow em --max-iter) or loosen tol before trusting the estimate.",
                               outline.EM)


def test_em_single_start_and_a_nearly_empty_component():
    found = em_findings(restarts([-50.0], n_iter=[1]), [0.99, 0.01], 100, 2)
    assert found[0] == Finding(INFO, "EM converged in 1 iteration from a single start (objective -50.00); several "
                                     "restarts (n_init, --n-init) guard against a local optimum.", outline.EM)
    assert found[2] == Finding(WARNING, "Component 1 holds about 1.0 observations (weight 0.010): too few to "
                                        "estimate a 2-dimensional covariance, which the prior decides. Fewer "
                                        "components may describe the data as well.", outline.EM)
    assert len(found) == 3  # component 0 (99 observations) is not flagged


# ---------------------------------------------------------------- number of components
def selection_table(bic, icl, elpd_diff=None, dse=None, status=None, r_hat=None, divergences=None, pareto=None):
    ks = np.arange(1, len(bic) + 1)
    table = pd.DataFrame({"covariance_type": "full", "k": ks, "status": status or ["ok"] * len(ks),
                          "error": "", "n_parameters": 6 * ks - 1, "bic": bic, "icl": icl})
    table.loc[table.status != "ok", "error"] = "LinAlgError: not positive definite"
    ok = table.status == "ok"
    table["best_bic"] = table.index == table.loc[ok, "bic"].idxmin()
    table["best_icl"] = table.index == table.loc[ok, "icl"].idxmin()
    if elpd_diff is not None:
        table["elpd_diff"], table["dse"] = elpd_diff, dse
        table["elpd_loo"] = -800.0 - table["elpd_diff"]
        table["elpd_loo_se"], table["p_loo"] = 10.0, table["n_parameters"] - 0.5
        near = table[ok & (table.elpd_diff <= table.dse)]
        table["best_loo"] = table.index == near.sort_values("n_parameters").index[0]
        table["max_r_hat"] = r_hat or [1.0] * len(ks)
        table["divergences"] = divergences or [0] * len(ks)
        table["n_pareto_k_above_0.7"] = pareto or [0] * len(ks)
    return table


def test_bic_choice_by_how_much_and_who_agrees():
    table = selection_table(bic=[1650.0, 1560.0, 1532.3, 1544.8], icl=[1650.0, 1575.0, 1560.0, 1580.0],
                            elpd_diff=[60.0, 12.0, 0.0, 1.5], dse=[9.0, 4.0, 0.0, 2.0])
    assert selection_findings(table, 3, "bic") == [Finding(
        INFO, "K = 3 is shown, chosen by BIC: it has the lowest BIC, 12.5 below K = 4 (very strong evidence on "
              "Kass and Raftery's scale); ICL and LOO agree.", outline.SELECTION)]


def split_choice():
    """BIC and LOO pick K = 3 (LOO: the simplest within one se of K = 4), ICL picks K = 2."""
    return selection_table(bic=[1650.0, 1560.0, 1557.0, 1570.0], icl=[1650.0, 1562.0, 1575.0, 1590.0],
                           elpd_diff=[60.0, 5.0, 0.3, 0.0], dse=[9.0, 3.0, 1.0, 0.0])


def test_criteria_that_disagree_are_named():
    found = selection_findings(split_choice(), 3, "bic")
    assert found[0].text == ("K = 3 is shown, chosen by BIC: it has the lowest BIC, 3.0 below K = 2 (positive "
                             "evidence on Kass and Raftery's scale); LOO agrees; ICL prefers K = 2.")


def test_loo_choice_one_standard_error_rule_and_criterion_inferred():
    table = split_choice()
    found = selection_findings(table, 3, "loo")
    assert found[0].text == ("K = 3 is shown, chosen by LOO: it is the simplest model within one standard error "
                             "of the highest ELPD-LOO (K = 4: 0.3 lower, se 1.0); BIC agrees; ICL prefers K = 2.")
    assert selection_findings(table, 2, None)[0].text.startswith("K = 2 is shown, chosen by ICL: it has the "
                                                                 "lowest ICL, 13.0 below K = 3;")


def test_loo_winner_at_the_top():
    table = selection_table(bic=[1650.0, 1560.0], icl=[1650.0, 1562.0], elpd_diff=[8.0, 0.0], dse=[3.0, 0.0])
    assert selection_findings(table, 2, "loo")[0].text.startswith(
        "K = 2 is shown, chosen by LOO: it has the highest ELPD-LOO, 8.0 above K = 1 (se of the difference 3.0)")


def test_failed_cells_and_unclean_posteriors_are_warnings():
    table = selection_table(bic=[1650.0, 1560.0, np.nan], icl=[1650.0, 1562.0, np.nan],
                            elpd_diff=[8.0, 0.0, np.nan], dse=[3.0, 0.0, np.nan], status=["ok", "ok", "failed"],
                            r_hat=[1.0, 1.25, np.nan], divergences=[0, 3, 0], pareto=[0, 2, 0])
    found = selection_findings(table, 2, "bic")
    assert [f.status for f in found] == [INFO, WARNING, WARNING]
    assert found[1].text == ("K = 3 could not be fitted (LinAlgError: not positive definite); it is left out of "
                             "the choice.")
    assert found[2].text == ("The posterior of K = 2 did not sample or score cleanly (r_hat 1.25, 3 divergences, "
                             "2 Pareto k > 0.7): its ELPD-LOO is less reliable.")


@pytest.mark.parametrize("difference, words", [(1.9, "weak evidence"), (2.0, "positive evidence"),
                                               (6.0, "strong evidence"), (10.0, "very strong evidence")])
def test_kass_raftery_scale(difference, words):
    assert bic_evidence(difference) == words


def test_headline_counts_warnings():
    assert headline([Finding(OK, "a", "x"), Finding(INFO, "b", "x")]) == \
        "Nothing needs attention: every check passed."
    assert headline([Finding(WARNING, "a", "x")]) == "1 finding needs attention (marked \u26a0)."
    assert headline([Finding(WARNING, "a", "x")] * 3) == "3 findings need attention (marked \u26a0)."


def test_every_finding_points_to_a_section_of_the_page():
    found = (sampling_findings(checks_table(max_r_hat=2.0)) + parameter_findings(parameters_table(INSIDE))
             + predictive_findings(predictive_table(pareto=3), 272) + em_findings(restarts([-1.0]), [1.0], 9, 1))
    assert {f.section for f in found} <= set(outline.ORDER)
    assert not any("nan" in f.text.lower() or "\u2013 " in f.text for f in found)  # numbers, never NaN

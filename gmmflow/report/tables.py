"""The report's tables, formatted for reading: names not indices, digits per column, failures flagged.

Each ``*_table`` function turns one workflow table (or a small table of the
result) into a :class:`Table` of text cells; ``html_page`` only lays it out.
Conventions:

- the first column names the row (``w[1]``, ``mu[0, waiting]``,
  ``component 0``, ``K = 3``); no bare row index is ever shown;
- every numeric column has its own digits (``DIGITS``): estimates with 4
  significant digits, posterior sds with 2, z-scores and r_hat with 2
  decimals, log scores with 1, counts whole;
- a failed check, a MAP outside its interval, a failed fit flag their cell
  or row ``"fail"`` (drawn red), the K the report shows is flagged
  ``"chosen"``; booleans read as marks and words (``"\u2713 passed"``);
- information that cannot fail (how many draws were relabelled) is a table
  of its own, never a row of checks.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial

import numpy as np
import pandas as pd

from gmmflow.report.number_format import MISSING, beside, count_of, fixed, significant, whole
from gmmflow.workflows.compare import parameter_label
from gmmflow.workflows.diagnostics import INFORMATION, RHAT_MAX

YES, NO = "\u2713", "\u2717"  # check mark, ballot x
LESS_EQUAL, GREATER_EQUAL = "\u2264", "\u2265"

DIGITS = {
    "estimate": 4,  # EM MAP, posterior mean, HDI bounds, component means: significant digits
    "sd": 2,  # posterior sd, differences of probabilities: significant digits
    "component sd": 3,  # a component's standard deviation: significant digits
    "z": 2,  # z-scores, r_hat, correlations: decimals
    "weight": 3,  # mixture weights, adjusted Rand index: decimals
    "log score": 1,  # log scores, ELPD, BIC, ICL, p_loo: decimals
    "objective": 2,  # the EM objective of a restart: decimals
}


@dataclass(frozen=True)
class Cell:
    """One table cell: its text, ``kind`` ("label", "num" or "text") and ``flag`` ("", "ok" or "fail")."""

    text: str
    kind: str = "text"
    flag: str = ""


@dataclass(frozen=True)
class Table:
    """Header, rows of cells and one flag per row ("", "fail" or "chosen")."""

    header: tuple[str, ...]
    rows: tuple[tuple[Cell, ...], ...]
    row_flags: tuple[str, ...]


Format = Callable[[object], Cell]


def number(text: Callable[[object], str], fail: Callable[[float], bool] | None = None) -> Format:
    """A numeric column: ``text`` formats the value, ``fail`` says when its cell is flagged."""
    def cell(x) -> Cell:
        failed = fail is not None and x is not None and np.isfinite(x) and fail(x)
        return Cell(text(x), "num", "fail" if failed else "")
    return cell


def sig(digits: int, fail=None) -> Format:
    return number(partial(significant, digits=digits), fail)


def dec(decimals: int, fail=None) -> Format:
    return number(partial(fixed, decimals=decimals), fail)


def signed(decimals: int) -> Format:
    return number(lambda x: MISSING if not np.isfinite(x) else f"{x:+.{decimals}f}")


def mark(yes: str, no: str) -> Format:
    """A boolean as a mark and a word, ``False`` flagged as a failure: ``"\u2713 passed"``, ``"\u2717 failed"``."""
    return lambda x: Cell(f"{YES} {yes}", "text", "ok") if bool(x) else Cell(f"{NO} {no}", "text", "fail")


def label(x) -> Cell:
    return Cell(str(x), "label")


def numeric_text(x: str) -> Cell:
    """Numbers already written as text (``"-809.3 \u00b1 10.0"``), aligned as numbers."""
    return Cell(x, "num")


def text(x) -> Cell:
    return Cell(MISSING if x is None or x == "" else str(x))


Column = tuple[str, str, Format]  # (frame column, header, format)


def build(frame: pd.DataFrame, columns: Sequence[Column],
          row_flag: Callable[[pd.Series], str] = lambda row: "") -> Table:
    """Format ``frame`` column by column; ``row_flag(row)`` flags whole rows."""
    rows = tuple(tuple(fmt(row[key]) for key, _, fmt in columns) for _, row in frame.iterrows())
    return Table(tuple(h for _, h, _ in columns), rows, tuple(row_flag(row) for _, row in frame.iterrows()))


def key_value_table(items: Mapping[str, object], header=("setting", "value")) -> Table:
    """Two columns, one row per item."""
    frame = pd.DataFrame({"key": list(items), "value": [str(v) for v in items.values()]})
    return build(frame, [("key", header[0], label), ("value", header[1], text)])


# --------------------------------------------------------------------------
# Workflow tables
# --------------------------------------------------------------------------
def parameter_table(params: pd.DataFrame) -> Table:
    """:func:`compare`'s parameter table: one named row per parameter, MAPs outside their HDI flagged."""
    lower, upper = [c for c in params.columns if str(c).startswith("hdi_")]
    frame = params.assign(name=[parameter_label(r) for _, r in params.iterrows()])
    estimate = sig(DIGITS["estimate"])
    return build(frame, [
        ("name", "parameter", label),
        ("em", "EM MAP", estimate),
        ("mean", "posterior mean", estimate),
        ("sd", "posterior sd", sig(DIGITS["sd"])),
        (lower, f"HDI {lower[4:]}", estimate),
        (upper, f"HDI {upper[4:]}", estimate),
        ("map_in_hdi", "MAP in HDI", mark("inside", "outside")),
        ("z", "MAP \u2212 mean (sds)", signed(DIGITS["z"])),
    ], lambda row: "" if bool(row["map_in_hdi"]) else "fail")


CHECK_NAMES = {
    "divergences": "divergent transitions",
    "max r_hat": "largest r_hat",
    "min ess_bulk": "smallest bulk ESS",
    "min ess_tail": "smallest tail ESS",
    "tree depth saturated": "draws at the maximum tree depth",
    "chains": "chains",
}


def _rule(rule: str, threshold) -> str:
    if rule == "<=" and threshold == 0:
        return "= 0"
    shown = fixed(threshold, 2) if isinstance(threshold, float) and not float(threshold).is_integer() \
        else whole(threshold)
    return f"{LESS_EQUAL if rule == '<=' else GREATER_EQUAL} {shown}"


def checks_table(checks: pd.DataFrame) -> Table:
    """:func:`diagnose`'s checks (information rows left out): value, rule, passed or failed."""
    rows = checks.drop(index=[c for c in INFORMATION if c in checks.index])
    frame = pd.DataFrame({
        "check": [CHECK_NAMES.get(name, name) for name in rows.index],
        "value": [beside(v, t)[0] if name == "max r_hat" else whole(v)
                  for name, v, t in zip(rows.index, rows["value"], rows["threshold"])],
        "rule": [_rule(r, t) for r, t in zip(rows["rule"], rows["threshold"])],
        "ok": rows["ok"].astype(bool).to_numpy(),
    })
    return build(frame, [("check", "check", label), ("value", "value", lambda v: Cell(v, "num")),
                         ("rule", "passes when", text), ("ok", "result", mark("passed", "failed"))],
                 lambda row: "" if row["ok"] else "fail")


def information_table(checks: pd.DataFrame) -> Table | None:
    """:func:`diagnose`'s information rows (not checks): how many draws were relabelled, of how many."""
    if "draws relabelled" not in checks.index:
        return None
    row = checks.loc["draws relabelled"]
    return key_value_table({"draws relabelled to EM's component order": count_of(row["value"], row["threshold"])},
                           header=("information", "value"))


def assignment_table(assignments: pd.DataFrame) -> Table:
    """:func:`compare`'s assignment row, one measure per line."""
    row = assignments.iloc[0]
    n = int(row["n_obs"])
    differ = int(round(row["share_labels_differ"] * n))
    small = partial(significant, digits=DIGITS["sd"])
    measures = [
        ("observations", whole(n), ""),
        ("hard labels that differ", count_of(differ, n), "fail" if differ else ""),
        ("adjusted Rand index", fixed(row["adjusted_rand_index"], DIGITS["weight"]), ""),
        ("mean |EM \u2212 posterior| probability", small(row["mean_abs_difference"]), ""),
        ("largest |EM \u2212 posterior| probability", small(row["max_abs_difference"]), ""),
        ("mean assignment uncertainty, EM", small(row["em_mean_uncertainty"]), ""),
        ("mean assignment uncertainty, posterior", small(row["posterior_mean_uncertainty"]), ""),
    ]
    return Table(("measure", "value"), tuple((Cell(m, "label"), Cell(v, "num", f)) for m, v, f in measures),
                 ("",) * len(measures))


PREDICTIVE_ROWS = {"em_plugin": ("EM MAP (plug-in)", "exact refits"), "posterior": ("posterior", "PSIS-LOO")}


def predictive_table(predictive: pd.DataFrame) -> Table:
    """:func:`compare`'s predictive table: EM and the posterior, in and out of sample."""
    frame = predictive.assign(row=[PREDICTIVE_ROWS[i][0] for i in predictive.index],
                              method=[PREDICTIVE_ROWS[i][1] for i in predictive.index])
    score = dec(DIGITS["log score"])
    return build(frame, [
        ("row", "estimate", label),
        ("log_score", "log score (in sample)", score),
        ("log_score_per_obs", "per observation", dec(3)),
        ("elpd_loo", "ELPD-LOO", score),
        ("elpd_loo_se", "se", score),
        ("p_loo", "p_loo", score),
        ("n_parameters", "parameters", number(whole)),
        ("n_pareto_k_above_0.7", "Pareto k > 0.7", number(whole, fail=lambda k: k > 0)),
        ("method", "leave-one-out by", text),
    ])


def plus_minus(values, errors, decimals: int = DIGITS["log score"]) -> list[str]:
    """``"-809.3 \u00b1 10.0"`` per row (a dash when the value is missing)."""
    return [MISSING if pd.isna(v) else f"{fixed(v, decimals)} \u00b1 {fixed(e, decimals)}"
            for v, e in zip(values, errors)]


def _chosen_by(table: pd.DataFrame) -> list[str]:
    flags = [c for c in ("bic", "icl", "loo") if f"best_{c}" in table]
    return [", ".join(c.upper() for c in flags if bool(row[f"best_{c}"])) for _, row in table.iterrows()]


def selection_table(table: pd.DataFrame, shown: tuple[str, int]) -> Table:
    """:func:`select_components`'s table: one row per candidate, the shown one flagged ``"chosen"``."""
    ok = table["status"] == "ok"
    frame = table.assign(
        name=[f"K = {int(k)}" for k in table["k"]],
        delta_bic=table["bic"] - table.loc[ok, "bic"].min() if ok.any() else np.nan,
        chosen_by=_chosen_by(table),
        state=["ok" if s == "ok" else f"failed: {e}" for s, e in zip(table["status"], table["error"])],
    )
    if "elpd_loo" in table:
        frame = frame.assign(elpd=plus_minus(table["elpd_loo"], table["elpd_loo_se"]),
                             below=plus_minus(table["elpd_diff"], table["dse"]))
    score = dec(DIGITS["log score"])
    columns: list[Column] = [("name", "K", label)]
    if table["covariance_type"].nunique() > 1:
        columns.append(("covariance_type", "covariance", text))
    columns += [("n_parameters", "parameters", number(whole)), ("bic", "BIC", score),
                ("delta_bic", "BIC \u2212 lowest", score), ("icl", "ICL", score)]
    if "elpd_loo" in table:
        columns += [("elpd", "ELPD-LOO \u00b1 se", numeric_text),
                    ("below", "below the best ELPD \u00b1 se", numeric_text),
                    ("p_loo", "p_loo", score),
                    ("n_pareto_k_above_0.7", "Pareto k > 0.7", number(whole, fail=lambda k: k > 0)),
                    ("max_r_hat", "largest r_hat", dec(DIGITS["z"], fail=lambda r: r > RHAT_MAX)),
                    ("divergences", "divergences", number(whole, fail=lambda n: n > 0))]
    if "converged" in table:
        columns.append(("converged", "EM converged", lambda x: text(x) if pd.isna(x) else mark("yes", "no")(x)))
    columns.append(("chosen_by", "chosen by", text))
    if not ok.all():
        columns.append(("state", "status", text))

    def flag(row) -> str:
        if row["status"] != "ok":
            return "fail"
        return "chosen" if (row["covariance_type"], int(row["k"])) == shown else ""
    return build(frame, columns, flag)


def restarts_table(restarts: pd.DataFrame) -> Table:
    """EM's restarts: objective, gap to the best, converged, iterations; the chosen one flagged."""
    frame = restarts.assign(name=[f"restart {i}" for i in range(len(restarts))],
                            gap=restarts["objective"].max() - restarts["objective"])
    return build(frame, [
        ("name", "restart", label),
        ("objective", "objective", dec(DIGITS["objective"])),
        ("gap", "below the best", dec(DIGITS["objective"])),
        ("converged", "converged", mark("yes", "no")),
        ("n_iter", "iterations", number(whole)),
        ("chosen", "chosen", lambda x: Cell(f"{YES} chosen", "text", "ok") if x else Cell("")),
    ], lambda row: "chosen" if row["chosen"] else "")


def components_table(weights, means, covariances, features: Sequence[str], covariance_type: str) -> Table:
    """The EM estimate, one row per component: weight, each feature's mean and sd, correlations."""
    weights, means, covariances = np.asarray(weights), np.asarray(means), np.asarray(covariances)
    sds = np.sqrt(np.diagonal(covariances, axis1=1, axis2=2))
    data = {"name": [f"component {k}" for k in range(len(weights))], "weight": weights}
    columns: list[Column] = [("name", "component", label), ("weight", "weight", dec(DIGITS["weight"]))]
    for j, f in enumerate(features):
        data[f"mean {f}"], data[f"sd {f}"] = means[:, j], sds[:, j]
        columns += [(f"mean {f}", f"mean {f}", sig(DIGITS["estimate"])),
                    (f"sd {f}", f"sd {f}", sig(DIGITS["component sd"]))]
    if covariance_type in ("full", "tied"):
        for i, j in zip(*np.triu_indices(len(features), 1)):
            key = f"corr {features[i]}, {features[j]}"
            data[key] = covariances[:, i, j] / (sds[:, i] * sds[:, j])
            columns.append((key, key, dec(DIGITS["z"])))
    return build(pd.DataFrame(data), columns)


def calibration_table(table: pd.DataFrame, alpha: float) -> Table:
    """One row per calibrated quantity: both p-values, a failure of the ECDF test at ``alpha`` flagged."""
    frame = table.reset_index(names="quantity")
    fails = lambda p: p < alpha  # noqa: E731
    return build(frame, [("quantity", "quantity", label),
                         ("p_value", "p (ECDF band)", sig(2, fails)),
                         ("p_value_chi2", "p (chi-square)", sig(2, fails)),
                         ("passed", f"uniform at {alpha:g}", mark("passed", "failed"))],
                 row_flag=lambda row: "" if row["passed"] else "fail")


def modes_table(modes: pd.DataFrame, stacking=None) -> Table:
    """One row per posterior mode (:func:`gmmflow.find_modes`): its chains, share of draws, EM
    objective and mean sorted weights; with a ``chain_stacking`` dataset, each mode's stacking weight
    and pooled PSIS-LOO ELPD (modes no chain visited have neither)."""
    frame = modes.reset_index(drop=True).assign(
        name=[f"mode {m}" for m in range(len(modes))],
        chain_list=[", ".join(map(str, c)) if c else "none (EM optimum only)" for c in modes["chains"]],
        weight_list=[", ".join(fixed(w, DIGITS["weight"]) for w in ws) for ws in modes["weights"]])
    columns: list[Column] = [("name", "mode", label), ("chain_list", "chains", text),
                             ("share", "share of draws", dec(2)),
                             ("em_objective", "EM objective", dec(DIGITS["objective"])),
                             ("weight_list", "weights (sorted)", text)]
    if stacking is not None:
        visited = stacking.sizes["mode"]
        pad = lambda v: np.concatenate([np.asarray(v, float), np.full(len(frame) - visited, np.nan)])  # noqa: E731
        frame = frame.assign(stacking_weight=pad(stacking["mode_weight"].values),
                             elpd=pad(stacking["mode_elpd_loo"].values))
        columns += [("stacking_weight", "stacking weight", dec(DIGITS["weight"])),
                    ("elpd", "ELPD-LOO", dec(DIGITS["log score"]))]
    return build(frame, columns)

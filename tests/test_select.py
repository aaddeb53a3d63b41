"""select_components: the true K by BIC/ICL (and by LOO in the slow tier); failures are rows."""

import re

import numpy as np
import pytest

import gmmflow
from gmmflow import resources
from conftest import mixture_data


def test_bic_and_icl_pick_the_true_k_on_separated_data():
    X = mixture_data(seed=5, n_per=100, d=2, K=3, spread=6.0)
    table = gmmflow.select_components(X, ks=range(1, 6), covariance_types=("full", "diag"), n_init=3, seed=0)
    assert len(table) == 10 and (table["status"] == "ok").all()
    for criterion in ("bic", "icl"):
        best = table[table[f"best_{criterion}"]]
        assert len(best) == 1 and int(best["k"].iloc[0]) == 3
        assert best[criterion].iloc[0] == table[criterion].min()
    # the columns agree with the single-fit functions
    row = table[(table.k == 3) & (table.covariance_type == "diag")].iloc[0]
    assert row["n_parameters"] == gmmflow.GMM(3, "diag").n_parameters(2)
    assert row["bic"] == pytest.approx(-2 * row["log_likelihood"] + row["n_parameters"] * np.log(len(X)))


def test_same_seed_same_table():
    X = mixture_data(seed=1, n_per=40, K=2)
    a = gmmflow.select_components(X, ks=[1, 2, 3], seed=7, n_init=2)
    b = gmmflow.select_components(X, ks=[1, 2, 3], seed=7, n_init=2)
    assert a.equals(b)


def test_galaxies_table_all_types():
    table = gmmflow.select_components(gmmflow.load_dataset("galaxies"), ks=range(1, 7),
                                      covariance_types=("full", "tied", "diag", "spherical"), seed=0)
    assert len(table) == 24 and (table["status"] == "ok").all()
    assert np.isfinite(table[["bic", "icl", "aic"]].to_numpy()).all()
    assert (table["icl"] >= table["bic"] - 1e-9).all()  # ICL adds a non-negative entropy term


def test_a_failed_fit_is_a_row_not_a_crash():
    # K = n under the unregularised MLE: every component collapses onto one point
    X = mixture_data(seed=0, n_per=2, d=2, K=3)
    table = gmmflow.select_components(X, ks=[1, 2, 6], prior=None, reg_covar=0.0, seed=0, n_init=2)
    failed = table[table.status == "failed"]
    assert list(failed.k) == [6]
    assert "NotPositiveDefiniteError" in failed["error"].iloc[0]
    assert "Try to decrease the number of components" in failed["error"].iloc[0]
    assert (table[table.status == "ok"].k.tolist()) == [1, 2]
    assert table["best_bic"].sum() == 1 and not bool(failed["best_bic"].iloc[0])


def test_keep_fits():
    X = mixture_data(seed=2, n_per=30, K=2)
    table = gmmflow.select_components(X, ks=[1, 2], seed=0, n_init=2, keep_fits=True)
    fits = table.fits
    assert table[table.k == 2].fits is fits  # selections of the table keep its fits
    assert set(fits) == {("full", 1), ("full", 2)}
    assert float(fits[("full", 2)].em_estimate.objective) == table.set_index("k").loc[2, "objective"]


@pytest.mark.parametrize("kwargs, error, message", [
    ({"ks": []}, ValueError, "ks is empty; give at least one number of components, e.g. range(1, 7)."),
    ({"ks": [0, 1]}, ValueError, "every entry of ks must be >= 1, got 0."),
    ({"ks": [2, 500]}, ValueError, "ks contains [500] but X has only 60 rows"),
    ({"ks": "12"}, TypeError, "ks must be an iterable of whole numbers such as range(1, 7); got '12'."),
    ({"covariance_types": ["full", "banded"]}, ValueError, "covariance_types must be a non-empty list"),
    ({"mcmc": True, "prior": None}, ValueError, "mcmc=True needs a prior"),
    ({"n_init": 0}, ValueError, "n_init must be >= 1, got 0."),
])
def test_bad_arguments_fail_before_any_fit(monkeypatch, kwargs, error, message):
    monkeypatch.setattr("gmmflow.workflows.model_selection._fit_cell", lambda *a: pytest.fail("fitted"))
    with pytest.raises(error, match=re.escape(message)):
        gmmflow.select_components(mixture_data(n_per=30, K=2), **kwargs)


def test_memory_estimate_refuses_up_front(monkeypatch):
    monkeypatch.setattr(resources, "available_memory", lambda: 1e6)
    monkeypatch.setattr("gmmflow.workflows.model_selection._fit_cell", lambda *a: pytest.fail("fitted"))
    with pytest.raises(MemoryError, match=r"needs an estimated 0\.\d GiB of memory but only 0\.0 GiB is "
                                          r"available; use fewer K values"):
        gmmflow.select_components(mixture_data(n_per=30, K=2), ks=[1, 2], mcmc=True, draws=10000, chains=4)


@pytest.mark.slow
def test_loo_picks_the_true_k():
    X = mixture_data(seed=11, n_per=60, d=2, K=2, spread=6.0)
    table = gmmflow.select_components(X, ks=[1, 2, 3], mcmc=True, draws=300, tune=300, chains=2, seed=0)
    assert (table.status == "ok").all()
    assert int(table[table.best_loo].k.iloc[0]) == 2
    assert int(table[table.best_bic].k.iloc[0]) == 2
    assert {"elpd_loo", "elpd_loo_se", "p_loo", "elpd_diff", "dse", "loo_weight", "max_r_hat"} <= set(table)
    assert table.set_index("k").loc[1, "elpd_loo"] < table.set_index("k").loc[2, "elpd_loo"]

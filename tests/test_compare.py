"""compare(): every column recomputed from the InferenceData by an independent route."""

import re

import arviz as az
import numpy as np
import pandas as pd
import pytest
import xarray as xr
from sklearn.metrics import adjusted_rand_score

import gmmflow
from gmmflow.workflows.compare import adjusted_rand_index
from conftest import mixture_data, scipy_log_prob


def narrowest_interval(x, prob):
    """Textbook HDI of a sample: the shortest window holding floor(prob * n) + 1 sorted draws."""
    x = np.sort(x)
    inc = int(np.floor(prob * x.size))
    widths = x[inc:] - x[: x.size - inc]
    i = int(np.argmin(widths))
    return x[i], x[i + inc]


def _draws(idata, name):
    post = idata.posterior
    if name in ("w", "mu"):
        v = post[name].values
    else:
        cov = post["cov"].values
        sd = np.sqrt(np.diagonal(cov, axis1=-2, axis2=-1))
        v = np.diagonal(cov, axis1=-2, axis2=-1) if name == "var" else cov / (sd[..., :, None] * sd[..., None, :])
    return v.reshape(-1, *v.shape[2:])


def _em(idata, name):
    est = idata.em_estimate
    if name in ("w", "mu"):
        return est[name].values
    cov = est["cov"].values
    sd = np.sqrt(np.diagonal(cov, axis1=-2, axis2=-1))
    return np.diagonal(cov, axis1=-2, axis2=-1) if name == "var" else cov / (sd[:, :, None] * sd[:, None, :])


@pytest.mark.parametrize("d", [1, 2, 4])
def test_parameter_columns_match_independent_route(posteriors, d):
    idata = posteriors[d]
    table = gmmflow.compare(idata)
    feats = list(idata.observed_data.feature.values)
    K = idata.posterior.sizes["component"]
    expected_rows = K + K * d + K * d + K * d * (d - 1) // 2  # w, mu, var, corr (f < g)
    assert len(table) == expected_rows
    assert list(table.columns[-7:]) == ["em", "mean", "sd", "hdi_3%", "hdi_97%", "map_in_hdi", "z"]
    for _, row in table.iterrows():
        index = (row.component,) + tuple(feats.index(f) for f in (row.feature, row.feature2) if isinstance(f, str))
        draws = _draws(idata, row.parameter)[(slice(None),) + index]
        em = _em(idata, row.parameter)[index]
        lo, hi = narrowest_interval(draws, 0.94)
        assert row["em"] == pytest.approx(em, rel=1e-12, abs=1e-15)
        assert row["mean"] == pytest.approx(draws.mean(), rel=1e-12, abs=1e-15)
        assert row["sd"] == pytest.approx(draws.std(ddof=1), rel=1e-10, abs=1e-15)
        assert (row["hdi_3%"], row["hdi_97%"]) == pytest.approx((lo, hi), rel=1e-12, abs=1e-15)
        assert row["map_in_hdi"] == (lo <= em <= hi)
        assert row["z"] == pytest.approx((em - draws.mean()) / draws.std(ddof=1), rel=1e-10, abs=1e-12)


def test_xarray_form_holds_the_same_numbers(posteriors):
    idata = posteriors[2]
    ds = gmmflow.compare_parameters(idata)
    table = gmmflow.compare(idata)
    assert list(ds.statistic.values) == ["em", "mean", "sd", "hdi_lower", "hdi_upper", "map_in_hdi", "z"]
    mu = table[table.parameter == "mu"]
    for row in mu.itertuples():
        assert float(ds["mu"].sel(statistic="mean", component=row.component, feature=row.feature)) == row.mean


def test_hdi_prob_renames_and_narrows(posteriors):
    wide = gmmflow.compare(posteriors[2], hdi_prob=0.94)
    narrow = gmmflow.compare(posteriors[2], hdi_prob=0.5)
    assert {"hdi_25%", "hdi_75%"} <= set(narrow.columns)
    assert np.all(narrow["hdi_75%"] - narrow["hdi_25%"] <= wide["hdi_97%"] - wide["hdi_3%"])


def test_assignment_measures(posteriors):
    idata = posteriors[2]
    em = idata.em_estimate.responsibilities.values
    post = idata.posterior_assignment.posterior_assignment.values
    table = gmmflow.compare(idata, "assignments")
    assert list(table.index) == ["assignments"]  # one row, as every compare() result is a table
    result = table.iloc[0]
    assert result["mean_abs_difference"] == pytest.approx(np.mean(np.abs(em - post)), rel=1e-12)
    assert result["share_labels_differ"] == np.mean(em.argmax(1) != post.argmax(1))
    assert result["adjusted_rand_index"] == pytest.approx(adjusted_rand_score(em.argmax(1), post.argmax(1)))
    assert result["n_obs"] == em.shape[0]


@pytest.mark.parametrize("seed", range(5))
def test_adjusted_rand_index_matches_sklearn(seed):
    rng = np.random.default_rng(seed)
    a, b = rng.integers(0, 3, 50), rng.integers(0, 4, 50)
    assert adjusted_rand_index(a, b) == pytest.approx(adjusted_rand_score(a, b), abs=1e-12)
    assert adjusted_rand_index(a, (a + 1) % 3) == pytest.approx(1.0)  # relabelled partition


def test_predictive_scores(posteriors):
    idata = posteriors[2]
    X = idata.observed_data.x.values
    est = idata.em_estimate
    table = gmmflow.compare(idata, "predictive")
    em_score = np.logaddexp.reduce(scipy_log_prob(X, est.w.values, est.mu.values, est.cov.values), axis=1).sum()
    assert table.loc["em_plugin", "log_score"] == pytest.approx(em_score, rel=1e-10)
    ll = idata.log_likelihood.x.values.reshape(-1, X.shape[0])
    top = ll.max(0)
    lppd = np.sum(np.log(np.mean(np.exp(ll - top), axis=0)) + top)
    assert table.loc["posterior", "log_score"] == pytest.approx(lppd, rel=1e-10)
    loo = az.loo(idata)
    assert table.loc["posterior", "elpd_loo"] == pytest.approx(loo.elpd_loo)
    assert table.loc["posterior", "p_loo"] == pytest.approx(lppd - loo.elpd_loo, rel=1e-8)
    assert table.loc["em_plugin", "p_loo"] == pytest.approx(em_score - table.loc["em_plugin", "elpd_loo"])
    assert np.isnan(gmmflow.compare(idata, "predictive", em_loo_max_obs=10).loc["em_plugin", "elpd_loo"])


def test_em_leave_one_out_matches_refits_without_each_row(posteriors):
    """Independent route: delete row i, refit from the estimate with the full-data prior, score x_i."""
    idata = posteriors[1]
    X = idata.observed_data.x.values
    hyper = gmmflow.results.from_idata.hyperparameters_from_idata(idata)
    prior = gmmflow.Prior(alpha=hyper.alpha, mean=hyper.mean, shrinkage=hyper.shrinkage, dof=hyper.dof,
                          scale=hyper.scale)
    est = idata.em_estimate
    start = {"weights": est.w.values, "means": est.mu.values, "covariances": est.cov.values}
    model = gmmflow.GMM(est.sizes["component"], prior=prior)
    expected = []
    for i in range(len(X)):
        rest = np.delete(X, i, axis=0)
        fit = gmmflow.fit_em(model, rest, init=start, seed=0)
        e = fit.em_estimate
        expected.append(np.logaddexp.reduce(scipy_log_prob(X[i:i + 1], e.w.values, e.mu.values, e.cov.values),
                                            axis=1)[0])
    table = gmmflow.compare(idata, "predictive")
    assert table.loc["em_plugin", "elpd_loo"] == pytest.approx(np.sum(expected), rel=1e-8)
    se = np.sqrt(len(X) * np.var(expected, ddof=1))
    assert table.loc["em_plugin", "elpd_loo_se"] == pytest.approx(se, rel=1e-6)
    # out of sample is worse than in sample, by about the number of parameters (AIC's penalty)
    p = table.loc["em_plugin", "p_loo"]
    assert 0 < p < 2 * table.loc["em_plugin", "n_parameters"]


@pytest.mark.parametrize("kwargs, message", [
    ({"kind": "params"}, "kind must be one of 'parameters', 'assignments', 'predictive'; got 'params'."),
    ({"hdi_prob": 1.5}, "hdi_prob must be a number in (0, 1), e.g. 0.94; got 1.5."),
])
def test_bad_arguments(posteriors, kwargs, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        gmmflow.compare(posteriors[2], **kwargs)


def test_em_only_result_is_refused():
    em = gmmflow.fit_em(gmmflow.GMM(2), mixture_data(n_per=30, K=2), seed=0)
    with pytest.raises(ValueError, match=re.escape("This result has no posterior group(s); compare needs a gmmflow.sample_posterior result")):
        gmmflow.compare(em)
    with pytest.raises(TypeError, match="compare needs an arviz.InferenceData, got ndarray"):
        gmmflow.compare(np.zeros(3))


@pytest.mark.slow
def test_real_posterior_covers_the_truth():
    """NUTS on data simulated from known parameters: the truth sits in most 94% HDIs.

    With 11 free parameters and 94% intervals about 0.7 misses are expected;
    at most 2 are allowed (seeded, so the outcome is fixed).
    """
    rng = np.random.default_rng(3)
    truth_mu = np.array([[0.0, 0.0], [5.0, 5.0]])
    truth_cov = np.array([[[1.0, 0.5], [0.5, 1.0]], [[1.0, -0.3], [-0.3, 0.5]]])
    labels = rng.random(400) < 0.3
    X = np.where(labels[:, None], rng.multivariate_normal(truth_mu[0], truth_cov[0], 400),
                 rng.multivariate_normal(truth_mu[1], truth_cov[1], 400))
    idata = gmmflow.sample_posterior(gmmflow.GMM(2), X, draws=400, tune=400, chains=2, seed=0, progressbar=False)
    table = gmmflow.compare(idata)
    est_order = np.argsort(idata.em_estimate.mu.values[:, 0])  # component matching the truth's order
    truth = {"w": np.array([0.3, 0.7]), "mu": truth_mu, "var": np.diagonal(truth_cov, axis1=1, axis2=2)}
    misses = 0
    for _, row in table[table.parameter.isin(["w", "mu", "var"])].iterrows():
        k = int(np.where(est_order == row.component)[0][0])
        value = truth[row.parameter][k] if row.parameter == "w" else truth[row.parameter][k, int(row.feature.lstrip("x"))]
        misses += not (row["hdi_3%"] <= value <= row["hdi_97%"])
    assert misses <= 2
    assert gmmflow.compare(idata, "assignments").loc["assignments", "adjusted_rand_index"] > 0.95


@pytest.mark.parametrize("kind", ["parameters", "assignments", "predictive"])
def test_every_kind_returns_a_dataframe(posteriors, kind):
    """One return type for compare(); the labelled form is compare_parameters()."""
    assert type(gmmflow.compare(posteriors[2], kind, em_loo_max_obs=0)) is pd.DataFrame
    assert isinstance(gmmflow.compare_parameters(posteriors[2]), xr.Dataset)


def test_a_failed_leave_one_out_refit_scores_nan_and_the_others_stay(posteriors, monkeypatch):
    from gmmflow.workflows import compare as compare_module

    idata = posteriors[1]
    scores = compare_module.em_loo_pointwise(idata)
    real = compare_module.weighted_refits

    def first_fails(*args, **kwargs):
        return [None] + real(*args, **kwargs)[1:]

    monkeypatch.setattr(compare_module, "weighted_refits", first_fails)
    broken = compare_module.em_loo_pointwise(idata)
    assert np.isnan(broken[0]) and np.array_equal(broken[1:], scores[1:])

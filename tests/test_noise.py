"""The noise component (GMM(noise=True)) against R mclust's noise model, simulation and bad input.

Reference values: tests/reference/mclust_noise_reference.json, made by
bench/mclust_noise_reference.R (tests/reference/README.md says how). No R needed here.
"""

import json
import re
import warnings
from pathlib import Path

import numpy as np
import pytest
from scipy.special import logsumexp
from scipy.stats import multivariate_normal

import gmmflow
from gmmflow import schema as S
from gmmflow.core.em_steps import Params
from gmmflow.core.gaussian import compact_covariances
from gmmflow.core.noise import block_extremes, combine_extremes, log_hypervolume, principal_axes
from gmmflow.workflows.prediction import log_resp_and_norm

ROOT = Path(__file__).resolve().parent.parent
REF = json.loads((ROOT / "tests" / "reference" / "mclust_noise_reference.json").read_text())
DATASETS = REF["datasets"]
TYPES = {"VVV": "full", "EEE": "tied", "VVI": "diag", "VII": "spherical"}
FIT_CASES = [(name, key) for name, data in DATASETS.items() for key, fit in data["fits"].items()
             if "failed" not in fit]
# as tests/test_mclust_reference.py: a fixed point of mclust's EM moves by at most this much
# relative under one gmmflow EM step
PARAM_RTOL = 1e-7
LOGLIK_RTOL = 1e-10


def data(name):
    return np.asarray(DATASETS[name]["X"], dtype=np.float64)


def model_for(key, **kw):
    t = TYPES[key.split("_")[0]]
    return gmmflow.GMM(2, t, prior="mclust" if key.endswith("_prior") else None, reg_covar=0.0, noise=True, **kw)


def mclust_params(fit, t):
    sigma = np.asarray(fit["sigma"])
    return Params.from_cov(fit["pro"], fit["mean"], compact_covariances(sigma, t), t,
                           log_noise_density=float(np.log(fit["Vinv"])))


def mclust_init(fit, t):
    p = mclust_params(fit, t)
    return {"weights": p.weights, "means": p.means, "covariances": p.cov}


def fit_quietly(model, X, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return gmmflow.fit_em(model, X, seed=0, **kw)


def all_weights(idata):
    est = idata[S.EM_ESTIMATE]
    return np.append(est["w"].values, float(est[S.NOISE_WEIGHT]))


# --------------------------------------------------------------------------
# the volume and the density against mclust
# --------------------------------------------------------------------------
@pytest.mark.parametrize("name", list(DATASETS))
def test_default_volume_is_mclust_hypvol(name):
    """log V = min(log box volume, log PC box volume) = log(hypvol(X)); the two boxes separately too."""
    X, ref = data(name), DATASETS[name]
    extremes = block_extremes(X, principal_axes(np.cov(X, rowvar=False)))
    ranges = extremes[1] - extremes[0]
    np.testing.assert_allclose(np.log(ranges[:2]).sum(), ref["log_box_volume"], rtol=1e-13)
    np.testing.assert_allclose(np.log(ranges[2:]).sum(), ref["log_pc_box_volume"], rtol=1e-13)
    np.testing.assert_allclose(log_hypervolume(extremes), np.log(ref["hypvol"]), rtol=1e-13)
    idata = fit_quietly(gmmflow.GMM(2, noise=True), X, n_init=1)
    np.testing.assert_allclose(idata.attrs[S.NOISE_LOG_VOLUME_ATTR], np.log(ref["hypvol"]), rtol=1e-13)


def test_extremes_of_blocks_combine_to_those_of_all_rows():
    X = data("faithful")
    axes = principal_axes(np.cov(X, rowvar=False))
    parts = [block_extremes(X[a:a + 50], axes) for a in range(0, X.shape[0], 50)]
    np.testing.assert_array_equal(combine_extremes(parts), block_extremes(X, axes))


@pytest.mark.parametrize("name,key", FIT_CASES)
def test_density_and_responsibilities_equal_mclust_estep(name, key):
    """At mclust's fixed point: sum_i log p(x_i) equals estep()'s loglik, the (n, K+1)
    responsibilities its z (noise column last), and both equal a scipy computation."""
    X, fit = data(name), DATASETS[name]["fits"][key]
    t = TYPES[key.split("_")[0]]
    params = mclust_params(fit["fixed_point"], t)
    log_resp, log_norm = log_resp_and_norm(params, X)
    np.testing.assert_allclose(log_norm.sum(), fit["estep"]["loglik"], rtol=1e-12)
    np.testing.assert_allclose(np.exp(log_resp), np.asarray(fit["estep"]["z"]), atol=1e-10)
    sigma = np.asarray(fit["fixed_point"]["sigma"])
    pro = np.asarray(fit["fixed_point"]["pro"])
    joint = np.column_stack([np.log(pro[k]) + multivariate_normal(params.means[k], sigma[k]).logpdf(X)
                             for k in range(2)] + [np.full(X.shape[0], np.log(pro[2] * fit["fixed_point"]["Vinv"]))])
    np.testing.assert_allclose(log_norm, logsumexp(joint, axis=1), rtol=1e-12)


@pytest.mark.parametrize("name,key", FIT_CASES)
def test_em_stays_at_mclust_noise_optimum(name, key):
    """EM from mclust's fixed point (its own V) stays there: parameters to 1e-7, log L to 1e-10,
    and the BIC is mclust's (sign flipped) with the same parameter count."""
    X, fit = data(name), DATASETS[name]["fits"][key]
    fp = fit["fixed_point"]
    model = model_for(key)
    idata = fit_quietly(model, X, n_init=1, init=mclust_init(fp, model.covariance_type), tol=1e-14)
    est = idata[S.EM_ESTIMATE]
    np.testing.assert_allclose(all_weights(idata), fp["pro"], rtol=PARAM_RTOL)
    np.testing.assert_allclose(est["mu"].values, fp["mean"], rtol=PARAM_RTOL, atol=1e-9)
    np.testing.assert_allclose(est["cov"].values, fp["sigma"], rtol=PARAM_RTOL, atol=1e-9)
    np.testing.assert_allclose(float(est["log_likelihood"]), fp["loglik"], rtol=LOGLIK_RTOL)
    assert model.n_parameters(2) == fp["n_par"]
    np.testing.assert_allclose(gmmflow.bic(idata), -fp["bic"], rtol=LOGLIK_RTOL)


@pytest.mark.parametrize("key", [k for k in DATASETS["simulated"]["fits"]])
def test_default_search_reaches_mclust_noise_objective(key):
    """From gmmflow's own starts (hc + k-means++, noise weight 0.1), EM reaches mclust's optimum
    (mclust started from the true noise rows): the same log-likelihood to 1e-8 relative."""
    X, fp = data("simulated"), DATASETS["simulated"]["fits"][key]["fixed_point"]
    idata = fit_quietly(model_for(key), X, tol=1e-12)
    np.testing.assert_allclose(float(idata[S.EM_ESTIMATE]["log_likelihood"]), fp["loglik"], rtol=1e-8)


# --------------------------------------------------------------------------
# recovery on simulated clusters + 10% uniform background
# --------------------------------------------------------------------------
MEANS = np.array([[0.0, 0.0], [4.0, 3.0]])
SDS = np.array([0.5, 0.7])
BOX = np.array([[-4.0, -4.0], [8.0, 7.0]])
SHARES = np.array([0.45, 0.45, 0.10])  # the two clusters, then the background


def simulate(n, rng):
    labels = rng.choice(3, size=n, p=SHARES)
    X = np.empty((n, 2))
    for k in range(2):
        X[labels == k] = rng.normal(MEANS[k], SDS[k], size=((labels == k).sum(), 2))
    X[labels == 2] = rng.uniform(BOX[0], BOX[1], size=((labels == 2).sum(), 2))
    return X, labels


@pytest.mark.parametrize("covariance_type", ["full", "tied", "diag", "spherical"])
@pytest.mark.parametrize("seed", range(3))
def test_noise_weight_and_means_recovered(covariance_type, seed):
    """Tolerances from the simulation's own spread: the noise weight within 5 binomial standard
    errors sqrt(p (1 - p) / n) of 0.10, each mean coordinate within 5 sd / sqrt(n p_k) of the truth
    (normal approximations; each check fails with probability < 1e-6 if the estimator is unbiased
    and as efficient as the known-label one, so all 5 checks x 12 cases < 1e-4)."""
    n = 3000
    X, _ = simulate(n, np.random.default_rng(100 + seed))
    idata = fit_quietly(gmmflow.GMM(2, covariance_type, noise=True), X, n_init=3, init="kmeans++")
    est = idata[S.EM_ESTIMATE]
    w0 = float(est[S.NOISE_WEIGHT])
    assert abs(w0 - SHARES[2]) <= 5 * np.sqrt(SHARES[2] * (1 - SHARES[2]) / n)
    mu = est["mu"].values
    order = np.argsort(mu[:, 0])
    tol = 5 * SDS / np.sqrt(n * SHARES[:2])
    assert np.all(np.abs(mu[order] - MEANS) <= tol[:, None])


def test_predict_labels_noise_minus_one():
    """Rows far from both clusters are noise (-1); predict_proba has K+1 columns summing to one."""
    X, labels = simulate(2000, np.random.default_rng(7))
    idata = fit_quietly(gmmflow.GMM(2, noise=True), X, n_init=2, init="kmeans++")
    proba = gmmflow.predict_proba(idata, X)
    assert proba.shape == (2000, 3)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-12)
    pred = gmmflow.predict(idata, X)
    assert set(np.unique(pred)) == {-1, 0, 1}
    np.testing.assert_array_equal(pred == -1, proba.argmax(axis=1) == 2)
    far = np.min(np.linalg.norm(X[:, None, :] - MEANS[None], axis=2) / SDS, axis=1) > 5
    assert np.all(pred[far] == -1)
    # the density of a row far from both clusters is the noise's, w_0 / V
    far_row = np.array([[7.9, -3.9]])
    w0, log_v = float(idata[S.EM_ESTIMATE][S.NOISE_WEIGHT]), idata.attrs[S.NOISE_LOG_VOLUME_ATTR]
    np.testing.assert_allclose(gmmflow.score_samples(idata, far_row), np.log(w0) - log_v, rtol=1e-12)
    stored = np.column_stack([idata[S.EM_ESTIMATE][S.RESPONSIBILITIES].values,
                              idata[S.EM_ESTIMATE][S.NOISE_RESPONSIBILITY].values])
    np.testing.assert_allclose(stored, proba, rtol=1e-12, atol=1e-300)


def test_map_objective_is_loglik_plus_prior_over_k_plus_one_weights():
    """objective = sum_i log(sum_k w_k N_k + w_0/V) (scipy) + log prior, whose Dirichlet is over K+1 weights:
    moving the noise weight changes the log prior only through log Dirichlet(w | alpha 1_{K+1})."""
    X = data("simulated")
    prior = gmmflow.Prior(alpha=2.0)
    idata = fit_quietly(gmmflow.GMM(2, prior=prior, noise=True), X, n_init=2, tol=1e-14)
    est = idata[S.EM_ESTIMATE]
    w = all_weights(idata)
    log_v = idata.attrs[S.NOISE_LOG_VOLUME_ATTR]
    joint = [np.log(w[k]) + multivariate_normal(est["mu"].values[k], est["cov"].values[k]).logpdf(X)
             for k in range(2)]
    loglik = logsumexp(np.column_stack(joint + [np.full(len(X), np.log(w[2]) - log_v)]), axis=1).sum()
    np.testing.assert_allclose(float(est["log_likelihood"]), loglik, rtol=1e-12)
    assert w.sum() == pytest.approx(1.0, abs=1e-14)
    # a fixed point of the weights' M-step under Dirichlet(2 1_3): w_j = (n_j + 1) / (n + 3)
    n_j = np.append(est[S.RESPONSIBILITIES].values.sum(0), est[S.NOISE_RESPONSIBILITY].values.sum())
    np.testing.assert_allclose(w, (n_j + 1) / (len(X) + 3), rtol=1e-6)


def test_noise_volume_given_is_used():
    X = data("simulated")
    idata = fit_quietly(gmmflow.GMM(2, noise=True, noise_volume=500.0), X, n_init=1)
    assert idata.attrs[S.NOISE_LOG_VOLUME_ATTR] == pytest.approx(np.log(500.0), rel=1e-15)
    assert gmmflow.GMM.from_json(idata.attrs[S.MODEL_ATTR]).noise_volume == 500.0


def test_noise_results_round_trip_and_predict_after_load(tmp_path):
    X = data("simulated")
    idata = fit_quietly(gmmflow.GMM(2, "diag", noise=True), X, n_init=2)
    path = tmp_path / "noise.nc"
    gmmflow.save(idata, path)
    back = gmmflow.load(path)
    np.testing.assert_array_equal(gmmflow.predict(back, X), gmmflow.predict(idata, X))
    assert float(back[S.EM_ESTIMATE][S.NOISE_WEIGHT]) == float(idata[S.EM_ESTIMATE][S.NOISE_WEIGHT])
    assert back[S.EM_RESTARTS][S.NOISE_WEIGHT].dims == (S.RESTART,)


def test_noise_on_dask_equals_in_memory():
    da = pytest.importorskip("dask.array")
    X = data("faithful")
    model = gmmflow.GMM(2, noise=True)
    mem = fit_quietly(model, X, n_init=2)
    chunked = fit_quietly(model, da.from_array(X, chunks=(100, 2)), n_init=2)
    assert chunked.attrs[S.NOISE_LOG_VOLUME_ATTR] == pytest.approx(mem.attrs[S.NOISE_LOG_VOLUME_ATTR], rel=1e-14)
    np.testing.assert_allclose(all_weights(chunked), all_weights(mem), rtol=1e-9)
    np.testing.assert_allclose(float(chunked[S.EM_ESTIMATE]["objective"]),
                               float(mem[S.EM_ESTIMATE]["objective"]), rtol=1e-12)


def test_without_noise_nothing_changes():
    """noise=False: no noise variables or attrs, K weights summing to one."""
    idata = fit_quietly(gmmflow.GMM(2), data("faithful"), n_init=1)
    assert S.NOISE_WEIGHT not in idata[S.EM_ESTIMATE]
    assert S.NOISE_LOG_VOLUME_ATTR not in idata.attrs
    assert float(idata[S.EM_ESTIMATE]["w"].sum()) == pytest.approx(1.0, abs=1e-14)


# --------------------------------------------------------------------------
# bad input: clear errors before any work
# --------------------------------------------------------------------------
@pytest.mark.parametrize("volume", [0.0, -1.0, float("nan"), float("inf"), "big"])
def test_bad_noise_volume_refused(volume):
    with pytest.raises(ValueError, match=re.escape("noise_volume must be a finite number > 0")):
        gmmflow.GMM(2, noise=True, noise_volume=volume)


def test_noise_volume_without_noise_refused():
    with pytest.raises(ValueError, match=re.escape("noise_volume=10.0 is given but noise=False; pass noise=True")):
        gmmflow.GMM(2, noise_volume=10.0)


def test_noise_must_be_bool():
    with pytest.raises(TypeError, match=re.escape("noise must be True or False, got str 'yes'.")):
        gmmflow.GMM(2, noise="yes")


def test_flat_data_refused_before_em():
    X = np.column_stack([np.random.default_rng(0).normal(size=50), np.ones(50)])
    with pytest.raises(ValueError, match=re.escape("the data's bounding box is flat (feature(s) [1] are constant)")):
        gmmflow.fit_em(gmmflow.GMM(2, noise=True), X, seed=0)
    # a given volume makes it well defined (the prior keeps the flat feature's variance positive)
    fit_quietly(gmmflow.GMM(2, noise=True, noise_volume=10.0), X, n_init=1)


def test_init_weights_need_k_plus_one_entries():
    with pytest.raises(ValueError, match=re.escape("init['weights'] must have shape (3,) for n_components=2, "
                                                   "2 feature(s) and noise=True and covariance_type='full'")):
        gmmflow.fit_em(gmmflow.GMM(2, noise=True), data("faithful"), init={"weights": [0.5, 0.5]})


def test_sample_em_refuses_noise_model():
    idata = fit_quietly(gmmflow.GMM(2, noise=True), data("faithful"), n_init=1)
    with pytest.raises(ValueError, match=re.escape("sample_em does not draw from a noise model")):
        gmmflow.sample_em(idata, 10)


# --------------------------------------------------------------------------
# the PyMC model and NUTS
# --------------------------------------------------------------------------
@pytest.mark.parametrize("t", ["full", "tied", "diag", "spherical"])
def test_pymc_density_equals_em_objective(t):
    """PyMC's logp (no Jacobian) at the EM-MAP equals EM's objective, and at another point its
    pointwise likelihood equals scipy's log(sum_k w_k N_k + w_0 / V)."""
    pytest.importorskip("pymc")
    from gmmflow.models.pymc_model import covariance_value_name, unconstrained_point_function

    X = data("simulated")
    spec = gmmflow.GMM(2, t, noise=True)
    idata = fit_quietly(spec, X, n_init=2)
    est = idata[S.EM_ESTIMATE]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = spec.pymc_model(X)  # the volume from X, as EM took it
    cname = covariance_value_name(t)
    to_point = unconstrained_point_function(model)
    values = {"w": all_weights(idata), "mu": est["mu"].values, cname: compact_covariances(est["cov"].values, t)}
    np.testing.assert_allclose(model.compile_logp(jacobian=False)(to_point(values)), float(est["objective"]),
                               rtol=1e-12)
    other = values | {"w": np.array([0.3, 0.5, 0.2]), "mu": values["mu"] + 0.3}
    pointwise = model.compile_fn(model.logp(vars=model.observed_RVs, sum=False)[0])(to_point(other))
    covs = est["cov"].values
    log_v = idata.attrs[S.NOISE_LOG_VOLUME_ATTR]
    joint = [np.log(other["w"][k]) + multivariate_normal(other["mu"][k], covs[k]).logpdf(X) for k in range(2)]
    ref = logsumexp(np.column_stack(joint + [np.full(len(X), np.log(0.2) - log_v)]), axis=1)
    np.testing.assert_allclose(pointwise, ref, rtol=1e-12)


def test_pymc_noise_model_has_no_generative_form():
    pytest.importorskip("pymc")
    with pytest.raises(ValueError, match=re.escape("A noise model has only the marginalised form")):
        gmmflow.GMM(2, noise=True).pymc_model(data("faithful"), marginalized=False)


def test_posterior_predictive_refused_for_noise_before_any_work():
    with pytest.raises(ValueError, match=re.escape("posterior_predictive=True cannot draw a noise model's rows")):
        gmmflow.sample_posterior(gmmflow.GMM(2, noise=True), data("faithful"), posterior_predictive=True)


@pytest.mark.slow
def test_nuts_samples_the_noise_model():
    """2 chains x 200 draws: the posterior has noise_weight per draw, near the EM-MAP (within 4 posterior
    sds: fails with probability < 1e-3 for a near-normal posterior whose mode is its mean), and
    noise_assignment per row; the result round-trips and predicts with -1."""
    X = data("simulated")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        idata = gmmflow.sample_posterior(gmmflow.GMM(2, noise=True), X, seed=3, draws=200, tune=200, chains=2,
                                         progressbar=False)
    w0 = idata[S.POSTERIOR][S.NOISE_WEIGHT]
    assert w0.dims == S.SAMPLE_DIMS
    assert abs(float(w0.mean()) - float(idata[S.EM_ESTIMATE][S.NOISE_WEIGHT])) <= 4 * float(w0.std())
    total = idata[S.POSTERIOR]["w"].sum(S.COMPONENT) + w0
    np.testing.assert_allclose(total.values, 1.0, rtol=1e-12)
    assign = np.column_stack([idata[S.POSTERIOR_ASSIGNMENT][S.POSTERIOR_ASSIGNMENT].values,
                              idata[S.POSTERIOR_ASSIGNMENT][S.NOISE_ASSIGNMENT].values])
    np.testing.assert_allclose(assign.sum(axis=1), 1.0, rtol=1e-12)
    # the 30 background rows (the last) are mostly noise: more than half of them (mclust finds 34 noise rows)
    assert (assign[-30:, 2] > 0.5).sum() > 15
    assert np.all(np.isfinite(idata[S.LOG_LIKELIHOOD][S.X].values))


def test_gibbs_samples_the_noise_model():
    """A short Gibbs run draws the noise as one more class (core/gibbs.py): noise_weight per draw with the
    weights summing to one, noise_assignment per row, background rows mostly noise; the conditionals are
    tested in tests/test_gibbs_noise_missing.py, the agreement with NUTS in the slow tier there."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        idata = gmmflow.sample_posterior(gmmflow.GMM(2, noise=True), data("simulated"), sampler="gibbs", seed=3,
                                         draws=100, tune=50, chains=2, progressbar=False)
    w0 = idata[S.POSTERIOR][S.NOISE_WEIGHT]
    assert w0.dims == S.SAMPLE_DIMS and idata.attrs["method"] == "gibbs"
    np.testing.assert_allclose((idata[S.POSTERIOR]["w"].sum(S.COMPONENT) + w0).values, 1.0, rtol=1e-12)
    assign = np.column_stack([idata[S.POSTERIOR_ASSIGNMENT][S.POSTERIOR_ASSIGNMENT].values,
                              idata[S.POSTERIOR_ASSIGNMENT][S.NOISE_ASSIGNMENT].values])
    np.testing.assert_allclose(assign.sum(axis=1), 1.0, rtol=1e-12)
    assert (assign[-30:, 2] > 0.5).sum() > 15  # as NUTS's test above


def test_bootstrap_refuses_noise_model():
    idata = fit_quietly(gmmflow.GMM(2, noise=True), data("faithful"), n_init=1)
    with pytest.raises(ValueError, match=re.escape("bootstrap does not refit noise models (GMM(noise=True)) yet")):
        gmmflow.bootstrap(idata, data("faithful"), n_boot=5, seed=0)


# --------------------------------------------------------------------------
# plots and report
# --------------------------------------------------------------------------
def test_clusters_plot_draws_noise_rows_apart():
    import matplotlib.pyplot as plt

    X = data("simulated")
    idata = fit_quietly(gmmflow.GMM(2, noise=True), X, n_init=2)
    ax = gmmflow.plots.plot_clusters(idata)
    by_gid = {c.get_gid(): c.get_offsets() for c in ax.collections}
    noise = gmmflow.predict(idata, X) == -1
    assert noise.sum() > 0
    np.testing.assert_array_equal(by_gid["noise"], X[noise])
    np.testing.assert_array_equal(by_gid["data"], X[~noise])
    plt.close("all")


def test_report_states_the_noise_component(tmp_path):
    X = data("simulated")
    idata = fit_quietly(gmmflow.GMM(2, noise=True, noise_volume=150.0), X, n_init=2)
    gmmflow.write_report(idata, tmp_path / "report")
    page = (tmp_path / "report" / "report.html").read_text()
    n_noise = int((gmmflow.predict(idata, X) == -1).sum())
    w0 = float(idata[S.EM_ESTIMATE][S.NOISE_WEIGHT])
    assert f"uniform component, EM weight {w0:.3g}, {n_noise} rows most probably noise" in page
    assert "region volume V = 150 (log V = 5.011; given)" in page



def test_noise_without_prior_is_mclusts_mle_and_not_sampled():
    """prior=None is defined for EM (mclust's noise model is an MLE; tested against it above); the posterior
    is improper without a prior, so sampling refuses before any work, as without noise."""
    model = gmmflow.GMM(2, prior=None, noise=True)
    assert np.isfinite(float(fit_quietly(model, data("faithful"), n_init=1)[S.EM_ESTIMATE]["objective"]))
    with pytest.raises(ValueError, match=re.escape("sample_posterior needs a prior; GMM(..., prior=None) is for "
                                                   "the MLE only.")):
        gmmflow.sample_posterior(model, data("faithful"))

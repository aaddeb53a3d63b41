"""Modes of a multimodal posterior and stacking of non-mixing chains.

Chains are built by hand around two known parameter sets (two different
clusterings of the same data), so which chains share a mode is known; the
stacking weights are checked against ArviZ's own stacking (``az.compare``,
an optimiser over the same per-chain PSIS-LOO densities) and their invariants.
"""

from __future__ import annotations

import json
import re
import warnings

import arviz as az
import numpy as np
import pytest
import xarray as xr
from scipy import stats

import gmmflow
from gmmflow import schema as S
from gmmflow.core.stacking import stacked_elpd, stacking_weights
from gmmflow.workflows.modes import group_chains


def _fake_posterior(seed=0, D=300, d=1, layout="AABB"):
    """4 chains x D draws, K = 2 with unit covariances, d features: each chain near mode A or B of
    ``layout`` (the clusterings differ along feature 0; the other features' means are 0), with the
    data in ``observed_data`` and the draws' exact pointwise log-likelihood."""
    rng = np.random.default_rng(seed)
    X = np.column_stack([np.concatenate([rng.normal(-2, 1, 60), rng.normal(2, 1, 40)]),
                         rng.normal(size=(100, d - 1))])
    modes = {"A": (np.array([0.6, 0.4]), np.array([-2.0, 2.0])), "B": (np.array([0.05, 0.95]), np.array([5.0, 0.0]))}
    w, mu, ll = [], [], []
    for name in layout:
        wc = np.clip(modes[name][0] + 0.01 * rng.standard_normal((D, 2)), 1e-3, None)
        wc /= wc.sum(1, keepdims=True)
        mc = np.zeros((D, 2, d))
        mc[:, :, 0] = modes[name][1]
        mc += 0.05 * rng.standard_normal((D, 2, d))
        dens = wc[:, :, None] * np.prod(stats.norm.pdf(X[None, None], mc[:, :, None]), axis=-1)
        w.append(wc), mu.append(mc), ll.append(np.log(dens.sum(1)))
    cov = np.broadcast_to(np.eye(d), (len(layout), D, 2, d, d)).copy()
    post = xr.Dataset({"w": ((S.CHAIN, S.DRAW, S.COMPONENT), np.array(w)),
                       "mu": ((S.CHAIN, S.DRAW, S.COMPONENT, S.FEATURE), np.array(mu)),
                       "cov": ((S.CHAIN, S.DRAW, S.COMPONENT, S.FEATURE, S.FEATURE2), cov)},
                      coords={S.FEATURE: [f"x{j}" for j in range(d)]})
    loglik = xr.Dataset({S.X: ((S.CHAIN, S.DRAW, S.OBS), np.array(ll))})
    observed = xr.Dataset({S.X: ((S.OBS, S.FEATURE), X)}, coords={S.FEATURE: [f"x{j}" for j in range(d)]})
    return az.InferenceData(**{S.POSTERIOR: post, S.LOG_LIKELIHOOD: loglik, S.OBSERVED_DATA: observed})


def test_chains_are_grouped_by_the_mode_they_sit_in():
    idata = _fake_posterior()
    modes = gmmflow.find_modes(idata)
    assert [sorted(c) for c in modes["chains"]] == [[0, 1], [2, 3]]
    assert modes["share"].tolist() == [0.5, 0.5]
    assert modes["weights"][1] == pytest.approx([0.05, 0.95], abs=0.01)
    assert modes["log_likelihood"][0] > modes["log_likelihood"][1]  # A is the clustering the data came from


def test_stacking_matches_arviz_and_records_weights():
    idata = _fake_posterior()
    stacked = gmmflow.stack_chains(idata)[S.CHAIN_STACKING]
    weights = stacked[S.STACKING_WEIGHT].values
    assert weights.sum() == pytest.approx(1.0) and np.all(weights >= 0)
    per_chain = {f"c{c}": az.InferenceData(**{g: idata[g].isel(chain=[c]) for g in (S.POSTERIOR, S.LOG_LIKELIHOOD)})
                 for c in range(4)}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # ArviZ's notes on Pareto k and on "weights" of one chain
        ref = az.compare(per_chain, method="stacking")["weight"].reindex(list(per_chain)).values
    # stacking's optimum is unique in the combined density, not in how it splits between chains of
    # one mode: compare the weights per mode, and the objective at both solutions
    assert [weights[:2].sum(), weights[2:].sum()] == pytest.approx([ref[:2].sum(), ref[2:].sum()], abs=2e-3)
    assert stacked["mode_weight"].values.sum() == pytest.approx(1.0)
    assert stacked.attrs["elpd_stacked"] >= stacked["mode_elpd_loo"].values.max() - 1e-6


def test_stacking_weights_are_the_maximum_on_the_simplex():
    """Against a brute-force grid over the 2-simplex; and one dominant column gets all the weight."""
    rng = np.random.default_rng(3)
    lpd = rng.normal(-1, 0.5, size=(50, 3))
    w = stacking_weights(lpd)
    grid = [np.array([a, b, max(1 - a - b, 0.0)]) for a in np.linspace(0, 1, 101) for b in np.linspace(0, 1, 101)
            if a + b <= 1]
    assert stacked_elpd(lpd, w) >= max(stacked_elpd(lpd, g) for g in grid) - 1e-9
    dominant = np.column_stack([lpd[:, 0] + 5, lpd[:, 1]])
    assert stacking_weights(dominant) == pytest.approx([1.0, 0.0], abs=1e-6)


def test_diagnose_names_the_modes_when_chains_disagree():
    from gmmflow.workflows.modes import chain_quantities

    idata = _fake_posterior()
    assert group_chains(chain_quantities(idata)) == [[0, 1], [2, 3]]
    stats_ = xr.Dataset({S.RELABEL_PERMUTATION: ((S.CHAIN, S.DRAW, S.COMPONENT),
                                                 np.broadcast_to(np.arange(2), (4, 300, 2)).copy())})
    idata.add_groups({S.SAMPLE_STATS: stats_})
    table = gmmflow.diagnose(idata)
    assert table.loc["modes", "value"] == 2 and not table.loc["modes", "ok"]
    assert table.attrs["modes_text"].startswith("mode 0: chains 0, 1 (50% of draws), weights 0.40, 0.60, no EM restart; mode 1: chains 2, 3")


def test_a_short_run_of_one_mode_is_not_split():
    """Two chains of one mode whose means differ by 0.9 sd (a 2-sigma chance difference with 10
    effective draws per chain): their pair r_hat passes 1.1, yet they are one mode; 4 sds apart they
    are two."""
    from gmmflow.workflows.modes import _pair_rhat

    rng = np.random.default_rng(0)
    base = rng.standard_normal((2, 100, 3))
    base = (base - base.mean(1, keepdims=True)) / base.std(1, keepdims=True)  # chain means 0, sds 1
    near, far = base.copy(), base.copy()
    near[1, :, 0] += 0.9
    far[1, :, 0] += 4.0
    assert _pair_rhat(near[0], near[1]) > 1.1  # r_hat alone would split them
    assert group_chains(near) == [[0, 1]]
    assert group_chains(far) == [[0], [1]]


# ---------------------------------------------------------------- sample_posterior(init="restarts")
def _two_optima_data():
    """Three 1-D clusters fitted with K = 2: 6 random_from_data EM restarts reach two distinct optima,
    merging the left pair (objective -206.0) or the right pair (-194.9)."""
    rng = np.random.default_rng(0)
    return np.concatenate([rng.normal(-4, 1, 30), rng.normal(0, 1, 25), rng.normal(4, 1, 20)])[:, None]


EM_TWO = {"n_init": 6, "init": "random_from_data"}
SHORT = {"draws": 20, "tune": 30, "chains": 3, "sampler": "numpyro", "progressbar": False}


def _sample_capturing_starts(monkeypatch, **kwargs):
    from gmmflow.workflows import nuts_backends

    starts, real = [], nuts_backends.run_numpyro
    monkeypatch.setattr(nuts_backends, "run_numpyro", lambda *a, **k: starts.append(a[3]) or real(*a, **k))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", gmmflow.SamplingWarning)  # 3 chains x 20 draws: checks fail
        idata = gmmflow.sample_posterior(gmmflow.GMM(2), _two_optima_data(), seed=0, em_kwargs=EM_TWO,
                                         **SHORT | kwargs)
    return idata, starts[0]


def test_restarts_start_chains_at_the_distinct_optima_best_first(monkeypatch):
    idata, start = _sample_capturing_starts(monkeypatch, init="restarts")
    restarts = idata[S.EM_RESTARTS]
    objective = restarts["objective"].values
    # two distinct optima (see _two_optima_data), each represented by its best restart
    best = int(np.argmax(objective))
    worse = np.flatnonzero(objective < objective[best] - 10)
    assert worse.size and np.allclose(objective[worse], objective[worse[0]], rtol=1e-6)
    other = int(worse[np.argmax(objective[worse])])
    expected = [best, other, best]  # chain c from optimum c mod 2, best first
    assert idata.attrs["chain_init"] == "restarts" and json.loads(idata.attrs["chain_init_restarts"]) == expected
    assert isinstance(start, list) and len(start) == 3
    for c, r in enumerate(expected):
        assert start[c]["mu"] == pytest.approx(restarts["mu"].values[r])
        assert start[c]["w"] == pytest.approx(restarts["w"].values[r])
        assert start[c]["cov"] == pytest.approx(restarts["cov"].values[r])
    # (here the worse optimum is no mode of the posterior: chain 1 reaches the best one while tuning)


def test_default_init_starts_every_chain_at_the_em_estimate(monkeypatch):
    idata, start = _sample_capturing_starts(monkeypatch)
    assert idata.attrs["chain_init"] == "em" and "chain_init_restarts" not in idata.attrs
    assert isinstance(start, dict)
    assert start["mu"] == pytest.approx(idata[S.EM_ESTIMATE]["mu"].values)


@pytest.mark.parametrize("kwargs, message", [
    ({"init": "best"}, "init must be 'em' (every chain starts at the EM estimate) or 'restarts' (chains start "
                       "from the distinct EM restart optima, best first); got 'best'."),
    ({"init": "restarts", "sampler": "gibbs"}, "init='restarts' needs a sampler that starts each chain at its "
                                               "own point: sampler='numpyro' or 'pymc' (NUTS), not 'gibbs'."),
])
def test_bad_init_is_refused_before_any_work(kwargs, message, monkeypatch):
    from gmmflow.workflows import posterior_sampling

    monkeypatch.setattr(posterior_sampling, "fit_em_record", lambda *a, **k: pytest.fail("work started"))
    with pytest.raises(ValueError, match=re.escape(message)):
        gmmflow.sample_posterior(gmmflow.GMM(2), _two_optima_data(), **kwargs)


# ---------------------------------------------------------------- the modes plot
def _with_sample_stats(idata):
    C, D, K = (idata[S.POSTERIOR].sizes[dim] for dim in (S.CHAIN, S.DRAW, S.COMPONENT))
    idata.add_groups({S.SAMPLE_STATS: xr.Dataset({S.RELABEL_PERMUTATION: (
        (S.CHAIN, S.DRAW, S.COMPONENT), np.broadcast_to(np.arange(K), (C, D, K)).copy())})})
    return idata


@pytest.mark.parametrize("d", [1, 2, 3])
def test_plot_modes_draws_one_panel_per_mode(d):
    import matplotlib.pyplot as plt

    axes = gmmflow.plots.plot_modes(_fake_posterior(d=d), draws=5)
    assert len(axes) == 2
    assert axes[0].get_title() == "mode 0: chains 0, 1, 50% of draws\nno EM restart"
    assert axes[1].get_title().startswith("mode 1: chains 2, 3, 50% of draws")
    if d == 1:  # one mixture density per draw
        assert [sum(line.get_gid() == "mode-density" for line in ax.lines) for ax in axes] == [5, 5]
    else:  # K = 2 ellipses per draw
        assert [sum(p.get_gid() == "posterior-ellipse" for p in ax.patches) for ax in axes] == [10, 10]
    if d == 2:  # each panel's ellipses sit at its own mode's means along feature 0
        for ax, centres in zip(axes, ([-2.0, 2.0], [0.0, 5.0])):
            x = sorted({round(p.center[0]) for p in ax.patches if p.get_gid() == "posterior-ellipse"})
            assert x == centres
    plt.close("all")


def test_modes_plot_is_registered_for_multimodal_posteriors_only():
    names = lambda idata: [p.name for p in gmmflow.plots.plots_for(idata)]  # noqa: E731
    assert "modes" in names(_with_sample_stats(_fake_posterior()))
    assert "modes" not in names(_with_sample_stats(_fake_posterior(layout="AAAA")))


# ---------------------------------------------------------------- a real multimodal posterior, in the report
def _separated_data():
    """Three 1-D clusters 8 sds apart fitted with K = 2: merging the left pair or the right pair are two
    posterior modes (EM objectives -266.1 and -270.5) no chain crosses between."""
    rng = np.random.default_rng(1)
    return np.concatenate([rng.normal(-8, 1, 30), rng.normal(0, 1, 30), rng.normal(8, 1, 26)])[:, None]


@pytest.fixture(scope="module")
def two_runs():
    """The same data sampled from the distinct EM optima (2 modes) and from the EM estimate (1 mode)."""
    X = _separated_data()
    em = gmmflow.fit_em(gmmflow.GMM(2), X, seed=0, n_init=6, init="random_from_data")
    settings = {"seed": 0, "chains": 4, "draws": 100, "tune": 100, "sampler": "numpyro", "progressbar": False}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", gmmflow.SamplingWarning)
        return (gmmflow.sample_posterior(gmmflow.GMM(2), X, em=em, init="restarts", **settings),
                gmmflow.sample_posterior(gmmflow.GMM(2), X, em=em, **settings))


def test_chains_started_at_distinct_optima_stay_in_their_modes(two_runs):
    multimodal, _ = two_runs
    starts = json.loads(multimodal.attrs["chain_init_restarts"])
    objective = multimodal[S.EM_RESTARTS]["objective"].values
    assert objective[starts[0]] > objective[starts[1]] + 1 and starts[2:] == starts[:2]
    modes = gmmflow.find_modes(multimodal)
    assert [sorted(c) for c in modes["chains"]] == [[0, 2], [1, 3]]
    assert modes["em_objective"].tolist() == pytest.approx([objective[starts[0]], objective[starts[1]]])


def test_report_has_a_modes_section_only_for_a_multimodal_posterior(two_runs, tmp_path):
    multimodal, unimodal = two_runs
    page = gmmflow.write_report(gmmflow.stack_chains(multimodal), tmp_path / "multi").read_text()
    section = page[page.index('<section id="modes">'):]
    section = section[:section.index("</section>")]
    starts = ", ".join(map(str, json.loads(multimodal.attrs["chain_init_restarts"])))
    assert f"chains started at EM restart optima (restarts {starts})" in page
    assert "mode 1" in section and "stacking weight" in section and "ELPD-LOO" in section
    assert 'id="plot-modes"' in section and "stacked predictive density&#x27;s ELPD-LOO is" in section
    assert page.count('id="plot-modes"') == 1  # in its section, not again among the plots
    verdict = page[page.index('<section id="verdict">'):page.index("</section>")]
    assert re.search(r'chains sit in 2 separate modes of the posterior[^<]*<a href="#modes">details</a>', verdict)
    assert "modes" not in [p.name for p in gmmflow.plots.plots_for(unimodal)]
    page = gmmflow.write_report(unimodal, tmp_path / "uni").read_text()
    assert 'id="modes"' not in page and "plot-modes" not in page


def test_restart_starts_of_a_noise_model_carry_the_noise_weight():
    """A noise model's start values have K + 1 weights (the noise weight last), each chain's those of
    its restart; with one distinct optimum every chain starts at the best restart."""
    from gmmflow.results.from_idata import noise_log_volume
    from gmmflow.workflows.posterior_sampling import restart_starts

    model = gmmflow.GMM(2, "diag", prior="default", noise=True)
    rng = np.random.default_rng(4)
    X = np.vstack([rng.normal(-3, 1, (40, 2)), rng.normal(3, 1, (40, 2)), rng.uniform(-8, 8, (10, 2))])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        em = gmmflow.fit_em(model, X, seed=0, n_init=5, init="random_from_data")
    restarts = em[S.EM_RESTARTS]
    starts, chosen = restart_starts(restarts, model, 3, -noise_log_volume(em))
    objective = restarts["objective"].values
    assert chosen[0] == int(np.argmax(objective))
    for start, r in zip(starts, chosen):
        assert start["w"] == pytest.approx(np.append(restarts["w"].values[r], restarts[S.NOISE_WEIGHT].values[r]))
        assert start["var"] == pytest.approx(np.diagonal(restarts["cov"].values[r], axis1=-2, axis2=-1))

"""Storage and sampling faults, reproducibility and resource bounds."""

import json
import re
import warnings

import arviz as az
import h5netcdf
import numpy as np
import pandas as pd
import pytest
import xarray as xr

import gmmflow
from gmmflow import resources
from gmmflow.results import files, placement
from gmmflow.results.to_idata import root_attrs
from gmmflow.cli import main
from gmmflow.models.pymc_model import covariance_value_name
from conftest import mixture_data

X = mixture_data(seed=0, n_per=40, K=2)


@pytest.fixture(scope="module")
def fitted():
    return gmmflow.fit_em(gmmflow.GMM(2), X, n_init=2, seed=0)


def _set_attrs(path, **attrs):
    with h5netcdf.File(path, "a") as f:
        for key, value in attrs.items():
            f.attrs[key] = value


# ---------------------------------------------------------------- storage
def test_attrs_of_every_type_gmmflow_writes_round_trip(fitted, tmp_path):
    extra = {"flag": True, "nothing": None, "options": {"n_init": 2, "init": "kmeans++"},
             "ks": [1, 2, 3], "pair": (1, "a"), "ratio": 0.25, "count": 7, "text": "é ü"}
    idata = az.InferenceData(attrs=root_attrs(gmmflow.GMM(2), None, 5, **extra),
                             em_estimate=fitted.em_estimate)
    back = gmmflow.load(gmmflow.save(idata, tmp_path / "r.nc"))
    for key, value in idata.attrs.items():
        if key not in extra or isinstance(value, (str, int, float)):
            assert back.attrs[key] == value and type(back.attrs[key]) is type(value), key
    decoded = {k: json.loads(back.attrs[k]) for k in ("flag", "nothing", "options", "ks", "pair")}
    assert decoded == {"flag": True, "nothing": None, "options": {"n_init": 2, "init": "kmeans++"},
                       "ks": [1, 2, 3], "pair": [1, "a"]}


def test_an_older_compatible_file_loads_and_keeps_its_version(fitted, tmp_path):
    path = gmmflow.save(fitted, tmp_path / "old.nc")
    _set_attrs(path, gmmflow_version="0.0.1")
    back = gmmflow.load(path)
    assert back.attrs["gmmflow_version"] == "0.0.1"
    xr.testing.assert_identical(back.em_estimate, fitted.em_estimate)


def test_an_older_incompatible_file_names_the_version_that_wrote_it(fitted, tmp_path):
    path = gmmflow.save(fitted, tmp_path / "old.nc")
    _set_attrs(path, gmmflow_version="0.0.1", model='{"k": 2}')
    message = (f"was written by gmmflow 0.0.1 and cannot be read by gmmflow {gmmflow.__version__}")
    with pytest.raises(gmmflow.NotAGmmflowFileError, match=re.escape(message)):
        gmmflow.load(path)
    assert main(["report", str(path), "--out", str(tmp_path / "rep")]) == 2
    assert not (tmp_path / "rep").exists()


def test_a_damaged_current_file_says_so(fitted, tmp_path):
    path = gmmflow.save(fitted, tmp_path / "r.nc")
    _set_attrs(path, hyperparameters="{not json")
    with pytest.raises(gmmflow.NotAGmmflowFileError, match="is a damaged gmmflow result"):
        gmmflow.load(path)


def _drop_variable(path, group, name):
    import h5py

    with h5py.File(path, "a") as f:
        del f[group][name]


def _fake_posterior_file(tmp_path):
    from conftest import fake_posterior

    return gmmflow.save(fake_posterior(X, 2, chains=2, draws=20, predictive=False), tmp_path / "post.nc")


# (what is damaged, how, the message naming it); load must refuse each before anything reads the result
DAMAGE = [
    ("a variable", lambda p: _drop_variable(p, "posterior", "cov"), "group 'posterior' has no variable 'cov'"),
    ("an EM variable", lambda p: _drop_variable(p, "em_estimate", "mu"), "group 'em_estimate' has no variable 'mu'"),
    ("a group", lambda p: _drop_group(p, "log_likelihood"),
     "it has no log_likelihood group(s), which a 'nuts' result has"),
    ("a dim length", lambda p: _set_attrs(p, n_components=3),
     "dim 'component' has length 2 in em_estimate.w but 3 in the n_components attr"),
    ("the fingerprint", lambda p: _set_attrs(p, data_fingerprint="{not json"),
     "its 'data_fingerprint' attr is damaged"),
]


def _drop_group(path, group):
    import h5py

    with h5py.File(path, "a") as f:
        del f[group]


@pytest.mark.parametrize("what, damage, message", DAMAGE, ids=[d[0] for d in DAMAGE])
def test_partial_damage_is_caught_by_load_and_named(what, damage, message, tmp_path, capsys):
    path = _fake_posterior_file(tmp_path)
    damage(path)
    before = path.read_bytes()
    with pytest.raises(gmmflow.NotAGmmflowFileError, match=re.escape(f"{path} is a damaged gmmflow result: {message}")):
        gmmflow.load(path)
    assert main(["report", str(path), "--out", str(tmp_path / "rep")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err
    assert not (tmp_path / "rep").exists() and path.read_bytes() == before


def test_a_variable_with_other_dims_is_named(fitted, tmp_path):
    damaged = fitted.copy()
    damaged.em_estimate["mu"] = damaged.em_estimate["mu"].rename({"feature": "feat"})
    path = gmmflow.save(damaged, tmp_path / "r.nc")
    with pytest.raises(gmmflow.NotAGmmflowFileError,
                       match=re.escape("variable em_estimate.mu has dims ('component', 'feat'), not ('component', "
                                       "'feature')")):
        gmmflow.load(path)


def test_every_result_gmmflow_writes_passes_its_own_schema(fitted, tmp_path):
    """The checks load applies are those every fresh result meets (EM, weighted EM, posterior)."""
    weighted = gmmflow.fit_em(gmmflow.GMM(2), X, n_init=2, seed=0, sample_weight=np.linspace(1, 2, X.shape[0]))
    for name, idata in {"em": fitted, "weighted": weighted}.items():
        gmmflow.load(gmmflow.save(idata, tmp_path / f"{name}.nc"))
    gmmflow.load(_fake_posterior_file(tmp_path))


def _gmmflow_directory(out):
    out.mkdir()
    (out / "old.txt").write_text("previous")
    placement.write_marker(out)
    return out


def test_interrupted_directory_write_keeps_the_previous_directory(tmp_path):
    out = _gmmflow_directory(tmp_path / "rep")
    with pytest.raises(KeyboardInterrupt):
        with files.atomic_directory(out, overwrite=True) as tmp:
            (tmp / "half.png").write_bytes(b"\x89PNG")
            raise KeyboardInterrupt
    assert [p.name for p in tmp_path.iterdir()] == ["rep"]
    assert sorted(p.name for p in out.iterdir()) == [placement.MARKER_FILE, "old.txt"]


def test_overwriting_a_directory_replaces_it_whole(tmp_path):
    out = _gmmflow_directory(tmp_path / "rep")
    with files.atomic_directory(out, overwrite=True) as tmp:
        (tmp / "new.txt").write_text("new")
    assert sorted(p.name for p in out.iterdir()) == [placement.MARKER_FILE, "new.txt"]
    assert [p.name for p in tmp_path.iterdir()] == ["rep"]


# ---------------------------------------------------------------- sampling faults
def _raw_draws(em, chains=4, draws=50, diverging=0, seed=0):
    """What a sampler returns: draws of the model's free variables around the EM estimate."""
    rng = np.random.default_rng(seed)
    est = em.em_estimate
    K, d = est.sizes["component"], est.sizes["feature"]
    w = rng.dirichlet(200 * est.w.values + 1, size=(chains, draws))
    mu = est.mu.values + 0.01 * rng.standard_normal((chains, draws, K, d))
    cov = np.broadcast_to(est.cov.values, (chains, draws, K, d, d)).copy()
    flags = np.zeros((chains, draws), bool)
    flags.flat[:diverging] = True
    return az.InferenceData(
        posterior=xr.Dataset({"w": (("chain", "draw", "w_dim"), w), "mu": (("chain", "draw", "k", "d"), mu),
                              covariance_value_name("full"): (("chain", "draw", "k", "d", "d2"), cov)}),
        sample_stats=xr.Dataset({"diverging": (("chain", "draw"), flags)}))


def test_a_diverging_run_warns_returns_and_is_marked(fitted, monkeypatch, tmp_path):
    monkeypatch.setattr("gmmflow.workflows.nuts_backends.run_nutpie", lambda *a: _raw_draws(fitted, diverging=7))
    with pytest.warns(gmmflow.SamplingWarning, match=re.escape("divergences = 7 (threshold 0.0)")):
        idata = gmmflow.sample_posterior(gmmflow.GMM(2), X, em=fitted, sampler="nutpie", seed=0)
    assert idata.attrs["sampling_status"].startswith("warnings: divergences")
    back = gmmflow.load(gmmflow.save(idata, tmp_path / "r.nc"))
    assert back.attrs["sampling_status"] == idata.attrs["sampling_status"]
    assert int(back.sample_stats.diverging.sum()) == 7


def test_a_clean_run_is_marked_ok(fitted, monkeypatch):
    monkeypatch.setattr("gmmflow.workflows.nuts_backends.run_nutpie", lambda *a: _raw_draws(fitted, draws=400))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", gmmflow.SamplingWarning)  # ESS of the synthetic draws
        idata = gmmflow.sample_posterior(gmmflow.GMM(2), X, em=fitted, sampler="nutpie", seed=0)
    table = gmmflow.diagnose(idata)
    expected = "ok" if table["ok"].all() else "warnings: " + ", ".join(table.index[~table["ok"]])
    assert idata.attrs["sampling_status"] == expected


def _failing_sampler(*args):
    raise RuntimeError("All initialization points failed")


def test_a_sampler_that_cannot_start_raises_and_keeps_the_em_result(fitted, monkeypatch, tmp_path):
    monkeypatch.setattr("gmmflow.workflows.nuts_backends.run_nutpie", _failing_sampler)
    with pytest.raises(gmmflow.SamplingError, match=re.escape("NUTS (nutpie) failed: All initialization points "
                                                              "failed. The EM estimate")) as info:
        gmmflow.sample_posterior(gmmflow.GMM(2), X, em=fitted, sampler="nutpie", seed=0)
    partial = info.value.partial
    assert partial.attrs["sampling_status"] == "failed: All initialization points failed"
    assert "posterior" not in partial.groups()
    xr.testing.assert_identical(partial.em_estimate, fitted.em_estimate)
    assert "sampling_status" not in fitted.attrs  # the caller's result is not modified


def test_cli_sample_failure_saves_the_em_result_marked(monkeypatch, tmp_path, capsys):
    monkeypatch.setattr("gmmflow.workflows.nuts_backends.run_nutpie", _failing_sampler)
    out = tmp_path / "post.nc"
    code = main(["sample", "--data", "faithful", "--k", "2", "--sampler", "nutpie", "--seed", "0",
                 "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1
    assert f"Wrote the EM result only to {out}" in err
    assert gmmflow.load(out).attrs["sampling_status"].startswith("failed: All initialization points failed")


def test_cli_run_interrupted_during_the_report_leaves_nothing(monkeypatch, tmp_path, capsys):
    monkeypatch.setattr("gmmflow.workflows.nuts_backends.run_nutpie",
                        lambda *a: _raw_draws(gmmflow.fit_em(gmmflow.GMM(2), gmmflow.load_dataset("faithful"),
                                                             seed=0)))

    def interrupt(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr("gmmflow.main_job.write_report_into", interrupt)
    monkeypatch.chdir(tmp_path)
    assert main(["run", "--sampler", "nutpie", "--seed", "0", "--quiet"]) == 130
    assert list(tmp_path.iterdir()) == []


# ---------------------------------------------------------------- reproducibility
def _values(path):
    idata = gmmflow.load(path)
    return {(g, v): idata[g][v].values for g in idata.groups() for v in idata[g].data_vars}


def _same(a, b):
    return a.keys() == b.keys() and all(np.array_equal(a[k], b[k], equal_nan=a[k].dtype.kind == "f") for k in a)


def test_cli_em_with_a_seed_is_bit_identical_and_without_differs(tmp_path):
    base = ["--quiet", "em", "--data", "faithful", "--k", "3", "--n-init", "3"]
    for name in ("a", "b"):
        assert main(base + ["--seed", "11", "--out", str(tmp_path / f"{name}.nc")]) == 0
    assert _same(_values(tmp_path / "a.nc"), _values(tmp_path / "b.nc"))
    for name in ("c", "d"):
        assert main(base + ["--out", str(tmp_path / f"{name}.nc")]) == 0
    c, d = gmmflow.load(tmp_path / "c.nc"), gmmflow.load(tmp_path / "d.nc")
    # Without --seed each run draws its own seed and records it; replaying the recorded seed gives the
    # same result. (Not "the optima differ": every start may reach the same optimum, bit for bit.)
    assert c.attrs["seed"] != d.attrs["seed"]
    assert main(base + ["--seed", str(c.attrs["seed"]), "--out", str(tmp_path / "e.nc")]) == 0
    assert _same(_values(tmp_path / "c.nc"), _values(tmp_path / "e.nc"))


def test_cli_run_without_a_seed_draws_one(monkeypatch, tmp_path):
    """The sampler is replaced by a fixed draw set; the predictive replicates still follow the run's seed.

    (EM's restarts do too, but on Old Faithful every k-means++ start converges to the same point.)
    """
    em = gmmflow.fit_em(gmmflow.GMM(2), gmmflow.load_dataset("faithful"), seed=0)
    monkeypatch.setattr("gmmflow.workflows.nuts_backends.run_nutpie", lambda *a: _raw_draws(em))
    for name in ("a", "b"):
        assert main(["--quiet", "run", "--sampler", "nutpie", "--n-init", "2", "--out", str(tmp_path / name)]) == 0
    a, b = (gmmflow.load(tmp_path / name / "run.nc") for name in ("a", "b"))
    assert a.attrs["seed"] != b.attrs["seed"] and a.attrs["em_seed"] != b.attrs["em_seed"]
    assert not np.array_equal(a.posterior_predictive.x.values, b.posterior_predictive.x.values)


def test_report_is_deterministic(tmp_path, fitted):
    gmmflow.write_report(fitted, tmp_path / "a")
    gmmflow.write_report(fitted, tmp_path / "b")
    for png in (tmp_path / "a").glob("*.png"):
        assert png.read_bytes() == (tmp_path / "b" / png.name).read_bytes(), png.name


def test_select_components_seeded_identical_unseeded_differs():
    a = gmmflow.select_components(X, ks=[1, 2, 3], seed=3, n_init=2, em_kwargs={"init": "random"})
    b = gmmflow.select_components(X, ks=[1, 2, 3], seed=3, n_init=2, em_kwargs={"init": "random"})
    assert a.equals(b)
    f1 = gmmflow.select_components(X, ks=[3], n_init=1, em_kwargs={"init": "random"}, keep_fits=True).fits
    f2 = gmmflow.select_components(X, ks=[3], n_init=1, em_kwargs={"init": "random"}, keep_fits=True).fits
    assert f1[("full", 3)].attrs["seed"] != f2[("full", 3)].attrs["seed"]


@pytest.mark.slow
def test_cli_sample_with_a_seed_is_bit_identical(tmp_path):
    base = ["--quiet", "sample", "--data", "faithful", "--k", "2", "--draws", "100", "--tune", "100",
            "--chains", "2"]
    for name in ("a", "b"):
        assert main(base + ["--seed", "5", "--out", str(tmp_path / f"{name}.nc")]) == 0
    assert _same(_values(tmp_path / "a.nc"), _values(tmp_path / "b.nc"))
    assert main(base + ["--out", str(tmp_path / "c.nc")]) == 0
    assert not np.array_equal(gmmflow.load(tmp_path / "a.nc").posterior.mu.values,
                              gmmflow.load(tmp_path / "c.nc").posterior.mu.values)


# ---------------------------------------------------------------- resource bounds
@pytest.mark.parametrize("call", [
    lambda: gmmflow.fit_em(gmmflow.GMM(2), X),
    lambda: gmmflow.sample_posterior(gmmflow.GMM(2), X),
    lambda: gmmflow.select_components(X, ks=[1, 2]),
    lambda: gmmflow.run(X, "never_written", ks=[1, 2]),
], ids=["fit_em", "sample_posterior", "select_components", "run"])
def test_work_that_would_not_fit_in_memory_is_refused_up_front(call, monkeypatch):
    monkeypatch.setattr(resources, "available_memory", lambda: 1024.0)
    for target in ("gmmflow.workflows.em_fit.fit_restarts", "gmmflow.workflows.nuts_backends.run_nutpie",
                   "gmmflow.workflows.nuts_backends.run_numpyro", "gmmflow.workflows.model_selection._fit_cell"):
        monkeypatch.setattr(target, lambda *a, **k: pytest.fail("work started"))
    with pytest.raises(MemoryError, match=r"needs an estimated \d+\.\d GiB of memory but only 0\.0 GiB is "
                                          r"available; "):
        call()


def test_the_sampling_estimate_counts_the_stored_covariance_draws(monkeypatch, tmp_path, capsys):
    """d=500, K=2, 4 x 1000 draws: the relabelled covariance draws alone are 4000 x 2 x 500 x 500 float64
    = 14.9 GiB; the estimate was 0.6 GiB. With 20 GiB available the run is refused before any work."""
    cov_alone = 4000 * 2 * 500 * 500 * 8
    assert cov_alone / 2**30 == pytest.approx(14.9, abs=0.05)
    assert resources.posterior_bytes(600, 500, 2, 4, 1000, False) > 3 * cov_alone  # raw, stacked, relabelled
    monkeypatch.setattr(resources, "available_memory", lambda: 20.0 * 2**30)
    monkeypatch.setattr("gmmflow.workflows.posterior_sampling._run_sampler",
                        lambda *a, **k: pytest.fail("work started"))
    monkeypatch.setattr("gmmflow.workflows.em_fit.fit_restarts", lambda *a, **k: pytest.fail("work started"))
    wide = np.random.default_rng(0).normal(size=(600, 500))
    with pytest.raises(MemoryError, match=re.escape("sample_posterior with 4 chains x 1000 draws on 600 rows needs "
                                                    "an estimated 44.9 GiB of memory but only 20.0 GiB")):
        gmmflow.sample_posterior(gmmflow.GMM(2), wide, seed=0)


@pytest.mark.parametrize("t", ["full", "diag"])
def test_the_sampling_estimate_is_a_lower_bound_of_the_measured_peak(t, monkeypatch):
    """tracemalloc's peak (numpy allocations included) of a sample_posterior call whose sampler returns
    prepared draws is at least the estimate (a refusal is never a false alarm) and within 2x of it
    (every large array is counted). d=30 so the draws dominate."""
    import tracemalloc

    from threadpoolctl import threadpool_limits

    rng = np.random.default_rng(0)
    Xw = mixture_data(seed=1, n_per=100, d=30, K=2)
    em = gmmflow.fit_em(gmmflow.GMM(2, t), Xw, n_init=1, seed=0)
    chains, draws = 2, 150

    def sampler(*args):
        est = em.em_estimate
        name = covariance_value_name(t)
        compact = np.stack([np.diagonal(c) for c in est.cov.values]) if t == "diag" else est.cov.values
        return az.InferenceData(
            posterior=xr.Dataset({
                "w": (("chain", "draw", "a"), rng.dirichlet(200 * est.w.values + 1, size=(chains, draws))),
                "mu": (("chain", "draw", "b", "c"), np.broadcast_to(est.mu.values, (chains, draws, 2, 30)).copy()),
                name: (("chain", "draw") + tuple(f"k{i}" for i in range(compact.ndim)),
                       np.broadcast_to(compact, (chains, draws) + compact.shape).copy())}),
            sample_stats=xr.Dataset({"diverging": (("chain", "draw"), np.zeros((chains, draws), bool))}))

    # the sampler's stand-in replaces the PyMC model build too, and ArviZ's summary of 1,800 parameters is
    # skipped (traced, each would take half a minute; neither holds the arrays the estimate counts)
    monkeypatch.setattr("gmmflow.workflows.posterior_sampling._run_sampler", sampler)
    monkeypatch.setattr("gmmflow.workflows.posterior_sampling.diagnose",
                        lambda idata: pd.DataFrame({"value": [0], "ok": [True]}, index=["divergences"]))
    def run():  # one BLAS thread: per-draw 30 x 30 solves with two threads on a loaded machine took 20 s
        with warnings.catch_warnings(), threadpool_limits(limits=1, user_api="blas"):
            warnings.simplefilter("ignore")
            gmmflow.sample_posterior(gmmflow.GMM(2, t), Xw, em=em, sampler="nutpie", chains=chains, draws=draws,
                                     seed=0)

    run()  # once untraced: lazy imports are not part of the peak (and take long when traced)
    tracemalloc.start()
    run()
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    estimate = resources.posterior_bytes(*Xw.shape, 2, chains, draws, False, t, n_init=0)
    assert estimate <= peak <= 2 * estimate, (estimate, peak)


def test_estimates_scale_with_the_work():
    small = resources.posterior_bytes(272, 2, 2, 4, 1000, False)
    assert resources.posterior_bytes(272, 2, 2, 4, 2000, False) > 1.9 * small - resources.em_bytes(272, 2, 2)
    assert resources.posterior_bytes(272, 2, 2, 4, 1000, True) > small
    with_loo = resources.posterior_bytes(272, 2, 2, 4, 1000, False, loo=True)
    assert 3 * 4000 * 272 * 8 <= with_loo < 4 * 4000 * 272 * 8  # dominated by pointwise log-likelihoods
    # K, restarts and d enter too
    assert resources.em_bytes(272, 2, 2, n_init=10**6) > 10**6 * resources.restart_bytes(2, 2)
    assert resources.posterior_bytes(272, 50, 2, 4, 1000, False) > 4000 * 2 * 50 * 50 * 8 * 3

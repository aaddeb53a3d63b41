"""Storage and sampling faults, reproducibility and resource bounds."""

import json
import re
import warnings

import arviz as az
import h5netcdf
import numpy as np
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
                   "gmmflow.workflows.model_selection._fit_cell"):
        monkeypatch.setattr(target, lambda *a, **k: pytest.fail("work started"))
    with pytest.raises(MemoryError, match=r"needs an estimated \d+\.\d GiB of memory but only 0\.0 GiB is "
                                          r"available; "):
        call()


def test_estimates_scale_with_the_work():
    small = resources.posterior_bytes(272, 2, 2, 4, 1000, False)
    assert resources.posterior_bytes(272, 2, 2, 4, 2000, False) > 1.9 * small - resources.em_bytes(272, 2, 2)
    assert resources.posterior_bytes(272, 2, 2, 4, 1000, True) > small
    assert 3 * 4000 * 272 * 8 <= small < 4 * 4000 * 272 * 8  # dominated by pointwise log-likelihoods

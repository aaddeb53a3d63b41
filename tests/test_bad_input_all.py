"""Every public entry point x every bad input: one clear message, before any work or write.

The tables below are the inventory: ``DATA_CASES`` (bad data) are driven
through every data-taking function, ``ENTRY_CASES`` are the bad arguments
specific to one entry point, and ``CLI_CASES`` drive each command. A guard
makes any EM iteration, NUTS run or grid cell fail the test, so each error
must come from the up-front checks; every case also asserts that nothing
was written.
"""

import re
import warnings

import arviz as az
import numpy as np
import pandas as pd
import pytest
import xarray as xr

import gmmflow
from gmmflow import plots
from gmmflow.cli import main

GOOD = np.random.default_rng(0).normal(size=(30, 2))
with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    FITTED = gmmflow.fit_em(gmmflow.GMM(2), GOOD, seed=0)


def _with(i, j, value):
    X = GOOD.copy()
    X[i, j] = value
    return X


# name: (make X, exception, message fragment)
DATA_CASES = {
    "NaN": (lambda: _with(4, 1, np.nan), ValueError, "contains 1 non-finite value(s); the first is NaN at row 4"),
    "inf": (lambda: _with(2, 0, np.inf), ValueError, "the first is inf at row 2, feature 'x0'. Remove the rows"),
    "-inf": (lambda: _with(3, 1, -np.inf), ValueError, "the first is inf at row 3, feature 'x1'"),
    "empty": (lambda: np.empty((0, 2)), ValueError, "is empty: it has 0 rows"),
    "no features": (lambda: np.empty((5, 0)), ValueError, "has 0 features (shape (5, 0))"),
    "1-D": (lambda: GOOD[:, 0], ValueError, "must be 2-D (n_samples, n_features); got 1-D with shape (30,). "
                                            "For one feature use X.reshape(-1, 1)."),
    "3-D": (lambda: GOOD.reshape(5, 6, 2), ValueError, "must be 2-D (n_samples, n_features); got 3-D"),
    "complex": (lambda: GOOD + 1j, TypeError, "is complex (complex128); a Gaussian mixture needs real numbers"),
    "strings": (lambda: np.array([["a", "b"]] * 5), TypeError, "must be numeric (integer or float), got dtype <U1"),
    "object": (lambda: np.array([[1, None]] * 5, dtype=object), TypeError, "got dtype object"),
    "bool": (lambda: GOOD > 0, TypeError, "must be numeric (integer or float), got dtype bool"),
    "text column": (lambda: pd.DataFrame({"a": [1.0, 2.0, 3.0], "b": ["x", "y", "z"]}), TypeError,
                    "(column 'b') must be numeric"),
    "unnamed dims": (lambda: xr.DataArray(GOOD), ValueError, "gmmflow does not guess which is which"),
    "ragged": (lambda: [[1.0, 2.0], [3.0]], ValueError, "could not be read as a numeric 2-D array"),
}

# entry point: call with X (K = 3 where a model is built)
FITTING = {
    "fit_em": lambda X, out: gmmflow.fit_em(gmmflow.GMM(3), X, seed=0),
    "sample_posterior": lambda X, out: gmmflow.sample_posterior(gmmflow.GMM(3), X, seed=0),
    "select_components": lambda X, out: gmmflow.select_components(X, ks=[1, 3], seed=0),
    "run": lambda X, out: gmmflow.run(X, out / "run", ks=3, seed=0),
}
USING_A_FIT = {
    "predict": lambda X, out: gmmflow.predict(FITTED, X),
    "predict_proba": lambda X, out: gmmflow.predict_proba(FITTED, X),
    "score_samples": lambda X, out: gmmflow.score_samples(FITTED, X),
    "bic": lambda X, out: gmmflow.bic(FITTED, X),
    "aic": lambda X, out: gmmflow.aic(FITTED, X),
    "icl": lambda X, out: gmmflow.icl(FITTED, X),
}
DATA_ENTRIES = FITTING | USING_A_FIT

# cases that are only bad for some entry points
EXTRA_DATA_CASES = [
    (name, lambda: GOOD[:2], ValueError, "X has 2 row(s) but n_components=3") for name in ("fit_em", "sample_posterior")
] + [
    (name, lambda: GOOD[:2], ValueError, "ks contains [3] but X has only 2 rows") for name in ("select_components", "run")
] + [
    (name, lambda: np.zeros((4, 3)), ValueError, "X has 3 feature(s) but the mixture was fitted on 2 (x0, x1)")
    for name in USING_A_FIT
]


@pytest.fixture(autouse=True)
def no_work(monkeypatch):
    """Any EM restart, NUTS run or grid cell fails the test: errors must come first."""
    def forbidden(*args, **kwargs):
        raise AssertionError("work started before the input was checked")

    for target in ("gmmflow.workflows.em_fit.fit_restarts", "gmmflow.workflows.nuts_backends.run_nutpie",
                   "gmmflow.workflows.nuts_backends.run_pymc", "gmmflow.workflows.model_selection._fit_cell"):
        monkeypatch.setattr(target, forbidden)


def _snapshot(path):
    return sorted(str(p.relative_to(path)) for p in path.rglob("*"))


DATA_GRID = [(entry, case) for entry in DATA_ENTRIES for case in DATA_CASES]


@pytest.mark.parametrize("entry, case", DATA_GRID, ids=[f"{e}-{c}" for e, c in DATA_GRID])
def test_bad_data(entry, case, tmp_path):
    make, exc, message = DATA_CASES[case]
    with pytest.raises(exc, match=re.escape(message)):
        DATA_ENTRIES[entry](make(), tmp_path)
    assert _snapshot(tmp_path) == []


@pytest.mark.parametrize("entry, make, exc, message", EXTRA_DATA_CASES,
                         ids=[f"{c[0]}-{c[3][:25]}" for c in EXTRA_DATA_CASES])
def test_bad_data_for_the_entry(entry, make, exc, message, tmp_path):
    with pytest.raises(exc, match=re.escape(message)):
        DATA_ENTRIES[entry](make(), tmp_path)
    assert _snapshot(tmp_path) == []


def _foreign(out):
    (out / "foreign.nc").write_text("not a netCDF file")
    return out / "foreign.nc"


def _not_gmmflow(out):
    xr.Dataset({"a": ("x", [1, 2])}).to_netcdf(out / "plain.nc", engine="h5netcdf")
    return out / "plain.nc"


def _csv(out):
    (out / "ab.csv").write_text("a,b\n1,2\n3,4\n")
    return out / "ab.csv"


def _dask(X):
    import dask.array as da

    return da.from_array(X, chunks=(10,) + X.shape[1:])


def _existing(out, name="taken"):
    (out / name).mkdir()
    return out / name


# (entry, call(out), exception, message fragment)
ENTRY_CASES = [
    ("GMM", lambda out: gmmflow.GMM(0), ValueError, "n_components must be >= 1, got 0"),
    ("GMM", lambda out: gmmflow.GMM(2, "banana"), ValueError, "covariance_type must be one of"),
    ("GMM", lambda out: gmmflow.GMM(2, prior="flat"), ValueError, "prior must be 'default', 'mclust', None or a gmmflow.Prior"),
    ("Prior", lambda out: gmmflow.Prior(alpha=0.5), ValueError, "Prior alpha (Dirichlet concentration) must be >= 1"),
    ("Prior", lambda out: gmmflow.Prior(scale=[[np.nan]]), ValueError, "Prior scale"),
    ("fit_em", lambda out: gmmflow.fit_em(gmmflow.GMM(2, prior=gmmflow.Prior(dof=0.5)), GOOD), ValueError,
     "Prior dof (nu_P) must be > d - 1 = 1"),
    ("fit_em", lambda out: gmmflow.fit_em(gmmflow.GMM(2), GOOD, init="kmeans"), ValueError, "init must be one of"),
    ("fit_em", lambda out: gmmflow.fit_em(gmmflow.GMM(2), GOOD, init={"means": np.zeros((3, 2))}), ValueError,
     "init['means'] must have shape (2, 2)"),
    ("fit_em", lambda out: gmmflow.fit_em(gmmflow.GMM(2), GOOD, init={"weights": [np.nan, 1.0]}), ValueError,
     "init['weights'] contains NaN or inf"),
    ("fit_em", lambda out: gmmflow.fit_em("GMM(2)", GOOD), TypeError, "model must be a gmmflow.GMM, got str"),
    ("fit_em", lambda out: gmmflow.fit_em(gmmflow.GMM(2), GOOD, seed=1.5), TypeError, "seed must be"),
    ("sample_posterior", lambda out: gmmflow.sample_posterior(gmmflow.GMM(2, prior=None), GOOD), ValueError,
     "sample_posterior needs a prior"),
    ("sample_posterior", lambda out: gmmflow.sample_posterior(gmmflow.GMM(2), GOOD, draws=0), ValueError,
     "draws must be >= 1, got 0"),
    ("sample_posterior", lambda out: gmmflow.sample_posterior(gmmflow.GMM(2), GOOD, sampler="stan"), ValueError,
     "sampler must be one of 'auto', 'pymc', 'nutpie'; got 'stan'"),
    ("sample_posterior", lambda out: gmmflow.sample_posterior(gmmflow.GMM(3), GOOD, em=FITTED), ValueError,
     "em was fitted with a different model spec"),
    ("sample_posterior", lambda out: gmmflow.sample_posterior(gmmflow.GMM(2), GOOD, em={"w": 1}), TypeError,
     "em must be the InferenceData returned by gmmflow.fit_em"),
    ("select_components", lambda out: gmmflow.select_components(GOOD, ks=[]), ValueError, "ks is empty"),
    ("select_components", lambda out: gmmflow.select_components(GOOD, ks=[0]), ValueError,
     "every entry of ks must be >= 1, got 0"),
    ("select_components", lambda out: gmmflow.select_components(GOOD, covariance_types=["banded"]), ValueError,
     "covariance_types must be a non-empty list"),
    ("run", lambda out: gmmflow.run(GOOD, out / "r", ks=[2], criterion="aic"), ValueError,
     "criterion must be one of 'bic', 'icl', 'loo'; got 'aic'"),
    ("run", lambda out: gmmflow.run(GOOD, _existing(out), ks=2), FileExistsError,
     "already exists; pass overwrite=True (CLI: --overwrite) to replace it"),
    ("run", lambda out: gmmflow.run(GOOD, out / "r", ks=2, chains=0), ValueError, "chains must be >= 1, got 0"),
    ("compare", lambda out: gmmflow.compare(FITTED), ValueError, "no posterior, log_likelihood"),
    ("compare", lambda out: gmmflow.compare(GOOD), TypeError, "compare needs an arviz.InferenceData"),
    ("save", lambda out: gmmflow.save(GOOD, out / "x.nc"), TypeError, "save() needs an arviz.InferenceData"),
    ("save", lambda out: gmmflow.save(FITTED, out / "missing" / "x.nc"), FileNotFoundError,
     "does not exist; create it first"),
    ("save", lambda out: gmmflow.save(FITTED, _existing(out)), FileExistsError, "already exists; pass overwrite"),
    ("load", lambda out: gmmflow.load(out / "nope.nc"), FileNotFoundError, "No such result file"),
    ("load", lambda out: gmmflow.load(_foreign(out)), gmmflow.NotAGmmflowFileError, "is not a readable netCDF4"),
    ("load", lambda out: gmmflow.load(_not_gmmflow(out)), gmmflow.NotAGmmflowFileError, "not a gmmflow result"),
    ("write_report", lambda out: gmmflow.write_report(_foreign(out), out / "rep"), gmmflow.NotAGmmflowFileError,
     "is not a readable netCDF4"),
    ("write_report", lambda out: gmmflow.write_report(FITTED, _existing(out)), FileExistsError, "already exists"),
    ("sample_em", lambda out: gmmflow.sample_em(FITTED, 0), ValueError, "n must be >= 1, got 0"),
    ("predict", lambda out: gmmflow.predict(GOOD, GOOD), TypeError,
     "expected a gmmflow result (arviz.InferenceData from fit_em or sample_posterior), got ndarray"),
    ("bic", lambda out: gmmflow.bic(az.InferenceData(posterior=xr.Dataset())), gmmflow.NotAGmmflowFileError,
     "has no gmmflow model spec in its attrs"),
    ("diagnose", lambda out: gmmflow.diagnose(FITTED), ValueError,
     "diagnose needs a gmmflow.sample_posterior result (posterior and sample_stats groups)"),
    ("diagnose", lambda out: gmmflow.diagnose(GOOD), ValueError, "got ndarray."),
    ("simulate", lambda out: gmmflow.simulate(gmmflow.GMM(2), 10), ValueError,
     "Without X the default prior has no data to take its mean and scale from"),
    ("simulate", lambda out: gmmflow.simulate(gmmflow.GMM(2, prior=gmmflow.Prior(mean=[0.0], scale=[[1.0]])), 0),
     ValueError, "n must be >= 1, got 0"),
    ("load_dataset", lambda out: gmmflow.load_dataset("atlantis"), ValueError,
     "Unknown dataset 'atlantis'; known datasets: blobs, faithful, galaxies, geyser, iris, wine."),
    ("read_csv", lambda out: gmmflow.read_csv(out / "nope.csv"), FileNotFoundError, "No such data file"),
    ("read_csv", lambda out: gmmflow.read_csv(_csv(out), ["zz"]), ValueError,
     "has no column(s) ['zz']; its columns are ['a', 'b']"),
    ("GMM.pymc_model", lambda out: gmmflow.GMM(2).pymc_model(_with(0, 0, np.nan)), ValueError,
     "X contains 1 non-finite value(s); the first is NaN at row 0"),
    ("GMM.pymc_model", lambda out: gmmflow.GMM(2).pymc_model(np.arange(5.0)), ValueError, "must be 2-D"),
    ("fit_em (dask)", lambda out: gmmflow.fit_em(gmmflow.GMM(2), _dask(_with(7, 1, np.nan))), ValueError,
     "X contains NaN or inf in chunk 0 (rows 0 to 9)"),
    ("fit_em (dask)", lambda out: gmmflow.fit_em(gmmflow.GMM(2), _dask(GOOD[:, 0])), ValueError,
     "X must be 2-D (n_samples, n_features); got 1-D"),
    ("fit_em (dask)", lambda out: gmmflow.fit_em(gmmflow.GMM(2), _dask(GOOD + 1j)), TypeError,
     "got dtype complex128"),
    ("fit_em (dask)", lambda out: gmmflow.fit_em(gmmflow.GMM(2), _dask(GOOD), sample_weight=np.ones(29)),
     ValueError, "sample_weight must have shape (30,) (one weight per row), got (29,)."),
    ("fit_em (dask)", lambda out: gmmflow.fit_em(gmmflow.GMM(2), _dask(GOOD),
                                                 sample_weight=_dask(-np.ones(30))), ValueError,
     "sample_weight must be finite and >= 0."),
    ("fit_em (zarr)", lambda out: gmmflow.fit_em(gmmflow.GMM(2), out / "nope.zarr"), FileNotFoundError,
     "No such zarr store"),
    ("plots", lambda out: plots.plot_trace(FITTED), ValueError, "no posterior group(s)"),
    ("plots", lambda out: plots.plot_clusters(FITTED, projection="tsne"), ValueError, "projection must be"),
    ("plots", lambda out: plots.plot_selection(GOOD), ValueError, "plot_selection needs the table"),
]


@pytest.mark.parametrize("entry, call, exc, message", ENTRY_CASES,
                         ids=[f"{c[0]}-{c[3][:30]}" for c in ENTRY_CASES])
def test_bad_arguments(entry, call, exc, message, tmp_path):
    with pytest.raises(exc, match=re.escape(message)):
        call(tmp_path)
    leftovers = [p for p in _snapshot(tmp_path) if p not in ("foreign.nc", "plain.nc", "taken", "ab.csv")]
    assert leftovers == []


# ---------------------------------------------------------------- CLI
CSV = {
    "nan.csv": "a,b\n1,2\nNaN,3\n4,5\n",
    "inf.csv": "a,b\n1,2\ninf,3\n4,5\n",
    "header_only.csv": "a,b\n",
    "blank.csv": "",
    "one_row.csv": "a,b\n1,2\n",
    "text.csv": "a,b\n1,x\n2,y\n",
    "complex.csv": "a,b\n1,1+2j\n3,4\n",
}
DATA_ARGS = [  # (arguments, message fragment); {d} is the CSV directory
    (["--data", "{d}/nan.csv"], "missing value in column 'a' at row 3 of the file"),
    (["--data", "{d}/inf.csv"], "the first is inf at row 1, feature 'a'"),
    (["--data", "{d}/header_only.csv"], "has a header but no data rows"),
    (["--data", "{d}/blank.csv"], "is empty: no header and no rows"),
    (["--data", "{d}/text.csv"], "column 'b' is not numeric"),
    (["--data", "{d}/complex.csv"], "column 'b' is not numeric (row 2 of the file holds '1+2j')"),
    (["--data", "{d}/missing.csv"], "is neither a bundled dataset"),
    (["--data", "atlantis"], "is neither a bundled dataset (blobs, faithful, galaxies, geyser, iris, wine)"),
    (["--data", "faithful", "--columns", "zz"], "dataset 'faithful' has no column(s) ['zz']"),
    (["--data", "{d}/text.csv", "--columns", "zz"], "has no column(s) ['zz']; its columns are ['a', 'b']"),
    (["--data", "faithful", "--k", "0"], "argument --k: must be >= 1, got 0"),
    (["--data", "faithful", "--k", "two"], "expected a whole number, got 'two'"),
    (["--data", "faithful", "--covariance", "banded"], "argument --covariance: invalid choice: 'banded'"),
    (["--data", "faithful", "--seed", "x"], "argument --seed: invalid int value: 'x'"),
]
K_TOO_BIG = {"em": "X has 1 row(s) but n_components=2", "sample": "X has 1 row(s) but n_components=2",
             "run": "ks contains [2] but X has only 1 rows"}
COMMAND_ARGS = {
    "em": (["em", "--k", "2", "--out", "{o}/fit.nc"], "{o}/fit.nc"),
    "sample": (["sample", "--k", "2", "--out", "{o}/post.nc"], "{o}/post.nc"),
    "run": (["run", "--k", "2", "--out", "{o}/run"], "{o}/run"),
}


def _cli_grid():
    grid = []
    for command, (base, _) in COMMAND_ARGS.items():
        for args, message in DATA_ARGS:
            grid.append((command, base + args, message))
        grid.append((command, base + ["--data", "{d}/one_row.csv"], K_TOO_BIG[command]))
        grid.append((command, base + ["--data", "faithful", "--out", "{existing}"], "already exists; pass --overwrite"))
    grid += [
        ("em", ["em", "--k", "2", "--data", "faithful", "--out", "{o}/missing/fit.nc"], "does not exist; create it"),
        ("em", ["em", "--data", "faithful", "--out", "{o}/x.nc"], "the following arguments are required: --k"),
        ("sample", ["sample", "--k", "2", "--data", "faithful", "--sampler", "stan", "--out", "{o}/p.nc"],
         "argument --sampler: invalid choice: 'stan'"),
        ("run", ["run", "--k", "5:2", "--out", "{o}/run"], "the range '5:2' is empty"),
        ("run", ["run", "--k", "1:2:3", "--out", "{o}/run"], "expected K or LOW:HIGH such as 1:6"),
        ("run", ["run", "--k", "1:x", "--out", "{o}/run"], "expected a whole number, got 'x'"),
        ("run", ["run", "--data", "galaxies", "--k", "90", "--out", "{o}/run"], "ks contains [90] but X has only 82 rows"),
        ("run", ["run", "--k", "1:6", "--draws", "100000000", "--out", "{o}/run"],
         "needs an estimated"),
        ("run", ["run", "--criterion", "aic", "--out", "{o}/run"], "argument --criterion: invalid choice: 'aic'"),
        ("report", ["report", "{o}/nope.nc", "--out", "{o}/rep"], "No such result file"),
        ("report", ["report", "{d}/nan.csv", "--out", "{o}/rep"], "is not a readable netCDF4/HDF5 file"),
        ("report", ["report", "{d}/plain.nc", "--out", "{o}/rep"], "not a gmmflow result"),
        ("report", ["report", "{d}/fit.nc", "--out", "{existing}"], "already exists; pass --overwrite"),
        ("report", ["report", "--out", "{o}/rep"], "the following arguments are required: result"),
        ("(none)", ["frobnicate"], "argument COMMAND: invalid choice: 'frobnicate'"),
        ("(none)", ["em", "--data", "faithful", "--k", "2", "--out", "{o}/f.nc", "--bogus"],
         "unrecognized arguments: --bogus"),
    ]
    return grid


CLI_GRID = _cli_grid()


@pytest.fixture
def inputs(tmp_path_factory):
    d = tmp_path_factory.mktemp("inputs")
    for name, text in CSV.items():
        (d / name).write_text(text)
    _not_gmmflow(d)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        gmmflow.save(FITTED, d / "fit.nc")
    return d


@pytest.mark.parametrize("command, argv, message", CLI_GRID,
                         ids=[f"cli {c}-{' '.join(a)[-40:]}" for c, a, _ in CLI_GRID])
def test_cli_bad_input(command, argv, message, inputs, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "out"
    out.mkdir()
    existing = _existing(out)
    (existing / "keep.txt").write_text("mine")
    before = _snapshot(tmp_path)
    code = main([a.format(d=inputs, o=out, existing=existing) for a in argv])
    captured = capsys.readouterr()
    assert code == 2
    assert message in captured.err, captured.err
    assert captured.err.count("\n") == 1 and "Traceback" not in captured.err
    assert captured.out == ""
    assert _snapshot(tmp_path) == before

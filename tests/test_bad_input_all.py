"""Every public entry point x every bad input: one clear message, before any work or write.

The tables below are the inventory: ``DATA_CASES`` (bad data) are driven
through every data-taking function, ``ENTRY_CASES`` are the bad arguments
specific to one entry point, and ``CLI_CASES`` drive each command. A guard
makes any EM iteration, NUTS run or grid cell fail the test, so each error
must come from the up-front checks; every case also asserts that nothing
was written.
"""

import hashlib
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
from conftest import forbid_work

GOOD = np.random.default_rng(0).normal(size=(30, 2))
NAMED = pd.DataFrame(GOOD, columns=["a", "b"])
with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    FITTED = gmmflow.fit_em(gmmflow.GMM(2), GOOD, seed=0)
    FITTED_NAMED = gmmflow.fit_em(gmmflow.GMM(2), NAMED, seed=0)
    FITTED_WEIGHTED = gmmflow.fit_em(gmmflow.GMM(2), GOOD, seed=0, sample_weight=np.linspace(0.5, 2.0, 30))
    FITTED_SMALL = gmmflow.fit_em(gmmflow.GMM(2), GOOD * 1e-3, seed=0)  # component sds ~1e-3


def _with(i, j, value):
    X = GOOD.copy()
    X[i, j] = value
    return X


def _masked():
    mask = np.zeros(GOOD.shape, bool)
    mask[3, 1] = True
    return np.ma.masked_array(GOOD, mask=mask)


def _big_integers():
    X = np.arange(60, dtype=np.int64).reshape(30, 2)
    X[5, 1] = 2**53 + 1
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
    "masked": (_masked, TypeError, "X is a numpy masked array with 1 masked value(s), the first at row 3, column 1; "
                                   "gmmflow would ignore the mask. Say what the mask means: drop the masked rows "
                                   "with X[~X.mask.any(axis=1)]"),
    "x^2 overflows": (lambda: _with(2, 0, 1e200), ValueError,
                      "X holds 1e+200 (row 2, feature 'x0'): with 30 rows, squares of values above 1.2e+153 "
                      "overflow float64"),
    "-x^2 overflows": (lambda: _with(7, 1, -3e160), ValueError, "X holds -3e+160 (row 7, feature 'x1')"),
    "spread underflows": (lambda: GOOD * 1e-200, ValueError, "X feature 'x0' varies by only"),
    "integer above 2**53": (_big_integers, ValueError, "X holds the integer 9007199254740993, which float64 cannot "
                                                       "represent (integers above 2**53 = 9007199254740992 are "
                                                       "rounded: it would become 9007199254740992)"),
    "Dataset": (lambda: xr.Dataset({"a": ("obs", GOOD[:, 0])}), TypeError,
                "X is an xarray.Dataset; pass one DataArray with dims (obs_id, feature)"),
    "duplicate names": (lambda: pd.DataFrame(GOOD, columns=["a", "a"]), ValueError,
                        "X has duplicate feature names ['a']; give every column its own name."),
}

# entry point: call with X (K = 3 where a model is built)
FITTING = {
    "fit_em": lambda X, out: gmmflow.fit_em(gmmflow.GMM(3), X, seed=0),
    "sample_posterior": lambda X, out: gmmflow.sample_posterior(gmmflow.GMM(3), X, seed=0),
    "select_components": lambda X, out: gmmflow.select_components(X, ks=[1, 3], seed=0),
    "run": lambda X, out: gmmflow.run(X, out / "run", ks=3, seed=0),
}
NAMED_FIT = {
    "predict": lambda X, out: gmmflow.predict(FITTED_NAMED, X),
    "predict_proba": lambda X, out: gmmflow.predict_proba(FITTED_NAMED, X),
    "score_samples": lambda X, out: gmmflow.score_samples(FITTED_NAMED, X),
    "bic": lambda X, out: gmmflow.bic(FITTED_NAMED, X),
    "aic": lambda X, out: gmmflow.aic(FITTED_NAMED, X),
    "icl": lambda X, out: gmmflow.icl(FITTED_NAMED, X),
    "sample_posterior(em=)": lambda X, out: gmmflow.sample_posterior(gmmflow.GMM(2), X, em=FITTED_NAMED, seed=0),
}
USING_A_FIT = {
    "predict": lambda X, out: gmmflow.predict(FITTED, X),
    "predict_proba": lambda X, out: gmmflow.predict_proba(FITTED, X),
    "score_samples": lambda X, out: gmmflow.score_samples(FITTED, X),
    "bic": lambda X, out: gmmflow.bic(FITTED, X),
    "aic": lambda X, out: gmmflow.aic(FITTED, X),
    "icl": lambda X, out: gmmflow.icl(FITTED, X),
}
SMALL_FIT = {
    "predict": lambda X, out: gmmflow.predict(FITTED_SMALL, X),
    "predict_proba": lambda X, out: gmmflow.predict_proba(FITTED_SMALL, X),
    "score_samples": lambda X, out: gmmflow.score_samples(FITTED_SMALL, X),
}
DATA_ENTRIES = FITTING | USING_A_FIT | {f"{name} (named fit)": call for name, call in NAMED_FIT.items()}
SPECIAL_ENTRIES = {f"{name} (fit of sd 1e-3)": call for name, call in SMALL_FIT.items()}

NAMED_ENTRIES = [f"{name} (named fit)" for name in NAMED_FIT]

# cases that are only bad for some entry points
EXTRA_DATA_CASES = [
    (name, lambda: GOOD[:2], ValueError, "X has 2 row(s) but n_components=3") for name in ("fit_em", "sample_posterior")
] + [
    (name, lambda: GOOD[:2], ValueError, "ks contains [3] but X has only 2 rows") for name in ("select_components", "run")
] + [
    (name, lambda: np.zeros((4, 3)), ValueError, "X has 3 feature(s) but the mixture was fitted on 2 (x0, x1)")
    for name in USING_A_FIT
] + [  # names are matched, not positions: unknown or missing names are refused with the expected ones
    (name, lambda: NAMED.rename(columns={"b": "c"}), ValueError,
     "X lacks ['b'] and has ['c'], which the mixture was not fitted on; the mixture was fitted on the features "
     "['a', 'b']. Pass data with exactly these columns (in any order: they are matched by name).")
    for name in NAMED_ENTRIES
] + [
    (name, lambda: NAMED[["a"]], ValueError, "X lacks ['b']; the mixture was fitted on the features ['a', 'b']")
    for name in NAMED_ENTRIES
] + [
    (name, lambda: NAMED.assign(c=1.0), ValueError, "X has ['c'], which the mixture was not fitted on")
    for name in NAMED_ENTRIES
] + [  # a row so far from every component that its squared distance overflows: not NaN probabilities
    (name, lambda: np.array([[1e153, 0.0]]), ValueError, "X row 0 (x0=1e+153, x1=0) lies so far from every "
                                                         "component that its squared distance overflows float64")
    for name in SPECIAL_ENTRIES
]



@pytest.fixture(autouse=True)
def no_work(monkeypatch):
    """Any EM restart, NUTS run or grid cell fails the test: errors must come first."""
    forbid_work(monkeypatch)


def _snapshot(path):
    """Every file and directory under ``path``: {relative path: digest of the bytes, or "dir"}."""
    return {str(p.relative_to(path)): "dir" if p.is_dir() else hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(path.rglob("*"))}


INPUTS = {}  # what the cases below made before calling: {path: snapshot}, checked unchanged afterwards


def _made(path):
    """Record an input a case made (a file or a directory tree) and return its path."""
    INPUTS[path] = _snapshot(path) if path.is_dir() else hashlib.sha256(path.read_bytes()).hexdigest()
    return path


DATA_GRID = [(entry, case) for entry in DATA_ENTRIES for case in DATA_CASES]


@pytest.mark.parametrize("entry, case", DATA_GRID, ids=[f"{e}-{c}" for e, c in DATA_GRID])
def test_bad_data(entry, case, tmp_path):
    make, exc, message = DATA_CASES[case]
    with pytest.raises(exc, match=re.escape(message)):
        DATA_ENTRIES[entry](make(), tmp_path)
    assert _snapshot(tmp_path) == {}


@pytest.mark.parametrize("entry, make, exc, message", EXTRA_DATA_CASES,
                         ids=[f"{c[0]}-{c[3][:25]}" for c in EXTRA_DATA_CASES])
def test_bad_data_for_the_entry(entry, make, exc, message, tmp_path):
    with pytest.raises(exc, match=re.escape(message)):
        (DATA_ENTRIES | SPECIAL_ENTRIES)[entry](make(), tmp_path)
    assert _snapshot(tmp_path) == {}


def _foreign(out):
    (out / "foreign.nc").write_text("not a netCDF file")
    return _made(out / "foreign.nc")


def _not_gmmflow(out):
    xr.Dataset({"a": ("x", [1, 2])}).to_netcdf(out / "plain.nc", engine="h5netcdf")
    return _made(out / "plain.nc")


def _csv(out):
    (out / "ab.csv").write_text("a,b\n1,2\n3,4\n")
    return _made(out / "ab.csv")


def _file(out, name, content):
    """A file in ``out`` with ``content`` (text, or bytes written as they are)."""
    path = out / name
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    return _made(path)


def _zarr(out, name, array, **attrs):
    zarr = pytest.importorskip("zarr")
    z = zarr.create_array(str(out / name), shape=array.shape, dtype=array.dtype, chunks=(10,) + array.shape[1:])
    z[...] = array
    z.attrs.update(attrs)
    return _made(out / name)


def _zarr_group(out):
    zarr = pytest.importorskip("zarr")
    zarr.open_group(str(out / "group.zarr"), mode="w").create_array("x", shape=(3, 2), dtype="f8")
    return _made(out / "group.zarr")


def _dask(X):
    import dask.array as da

    return da.from_array(X, chunks=(10,) + X.shape[1:])


def _existing(out, name="taken"):
    (out / name).mkdir()
    return _made(out / name)


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
     "sampler must be one of 'auto', 'pymc', 'nutpie', 'numpyro', 'gibbs'; got 'stan'"),
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
    ("compare", lambda out: gmmflow.compare(FITTED), ValueError, "This result has no posterior group(s); compare needs a gmmflow.sample_posterior result"),
    ("compare", lambda out: gmmflow.compare(GOOD), TypeError, "compare needs an arviz.InferenceData"),
    ("save", lambda out: gmmflow.save(GOOD, out / "x.nc"), TypeError, "save() needs an arviz.InferenceData"),
    ("save", lambda out: gmmflow.save(FITTED, out / "missing" / "x.nc"), FileNotFoundError,
     "does not exist; create it first"),
    ("save", lambda out: gmmflow.save(FITTED, _existing(out)), IsADirectoryError, "is a directory; give a file name"),
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
     "X contains NaN in chunk 0 (rows 0 to 9). Pass missing='marginalize'"),
    ("fit_em (dask)", lambda out: gmmflow.fit_em(gmmflow.GMM(2), _dask(GOOD[:, 0])), ValueError,
     "X must be 2-D (n_samples, n_features); got 1-D"),
    ("fit_em (dask)", lambda out: gmmflow.fit_em(gmmflow.GMM(2), _dask(GOOD + 1j)), TypeError,
     "X is complex (complex128); a Gaussian mixture needs real numbers"),
    ("fit_em (dask)", lambda out: gmmflow.fit_em(gmmflow.GMM(2), _dask(GOOD), sample_weight=np.ones(29)),
     ValueError, "sample_weight must have shape (30,) (one weight per row), got (29,)."),
    ("fit_em (dask)", lambda out: gmmflow.fit_em(gmmflow.GMM(2), _dask(GOOD),
                                                 sample_weight=_dask(-np.ones(30))), ValueError,
     "sample_weight must be finite and >= 0."),
    ("fit_em (zarr)", lambda out: gmmflow.fit_em(gmmflow.GMM(2), out / "nope.zarr"), FileNotFoundError,
     "No such zarr store"),
    # a fit combined with data: the fingerprint must match (issue 18)
    ("sample_posterior", lambda out: gmmflow.sample_posterior(gmmflow.GMM(2), GOOD + 1.0, em=FITTED), ValueError,
     "em was fitted on other data than X (the values differ: em 30 x 2 (x0, x1), values "),
    ("sample_posterior", lambda out: gmmflow.sample_posterior(gmmflow.GMM(2), GOOD[:20], em=FITTED), ValueError,
     "em was fitted on other data than X (shape (30, 2) vs (20, 2): em 30 x 2 (x0, x1)"),
    ("sample_posterior", lambda out: gmmflow.sample_posterior(gmmflow.GMM(2), GOOD, em=FITTED_WEIGHTED), ValueError,
     "em is a weighted fit (sample_weight) and X comes without weights: its estimate and data-based prior are of "
     "other data; pass the X em was fitted on (unweighted), or em=None to fit EM on X here."),
    ("sample_posterior", lambda out: gmmflow.sample_posterior(gmmflow.GMM(2), NAMED[["b", "a"]] + 1, em=FITTED_NAMED),
     ValueError, "em was fitted on other data than X (the values differ"),
    # sizes a user controls, bounded before any work
    ("fit_em", lambda out: gmmflow.fit_em(gmmflow.GMM(2), GOOD, n_init=10**11), MemoryError,
     "fit_em on 30 x 2 data with K=2 and 100000000000 restart(s) needs an estimated"),
    ("fit_em", lambda out: gmmflow.fit_em(gmmflow.GMM(2), GOOD, seed=2**64), ValueError,
     "seed must be an integer from 0 to 2**64 - 1 = 18446744073709551615 (every sampler takes 64 bits)"),
    ("sample_posterior", lambda out: gmmflow.sample_posterior(gmmflow.GMM(2), GOOD, seed=2**70), ValueError,
     "seed must be an integer from 0 to 2**64 - 1"),
    ("sample_posterior", lambda out: gmmflow.sample_posterior(gmmflow.GMM(2), GOOD, draws=10**9), MemoryError,
     "sample_posterior with 4 chains x 1000000000 draws on 30 rows needs an estimated"),
    ("select_components", lambda out: gmmflow.select_components(GOOD, ks=range(1, 10**20)), ValueError,
     "ks contains 31..99999999999999999999 (99,999,999,999,999,999,969 values) but X has only 30 rows"),
    ("select_components", lambda out: gmmflow.select_components(GOOD, ks=iter(range(1, 10**12))), ValueError,
     "ks contains 31..1030 (1,000 values) and more but X has only 30 rows"),
    ("select_components", lambda out: gmmflow.select_components(GOOD, n_init=10**11), MemoryError,
     "select_components over K in [1, 2, 3, 4, 5, 6] x ['full'] with 100000000000 restart(s) each needs an "
     "estimated"),
    ("run", lambda out: gmmflow.run(GOOD, out / "r", ks=range(1, 10**9)), ValueError,
     "ks contains 31..999999999 (999,999,969 values) but X has only 30 rows"),
    ("run", lambda out: gmmflow.run(GOOD, out / "r", ks=2, n_init=10**11), MemoryError,
     "gmmflow run with K = 2 and 100000000000 restart(s) needs an estimated"),
    ("sample_em", lambda out: gmmflow.sample_em(FITTED, 10**15), MemoryError, "sample_em of 1000000000000000 rows "
                                                                             "needs an estimated"),
    ("fit_em", lambda out: gmmflow.fit_em(gmmflow.GMM(2), GOOD, sample_weight=np.ma.masked_array(
        np.ones(30), mask=np.arange(30) == 4)), TypeError,
     "sample_weight is a numpy masked array with 1 masked value(s), the first at row 4; gmmflow would ignore the "
     "mask. Say what the mask means: give the masked rows weight 0 with sample_weight.filled(0)"),
    # CSV files: separator, decimal mark, header, index/ID columns, encoding (issue 18)
    ("read_csv", lambda out: gmmflow.read_csv(_file(out, "x.csv", "a;b,c\n1;2,3\n4;5,6\n")), ValueError,
     "x.csv: the separator is ambiguous: ',' and ';' both split every line into the same number of fields. Say "
     "which one separates the columns: --sep ';' (Python: sep=';')."),
    ("read_csv", lambda out: gmmflow.read_csv(_file(out, "x.csv", "a;b\n1,5;2.5\n3;4\n")), ValueError,
     "x.csv: the decimal mark is ambiguous: '2.5' (line 2) has a point and '1,5' (line 2) a comma. Give it: "
     "--decimal , (Python: decimal=',') or --decimal . (Python: decimal='.')."),
    ("read_csv", lambda out: gmmflow.read_csv(_file(out, "x.csv", "a,b\n1,5,2,5\n3,5,4,5\n")), ValueError,
     "x.csv: with the separator ',', line 1 has 2 field(s) but line 2 has 4. Give the separator, e.g. --sep ';' "
     "(Python: sep=';'), or quote fields that contain it. If the numbers use decimal commas, the columns need "
     "another separator (e.g. ';') and --decimal , (Python: decimal=',')."),
    ("read_csv", lambda out: gmmflow.read_csv(_file(out, "x.csv", "1.5,2.5\n3,4\n5,6\n")), ValueError,
     "x.csv: the first line (1.5, 2.5) is all numbers, so it looks like data, not a header (reading it as column "
     "names would lose that row). If the file has no header, pass --no-header (Python: header=None)"),
    ("read_csv", lambda out: gmmflow.read_csv(_file(out, "x.csv", ",a,b\n0,1.5,2\n1,3.5,4\n2,5.5,6\n")), ValueError,
     "x.csv: column(s) ['Unnamed: 0'] do not look like measurements ('Unnamed: 0': its "
     "header is empty, as pandas writes its index); a mixture fitted on them would cluster row numbers or "
     "identifiers. To fit them anyway or leave them out, choose the feature columns with --columns a,b (Python: "
     "columns=['a', 'b'])."),
    ("read_csv", lambda out: gmmflow.read_csv(_file(out, "x.csv", "a,b,\n1,2,\n3,4,\n")), ValueError,
     "x.csv: column(s) ['Unnamed: 2'] do not look like measurements ('Unnamed: 2': it holds no values (a separator "
     "at the end of every line?))"),
    ("read_csv", lambda out: gmmflow.read_csv(_file(out, "x.csv", "ID,a\n7,1.5\n9,3.5\n3,5.5\n")), ValueError,
     "x.csv: column(s) ['ID'] do not look like measurements ('ID': its name marks a row "
     "index or an identifier)"),
    ("read_csv", lambda out: gmmflow.read_csv(_file(out, "x.csv", "n,a\n1,0.5\n2,0.25\n3,0.7\n")), ValueError,
     "('n': it counts the rows (1, 2, ..., 3))"),
    ("read_csv", lambda out: gmmflow.read_csv(_file(out, "x.csv", "k,a\n" + "".join(
        f"{(37 * i) % 101},{i / 7}\n" for i in range(1, 21)))), ValueError,
     "('k': its 20 values are distinct integers, like identifiers)"),
    ("read_csv", lambda out: gmmflow.read_csv(_file(out, "x.csv", b"caf\xe9,b\n1,2\n3,4\n")), ValueError,
     "x.csv is not utf-8 text: byte 0xe9 at offset 3 cannot be decoded. Give the file's encoding: --encoding "
     "latin-1 (Python: encoding='latin-1'), or save it as UTF-8."),
    ("read_csv", lambda out: gmmflow.read_csv(_file(out, "x.csv", "a,b\n1,2\n"), encoding="klingon"), ValueError,
     "x.csv: unknown encoding 'klingon'; give a Python codec name such as 'utf-8', 'latin-1' or 'cp1252'."),
    ("read_csv", lambda out: gmmflow.read_csv(_file(out, "x.csv", "a,b\n1,2\n"), sep=";"), ValueError,
     "x.csv: the separator ';' given splits no line, but ',' splits every line into 2 fields. Give --sep ','"
     " (Python: sep=',') (or none: the separator is detected)."),
    ("read_csv", lambda out: gmmflow.read_csv(_file(out, "x.csv", "a,b\n1,2\n3,4,5\n"), sep=","), ValueError,
     "x.csv: line 3 has 3 fields but the lines before it have 2 (separator ','). Give the separator, e.g. --sep ';' "
     "(Python: sep=';'), or quote fields that contain it."),
    ("read_csv", lambda out: gmmflow.read_csv(_file(out, "x.csv", "a,b\n9007199254740993,1\n2,3\n")), ValueError,
     "x.csv (column 'a') holds the integer 9007199254740993, which float64 cannot represent"),
    ("read_csv", lambda out: gmmflow.read_csv(_file(out, "x.csv", "a,b\n123456789012345678901234,1\n2,3\n")),
     ValueError, "x.csv: column 'a' holds the integer 123456789012345678901234 (line 2), too large for float64"),
    ("read_csv", lambda out: gmmflow.read_csv(_file(out, "x.csv", "a;b\n1.5;2,5\n"), decimal="."), ValueError,
     "x.csv: column 'b' is not numeric (line 2 of the file holds '2,5'). It looks like a number with a decimal "
     "comma: give --decimal , (Python: decimal=',')."),
    ("read_csv", lambda out: gmmflow.read_csv(out), IsADirectoryError, "is not a file; give the path of a CSV file."),
    ("read_csv", lambda out: gmmflow.read_csv(_csv(out), header="yes"), ValueError,
     "header must be 'infer', 0 (the first line) or None (no header); got 'yes'."),
    # chunked input: zarr stores and dask arrays
    ("fit_em (zarr)", lambda out: gmmflow.fit_em(gmmflow.GMM(2), _zarr_group(out)), ValueError,
     "group.zarr is not a readable zarr array (NodeTypeValidationError: "),
    ("fit_em (zarr)", lambda out: gmmflow.fit_em(gmmflow.GMM(2), _zarr(out, "c.zarr", np.zeros((30, 2, 2)))),
     ValueError, "c.zarr holds a 3-D array of shape (30, 2, 2); gmmflow needs a 2-D array of shape (rows, features)."),
    ("fit_em (zarr)", lambda out: gmmflow.fit_em(gmmflow.GMM(2), _zarr(out, "c.zarr", GOOD, feature_names=["a"])),
     ValueError, "c.zarr: its 'feature_names' attribute must list 2 distinct column names, got ['a']."),
    ("fit_em (zarr)", lambda out: gmmflow.fit_em(gmmflow.GMM(2), _zarr(out, "c.zarr", _with(12, 1, 1e200))),
     ValueError, "c.zarr holds 1e+200 (chunk 1, rows 10 to 19, feature 'x1'): with 30 rows, squares of values "
                 "above 1.2e+153 overflow float64"),
    ("fit_em (dask)", lambda out: gmmflow.fit_em(gmmflow.GMM(2), _dask(_big_integers())), ValueError,
     "X holds the integer 9007199254740993, which float64 cannot represent"),
    ("plots", lambda out: plots.plot_trace(FITTED), ValueError, "no posterior group(s)"),
    ("plots", lambda out: plots.plot_clusters(FITTED, projection="tsne"), ValueError, "projection must be"),
    ("plots", lambda out: plots.plot_selection(GOOD), ValueError, "plot_selection needs the table"),
]


@pytest.mark.parametrize("entry, call, exc, message", ENTRY_CASES,
                         ids=[f"{c[0]}-{c[3][:30]}" for c in ENTRY_CASES])
def test_bad_arguments(entry, call, exc, message, tmp_path):
    INPUTS.clear()
    with pytest.raises(exc, match=re.escape(message)):
        call(tmp_path)
    for path, before in INPUTS.items():  # every input the case made is byte-identical
        assert (_snapshot(path) if path.is_dir() else hashlib.sha256(path.read_bytes()).hexdigest()) == before
    made = {str(p.relative_to(tmp_path)) for p in INPUTS}
    leftovers = [p for p in _snapshot(tmp_path) if p.split("/")[0] not in made]
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
    "ok.csv": "a,b\n1.5,2\n3.5,4\n5.5,7\n",
    "ambiguous_sep.csv": "a;b,c\n1;2,3\n4;5,6\n",
    "mixed_decimal.csv": "a;b\n1,5;2.5\n3;4\n",
    "no_header.csv": "1.5,2.5\n3,4\n5,6\n",
    "pandas_index.csv": ",a,b\n0,1.5,2\n1,3.5,4\n2,5.5,6\n",
    "ids.csv": "id,a,b\n7,1.5,2\n9,3.5,4\n3,5.5,6\n",
    "latin1.csv": b"caf\xe9,b\n1,2\n3,4\n",
    "ragged.csv": "a,b\n1,2\n3,4,5\n6,7\n",
    "big_int.csv": "a,b\n9007199254740993,1\n2,3\n4,5\n",
    "huge.csv": "a,b\n1e200,1\n2,3\n4,5\n",
}
DATA_ARGS = [  # (arguments, message fragment); {d} is the CSV directory
    (["--data", "{d}/nan.csv"], "missing value in column 'a' at line 3 of the file"),
    (["--data", "{d}/inf.csv"], "the first is inf at row 1, feature 'a'"),
    (["--data", "{d}/header_only.csv"], "has a header but no data rows"),
    (["--data", "{d}/blank.csv"], "is empty: no header and no rows"),
    (["--data", "{d}/text.csv"], "column 'b' is not numeric"),
    (["--data", "{d}/complex.csv"], "column 'b' is not numeric (line 2 of the file holds '1+2j')"),
    (["--data", "{d}/missing.csv"], "is neither a bundled dataset"),
    (["--data", "atlantis"], "is neither a bundled dataset (blobs, faithful, galaxies, geyser, iris, wine)"),
    (["--data", "faithful", "--columns", "zz"], "dataset 'faithful' has no column(s) ['zz']"),
    (["--data", "{d}/text.csv", "--columns", "zz"], "has no column(s) ['zz']; its columns are ['a', 'b']"),
    (["--data", "faithful", "--k", "0"], "argument --k: must be >= 1, got 0"),
    (["--data", "faithful", "--k", "two"], "expected a whole number, got 'two'"),
    (["--data", "faithful", "--covariance", "banded"], "argument --covariance: invalid choice: 'banded'"),
    (["--data", "faithful", "--seed", "x"], "argument --seed: invalid int value: 'x'"),
    # issue 18: CSV sniffing, index/ID columns, encodings, values float64 cannot carry, seeds, zarr columns
    (["--data", "{d}/ambiguous_sep.csv"], "ambiguous_sep.csv: the separator is ambiguous: ',' and ';' both split "
                                          "every line into the same number of fields. Say which one separates the "
                                          "columns: --sep ';' (Python: sep=';')."),
    (["--data", "{d}/mixed_decimal.csv"], "mixed_decimal.csv: the decimal mark is ambiguous"),
    (["--data", "{d}/no_header.csv"], "no_header.csv: the first line (1.5, 2.5) is all numbers, so it looks like "
                                      "data, not a header (reading it as column names would lose that row). If the "
                                      "file has no header, pass --no-header"),
    (["--data", "{d}/pandas_index.csv"], "pandas_index.csv: column(s) ['Unnamed: 0'] do not look like "
                                         "measurements"),
    (["--data", "{d}/ids.csv"], "ids.csv: column(s) ['id'] do not look like measurements ('id': its name marks a "
                                "row index or an identifier); a mixture fitted on them would cluster row numbers or "
                                "identifiers. To fit them anyway or leave them out, choose the feature columns with "
                                "--columns a,b"),
    (["--data", "{d}/latin1.csv"], "latin1.csv is not utf-8 text: byte 0xe9 at offset 3 cannot be decoded. Give "
                                   "the file's encoding: --encoding latin-1"),
    (["--data", "{d}/latin1.csv", "--encoding", "klingon"], "latin1.csv: unknown encoding 'klingon'"),
    (["--data", "{d}/ragged.csv"], "ragged.csv: with the separator ',', line 1 has 2 field(s) but line 3 has 3."),
    (["--data", "{d}/big_int.csv"], "big_int.csv (column 'a') holds the integer 9007199254740993, which float64 "
                                    "cannot represent"),
    (["--data", "{d}/huge.csv"], "huge.csv holds 1e+200 (row 0, feature 'a'): with 3 rows, squares of values "
                                 "above 3.9e+153 overflow float64"),
    (["--data", "{d}/ok.csv", "--sep", "ab"], "argument --sep: expected one character such as ';', or 'tab' or "
                                              "'whitespace', got 'ab'"),
    (["--data", "{d}/ok.csv", "--decimal", ";"], "argument --decimal: invalid choice: ';'"),
    (["--data", "{d}/ok.csv", "--header", "--no-header"], "argument --no-header: not allowed with argument --header"),
    (["--data", "{d}/ok.csv", "--seed", "18446744073709551616"], "argument --seed: must be from 0 to 2**64 - 1 = "
                                                                 "18446744073709551615, got 18446744073709551616"),
    (["--data", "{d}/ok.csv", "--seed", "-1"], "argument --seed: must be from 0 to 2**64 - 1"),
    (["--data", "{d}/store.zarr", "--columns", "zz"], "store.zarr has no column(s) ['zz']; its columns are "
                                                      "['x0', 'x1'] (it has no 'feature_names' attribute, so they "
                                                      "are x0, x1, ...)."),
    (["--data", "{d}/group.zarr"], "group.zarr is not a readable zarr array"),
]
K_TOO_BIG = {"em": "X has 1 row(s) but n_components=2", "sample": "X has 1 row(s) but n_components=2",
             "run": "ks contains [2] but X has only 1 rows"}
EXISTING = {  # --out an existing directory holding a file of the user's
    "em": "is a directory; give a file name such as", "sample": "is a directory; give a file name such as",
    "run": "exists and is not a gmmflow output directory",
}
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
        grid.append((command, base + ["--data", "faithful", "--out", "{existing}"], EXISTING[command]))
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
        ("run", ["run", "--k", "1:1000000000", "--out", "{o}/run"],
         "ks contains 273..1000000000 (999,999,728 values) but X has only 272 rows"),
        ("run", ["run", "--k", "1:99999999999999999999", "--out", "{o}/run"],
         "ks contains 273..99999999999999999999 (99,999,999,999,999,999,727 values) but X has only 272 rows"),
        ("run", ["run", "--k", "1:100000", "--out", "{o}/run"], "ks contains 273..100000 (99,728 values) but X has "
                                                                "only 272 rows; every K must be at most"),
        ("run", ["run", "--n-init", "100000000000", "--out", "{o}/run"],
         "gmmflow run with K = 2 and 100000000000 restart(s) needs an estimated"),
        ("em", ["em", "--data", "faithful", "--k", "2", "--n-init", "100000000000", "--out", "{o}/f.nc"],
         "fit_em on 272 x 2 data with K=2 and 100000000000 restart(s) needs an estimated"),
        ("em", ["em", "--data", "{d}/store.zarr", "--k", "2", "--chunks", "1", "--n-init", "100000000000",
                "--out", "{o}/f.nc"],
         "fit_em on 30 x 2 chunked data with K=2, 100000000000 restart(s) and 1 rows per chunk needs an estimated"),
        ("sample", ["sample", "--data", "faithful", "--k", "2", "--draws", "1000000000", "--out", "{o}/p.nc"],
         "free some space or choose another output path"),  # the result file's size is checked first
        ("report", ["report", "{o}/nope.nc", "--out", "{o}/rep"], "No such result file"),
        ("report", ["report", "{d}/nan.csv", "--out", "{o}/rep"], "is not a readable netCDF4/HDF5 file"),
        ("report", ["report", "{d}/plain.nc", "--out", "{o}/rep"], "not a gmmflow result"),
        ("report", ["report", "{d}/fit.nc", "--out", "{existing}"], "exists and is not a gmmflow output directory"),
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
        _file(d, name, text)
    _zarr(d, "store.zarr", GOOD)
    _zarr_group(d)
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
    before, inputs_before = _snapshot(tmp_path), _snapshot(inputs)
    code = main([a.format(d=inputs, o=out, existing=existing) for a in argv])
    captured = capsys.readouterr()
    assert code == 2
    assert message in captured.err, captured.err
    assert captured.err.count("\n") == 1 and "Traceback" not in captured.err
    assert captured.out == ""
    assert _snapshot(tmp_path) == before  # nothing written, every file byte-identical
    assert _snapshot(inputs) == inputs_before

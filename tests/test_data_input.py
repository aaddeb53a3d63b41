"""Data input (issue 18): matched by name, CSV files read as written, fingerprints, what float64 carries.

The refusals are in the bad-input table (``test_bad_input_all.py``); here
is what must work, each checked against an independent route: a
permutation of named columns changes no answer (hypothesis), a sniffed CSV
equals pandas told the separator and decimal mark, a fingerprint equals a
BLAKE2b computed here, a zarr store's named or selected columns give the
fit of the same columns in memory.
"""

import hashlib
import io
import json
import re
import warnings

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from hypothesis import given, settings
from hypothesis import strategies as st

import gmmflow
from gmmflow.cli import load_data, main
from gmmflow.inputs.fingerprint import DataFingerprint

IRIS = gmmflow.load_dataset("iris").to_pandas()  # 150 x 4, named columns
with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    IRIS_FIT = gmmflow.fit_em(gmmflow.GMM(3), IRIS, n_init=3, seed=0)

ANSWERS = {
    "predict": lambda X: gmmflow.predict(IRIS_FIT, X),
    "predict_proba": lambda X: gmmflow.predict_proba(IRIS_FIT, X),
    "score_samples": lambda X: gmmflow.score_samples(IRIS_FIT, X),
    "bic": lambda X: gmmflow.bic(IRIS_FIT, X),
    "aic": lambda X: gmmflow.aic(IRIS_FIT, X),
    "icl": lambda X: gmmflow.icl(IRIS_FIT, X),
}
REFERENCE = {name: answer(IRIS) for name, answer in ANSWERS.items()}


# ---------------------------------------------------------------- matched by name
@settings(max_examples=25, deadline=None)
@given(order=st.permutations(list(IRIS.columns)), as_array=st.booleans())
def test_any_column_order_of_named_data_gives_the_same_answers(order, as_array):
    """DataFrame columns (or DataArray feature coords) in any order: the same labels, probabilities, densities
    and criteria, bit for bit (the columns are reordered to the fit's before anything is computed). Taken by
    position, a non-identity permutation changes them, so this fails if names were ignored."""
    X = IRIS[order]
    if as_array:
        X = xr.DataArray(X.to_numpy(), dims=("obs_id", "feature"), coords={"feature": order})
    for name, answer in ANSWERS.items():
        np.testing.assert_array_equal(answer(X), REFERENCE[name], err_msg=name)
    if order != list(IRIS.columns):
        assert not np.array_equal(gmmflow.score_samples(IRIS_FIT, IRIS[order].to_numpy()), REFERENCE["score_samples"])


def test_the_reported_flip_is_gone():
    """Faithful with its two columns swapped: 36% of labels flipped and log L was -4.75e6 instead of -1130."""
    faithful = gmmflow.load_dataset("faithful").to_pandas()
    fit = gmmflow.fit_em(gmmflow.GMM(2), faithful, seed=0)
    swapped = faithful[["waiting", "eruptions"]]
    np.testing.assert_array_equal(gmmflow.predict(fit, swapped), gmmflow.predict(fit, faithful))
    assert gmmflow.score_samples(fit, swapped).sum() == pytest.approx(float(fit.em_estimate.log_likelihood), rel=1e-12)


def test_unnamed_data_are_taken_by_position():
    """A plain array (on either side) has no names to match: its columns are the fit's, in order."""
    values = IRIS.to_numpy()
    np.testing.assert_array_equal(gmmflow.predict(IRIS_FIT, values), REFERENCE["predict"])
    unnamed_fit = gmmflow.fit_em(gmmflow.GMM(3), values, n_init=3, seed=0)
    renamed = IRIS.set_axis(["p", "q", "r", "s"], axis=1)  # names, but the fit has none: by position
    np.testing.assert_array_equal(gmmflow.predict(unnamed_fit, renamed), gmmflow.predict(unnamed_fit, values))


# ---------------------------------------------------------------- fingerprints
def test_the_fingerprint_is_blake2b_of_the_fitted_values_and_round_trips(tmp_path):
    path = gmmflow.save(IRIS_FIT, tmp_path / "iris.nc")
    recorded = json.loads(gmmflow.load(path).attrs["data_fingerprint"])
    values = np.ascontiguousarray(IRIS.to_numpy(dtype="<f8"))
    block = hashlib.blake2b(values.tobytes(), digest_size=32).digest()
    assert recorded == {"n_obs": 150, "features": list(IRIS.columns), "named": True,
                        "values_hash": hashlib.blake2b(block, digest_size=32).hexdigest(), "block_rows": 150,
                        "weights_hash": None}


def test_the_same_data_in_any_container_and_order_have_one_fingerprint():
    """Numpy, DataFrame and DataArray of the same values hash alike; a permuted DataFrame is matched to the fit's
    order first, so sample_posterior(em=) accepts it (the sampler is never reached here)."""
    as_numpy = gmmflow.fit_em(gmmflow.GMM(3), IRIS.to_numpy(), n_init=1, seed=0).attrs["data_fingerprint"]
    a, b = (DataFingerprint.from_json(text) for text in (as_numpy, IRIS_FIT.attrs["data_fingerprint"]))
    assert a.values_hash == b.values_hash and (a.named, b.named) == (False, True)
    from gmmflow.results.from_idata import check_fitted_on
    from gmmflow.inputs.alignment import align_to_features

    data = align_to_features(IRIS[IRIS.columns[::-1]], list(IRIS.columns), True)
    check_fitted_on(IRIS_FIT, data.values, data.features, data.named, "em", "fix")  # does not raise


def test_a_chunked_fit_is_checked_against_data_in_memory(monkeypatch):
    """A zarr/dask fit hashes chunk by chunk; data in memory are re-hashed in its chunks and match."""
    da = pytest.importorskip("dask.array")
    values = IRIS.to_numpy()
    chunked = gmmflow.fit_em(gmmflow.GMM(3), da.from_array(values, chunks=40), n_init=1, seed=0)
    fingerprint = DataFingerprint.from_json(chunked.attrs["data_fingerprint"])
    digests = [hashlib.blake2b(np.ascontiguousarray(values[a:a + 40]).tobytes(), digest_size=32).digest()
               for a in range(0, 150, 40)]
    assert fingerprint.block_rows == 40
    assert fingerprint.values_hash == hashlib.blake2b(b"".join(digests), digest_size=32).hexdigest()
    from gmmflow.results.from_idata import check_fitted_on

    check_fitted_on(chunked, values, fingerprint.features, False, "em", "fix")
    with pytest.raises(ValueError, match=re.escape("em was fitted on other data than X (the values differ")):
        check_fitted_on(chunked, values + 1e-9, fingerprint.features, False, "em", "fix")


def test_a_result_without_a_fingerprint_is_checked_by_its_stored_data():
    """Files written before the fingerprint: their observed_data stands in for it; without it, refused."""
    from gmmflow.results.from_idata import check_fitted_on

    old = IRIS_FIT.copy()
    del old.attrs["data_fingerprint"]
    check_fitted_on(old, IRIS.to_numpy(), list(IRIS.columns), True, "em", "fix")
    with pytest.raises(ValueError, match=re.escape("em was fitted on other data than X (the values differ")):
        check_fitted_on(old, IRIS.to_numpy() * 2, list(IRIS.columns), True, "em", "fix")
    del old.observed_data
    with pytest.raises(ValueError, match=re.escape("em records neither a fingerprint of its data nor the data (an "
                                                   "older gmmflow result), so it cannot be checked against X; fix.")):
        check_fitted_on(old, IRIS.to_numpy(), list(IRIS.columns), True, "em", "fix")


def test_sample_posterior_refuses_the_em_fit_of_other_data_on_faithful():
    """The reported case: EM of galaxies-like other data passed as em= for Faithful used its data-based prior."""
    faithful = gmmflow.load_dataset("faithful")
    other = gmmflow.fit_em(gmmflow.GMM(2), faithful.values[::-1].copy(), seed=0)  # same rows, other order
    with pytest.raises(ValueError, match=re.escape("em was fitted on other data than X (the values differ")):
        gmmflow.sample_posterior(gmmflow.GMM(2), faithful.values, em=other, seed=0)


# ---------------------------------------------------------------- CSV files
def _pandas(text, **options):
    return pd.read_csv(io.StringIO(text), **options).to_numpy(dtype=np.float64)


@pytest.mark.parametrize("text, told", [
    ("a;b\n1,5;2,25\n-3,0;4e2\n5,125;,5\n", dict(sep=";", decimal=",")),
    ("a\tb\n1.5\t2\n3\t4.25\n", dict(sep="\t")),
    ("a|b\n1.5|2\n3|4.25\n", dict(sep="|")),
    ("a b\n1.5   2\n3 4.25\n", dict(sep=r"\s+")),
    ('"a";"b"\n"1,5";"2"\n"3";"4,25"\n', dict(sep=";", decimal=",")),
    ("\ufeffa,b\n1.5,2\n3,4.25\n", dict()),
    ("velocity\n9172\n9350\n9483\n9558\n", dict()),  # one column of distinct sorted integers: not refused alone
], ids=["semicolon-comma", "tab", "pipe", "whitespace", "quoted", "bom", "one-column"])
def test_a_sniffed_csv_equals_pandas_told_the_format(text, told, tmp_path):
    path = tmp_path / "data.csv"
    path.write_bytes(text.encode())
    got = gmmflow.read_csv(path)
    np.testing.assert_array_equal(got.values, _pandas(text.lstrip("\ufeff"), **told))
    assert list(got.feature.values) == list(pd.read_csv(io.StringIO(text.lstrip("\ufeff")), **told).columns)


def test_csv_options_settle_what_sniffing_refuses(tmp_path):
    (tmp_path / "h.csv").write_text("1.5,2.5\n3,4\n")
    no_header = gmmflow.read_csv(tmp_path / "h.csv", header=None)
    assert list(no_header.feature.values) == ["x0", "x1"] and no_header.shape == (2, 2)
    assert list(gmmflow.read_csv(tmp_path / "h.csv", header=0).feature.values) == ["1.5", "2.5"]
    (tmp_path / "l.csv").write_bytes("café,b\n1,2\n3,4\n".encode("latin-1"))
    assert list(gmmflow.read_csv(tmp_path / "l.csv", encoding="latin-1").feature.values) == ["café", "b"]
    (tmp_path / "s.csv").write_text("a;b,c\n1;2,5\n4;5,5\n")
    np.testing.assert_array_equal(gmmflow.read_csv(tmp_path / "s.csv", sep=";", decimal=",").values,
                                  [[1, 2.5], [4, 5.5]])
    (tmp_path / "i.csv").write_text(",a,b\n0,1.5,2\n1,3.5,4\n2,5.5,6\n")
    assert list(gmmflow.read_csv(tmp_path / "i.csv", columns=["b", "a"]).feature.values) == ["b", "a"]


def test_cli_fits_a_semicolon_decimal_comma_file_as_two_features(tmp_path):
    """Today's bug: fitted as one feature made of the fractional digits."""
    faithful = gmmflow.load_dataset("faithful").to_pandas()
    faithful.to_csv(tmp_path / "f.csv", sep=";", decimal=",", index=False)
    assert main(["--quiet", "em", "--data", str(tmp_path / "f.csv"), "--k", "2", "--seed", "0",
                 "--out", str(tmp_path / "f.nc")]) == 0
    fit = gmmflow.load(tmp_path / "f.nc")
    direct = gmmflow.fit_em(gmmflow.GMM(2), faithful, seed=0)
    assert list(fit.em_estimate.feature.values) == ["eruptions", "waiting"]
    np.testing.assert_array_equal(fit.em_estimate.mu.values, direct.em_estimate.mu.values)


def test_integers_float64_holds_exactly_are_accepted():
    X = np.array([[2**60, 1], [2**60 + 2**8, 3], [2**61, 6]], dtype=np.int64)  # multiples of the spacing
    from gmmflow.inputs.matrix import as_data_matrix

    np.testing.assert_array_equal(as_data_matrix(X).values, X.astype(np.float64))
    assert as_data_matrix(X).values[1, 0] == 2**60 + 2**8


def test_a_masked_array_with_nothing_masked_is_the_plain_array():
    values = IRIS.to_numpy()
    masked = np.ma.masked_array(values, mask=np.zeros(values.shape, bool))
    np.testing.assert_array_equal(gmmflow.predict(IRIS_FIT, masked), gmmflow.predict(IRIS_FIT, values))


# ---------------------------------------------------------------- zarr columns
def _store(path, values, **attrs):
    zarr = pytest.importorskip("zarr")
    z = zarr.create_array(str(path), shape=values.shape, dtype=values.dtype, chunks=(50, values.shape[1]))
    z[...] = values
    z.attrs.update(attrs)
    return path


def test_zarr_columns_are_named_by_their_attribute_and_selected_by_name(tmp_path):
    store = _store(tmp_path / "iris.zarr", IRIS.to_numpy(), feature_names=list(IRIS.columns))
    out = tmp_path / "fit.nc"
    assert main(["--quiet", "em", "--data", str(store), "--columns", "petal_width,sepal_length", "--k", "2",
                 "--seed", "0", "--n-init", "2", "--out", str(out)]) == 0
    fit = gmmflow.load(out)
    direct = gmmflow.fit_em(gmmflow.GMM(2), IRIS[["petal_width", "sepal_length"]], seed=0, n_init=2)
    assert list(fit.em_estimate.feature.values) == ["petal_width", "sepal_length"]
    np.testing.assert_allclose(fit.em_estimate.mu.values, direct.em_estimate.mu.values, rtol=1e-10)
    assert DataFingerprint.from_json(fit.attrs["data_fingerprint"]).named


def test_unnamed_zarr_columns_are_x0_x1_and_sample_reads_the_store_into_memory(tmp_path):
    store = _store(tmp_path / "plain.zarr", IRIS.to_numpy())
    chunked = load_data(str(store), ["x3", "x0"], in_memory=False)
    in_memory = load_data(str(store), ["x3", "x0"], in_memory=True)
    assert list(in_memory.feature.values) == ["x3", "x0"] and isinstance(in_memory.data, np.ndarray)
    np.testing.assert_array_equal(in_memory.values, IRIS.to_numpy()[:, [3, 0]])
    np.testing.assert_array_equal(chunked.data.compute(), in_memory.values)
    unnamed = load_data(str(store), None, in_memory=True)
    assert "feature" not in unnamed.coords  # no names to match: positional, x0, x1, ...
    fit = gmmflow.fit_em(gmmflow.GMM(2), in_memory, n_init=1, seed=0)  # the selection names the columns
    assert list(fit.em_estimate.feature.values) == ["x3", "x0"]


# ---------------------------------------------------------------- tiny data and the default prior
@pytest.mark.parametrize("K", [1, 2])
def test_no_more_rows_than_features_fits_with_the_ridged_default_scale(K):
    """Two rows in 2-D: cov(data) is singular though its Cholesky factor exists by round-off, so the ridge
    of the default scale was skipped and EM failed after starting, telling the user to "use the default
    prior" (in use). The scale is now cov(data) + 1e-6 x mean variance (priors.DEFAULT_SCALE_RIDGE), / K."""
    X = np.array([[1.0, 2.0], [2.0, 3.0]])
    fit = gmmflow.fit_em(gmmflow.GMM(K), X, seed=0, n_init=2)
    hyper = json.loads(fit.attrs["hyperparameters"])
    cov = np.cov(X.T)
    expected = (cov + 1e-6 * np.mean(np.diag(cov)) * np.eye(2)) / K  # K^(2/d) with d = 2
    np.testing.assert_allclose(hyper["scale"], expected, rtol=1e-12)
    assert np.isfinite(float(fit.em_estimate.objective))


def test_a_grid_where_every_fit_failed_summarises_the_errors():
    from gmmflow.workflows.model_selection import SelectionTable, mark_best

    table = SelectionTable(mark_best(pd.DataFrame({
        "covariance_type": ["full"] * 5, "k": range(1, 6), "status": ["failed"] * 5,
        "error": [f"ValueError: bad {k}" for k in range(1, 6)]})))
    with pytest.raises(RuntimeError, match=re.escape(
            "no K could be chosen by bic: every fit failed (K=1: ValueError: bad 1; K=2: ValueError: bad 2; "
            "K=3: ValueError: bad 3; ... and 2 more).")):
        table.chosen("bic")

"""save / load: netCDF round trip, atomic writes, clear errors for foreign files."""

import os
import re

import arviz as az
import h5netcdf
import numpy as np
import pytest
import xarray as xr

import gmmflow
from conftest import fake_posterior, mixture_data
from gmmflow.results import files as io
from gmmflow.results import placement


@pytest.fixture(scope="module")
def fitted():
    return gmmflow.fit_em(gmmflow.GMM(2), gmmflow.load_dataset("faithful"), n_init=2, seed=0)


def test_round_trip_is_identical(fitted, tmp_path):
    path = gmmflow.save(fitted, tmp_path / "r.nc")
    back = gmmflow.load(path)
    assert set(back.groups()) == set(fitted.groups())
    for g in fitted.groups():
        xr.testing.assert_identical(fitted[g], back[g])
    assert back.attrs == fitted.attrs
    assert back.em_estimate.converged.dtype == bool
    # arviz reads the same file
    assert set(az.from_netcdf(path).groups()) == set(fitted.groups())


def test_refuses_to_overwrite_and_keeps_the_file(fitted, tmp_path):
    path = tmp_path / "r.nc"
    gmmflow.save(fitted, path)
    before = path.read_bytes()
    with pytest.raises(FileExistsError, match=re.escape("already exists; pass overwrite=True")):
        gmmflow.save(fitted, path)
    assert path.read_bytes() == before


def test_save_over_the_file_it_was_loaded_from(fitted, tmp_path):
    path = gmmflow.save(fitted, tmp_path / "r.nc")
    back = gmmflow.load(path)
    gmmflow.save(back, path, overwrite=True)
    xr.testing.assert_identical(gmmflow.load(path).em_estimate, fitted.em_estimate)


def test_interrupted_write_leaves_previous_file_and_no_partial(fitted, tmp_path, monkeypatch):
    path = gmmflow.save(fitted, tmp_path / "r.nc")
    before = path.read_bytes()
    real_write = os.write

    def interrupted(fd, data):
        real_write(fd, bytes(data)[:100])
        raise KeyboardInterrupt

    monkeypatch.setattr(placement.os, "write", interrupted)
    with pytest.raises(KeyboardInterrupt):
        gmmflow.save(fitted, path, overwrite=True)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.nc"]


def test_large_arrays_are_compressed_small_ones_not_and_arviz_reads_both(fitted, tmp_path):
    """zlib (level files.COMPRESSION_LEVEL, after the shuffle filter) on arrays of 16 KiB and more; the
    uncompressed build (level 0) of the same result is the reference for the sizes."""
    run = fake_posterior(mixture_data(seed=0, n_per=100, K=2), 2, chains=2, draws=100)  # 200 x 200 log-lik
    for idata, name in ((fitted, "em.nc"), (run, "run.nc")):
        path = gmmflow.save(idata, tmp_path / name)
        assert path.stat().st_size <= io.netcdf_bytes(idata, level=0).nbytes, name
        xr.testing.assert_identical(az.from_netcdf(path).em_estimate, idata.em_estimate)
    assert (tmp_path / "run.nc").stat().st_size < 0.95 * io.netcdf_bytes(run, level=0).nbytes
    with h5netcdf.File(tmp_path / "run.nc", "r") as f:
        loglik = f["log_likelihood"].variables["x"]
        assert (loglik.compression, loglik.compression_opts, loglik.shuffle) == ("gzip", io.COMPRESSION_LEVEL, True)
        assert f["em_estimate"].variables["responsibilities"].compression is None  # 200 x 2: too small to gain


def test_truncated_and_foreign_files(fitted, tmp_path):
    path = gmmflow.save(fitted, tmp_path / "r.nc")
    data = path.read_bytes()
    (tmp_path / "cut.nc").write_bytes(data[: len(data) // 2])
    with pytest.raises(gmmflow.NotAGmmflowFileError, match="is not a readable netCDF4/HDF5 file"):
        gmmflow.load(tmp_path / "cut.nc")
    (tmp_path / "text.nc").write_text("hello")
    with pytest.raises(gmmflow.NotAGmmflowFileError, match="is not a readable netCDF4/HDF5 file"):
        gmmflow.load(tmp_path / "text.nc")
    xr.Dataset({"a": ("x", np.arange(3))}).to_netcdf(tmp_path / "foreign.nc", engine="h5netcdf")
    with pytest.raises(gmmflow.NotAGmmflowFileError, match="not a gmmflow result"):
        gmmflow.load(tmp_path / "foreign.nc")
    with pytest.raises(FileNotFoundError, match="No such result file"):
        gmmflow.load(tmp_path / "missing.nc")


def test_save_checks_destination(fitted, tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist; create it first"):
        gmmflow.save(fitted, tmp_path / "nope" / "r.nc")
    with pytest.raises(TypeError, match="needs an arviz.InferenceData"):
        gmmflow.save({"a": 1}, tmp_path / "r.nc")


def test_root_attrs_are_netcdf_types(fitted):
    for key, value in fitted.attrs.items():
        assert isinstance(value, (str, int, float)), key
    assert gmmflow.GMM.from_json(fitted.attrs["model"]) == gmmflow.GMM(2)

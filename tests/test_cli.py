"""The CLI, called through main(argv)."""

import pytest

import gmmflow
from gmmflow.cli import main


def test_em_writes_result_and_prints_summary(tmp_path, capsys):
    out = tmp_path / "fit.nc"
    code = main(["em", "--data", "faithful", "--k", "2", "--n-init", "2", "--seed", "0", "--out", str(out)])
    assert code == 0
    text = capsys.readouterr().out
    assert "converged: True" in text and "objective" in text and f"wrote {out}" in text
    idata = gmmflow.load(out)
    assert idata.attrs["seed"] == 0 and int(idata.em_estimate.sizes["component"]) == 2


def test_em_from_csv_with_columns_and_no_prior(tmp_path):
    csv = tmp_path / "d.csv"
    gmmflow.load_dataset("faithful").to_pandas().to_csv(csv, index=False)
    out = tmp_path / "fit.nc"
    assert main(["--quiet", "em", "--data", str(csv), "--columns", "waiting", "--k", "2",
                 "--no-prior", "--covariance", "spherical", "--seed", "1", "--out", str(out)]) == 0
    idata = gmmflow.load(out)
    assert list(idata.em_estimate.feature.values) == ["waiting"]
    assert gmmflow.GMM.from_json(idata.attrs["model"]).prior is None


BAD = [
    (["em", "--data", "nope.csv", "--k", "2", "--out", "{o}"], "is neither a bundled dataset"),
    (["em", "--data", "unknown_name", "--k", "2", "--out", "{o}"], "faithful, galaxies, geyser, iris"),
    (["em", "--data", "{csv}", "--k", "2", "--out", "{o}"], "column 'b' is not numeric"),
    (["em", "--data", "faithful", "--k", "0", "--out", "{o}"], "must be >= 1, got 0"),
    (["em", "--data", "faithful", "--k", "2", "--out", "{existing}"], "already exists; pass --overwrite"),
    (["em", "--data", "faithful", "--k", "2", "--out", "{missing_dir}"], "does not exist; create it first"),
]


@pytest.mark.parametrize("argv,message", BAD, ids=[b[1][:25] for b in BAD])
def test_bad_input_exits_nonzero_with_one_line(tmp_path, capsys, argv, message):
    (tmp_path / "bad.csv").write_text("a,b\n1,x\n2,y\n")
    (tmp_path / "existing.nc").write_text("keep me")
    fill = {"o": str(tmp_path / "o.nc"), "csv": str(tmp_path / "bad.csv"),
            "existing": str(tmp_path / "existing.nc"), "missing_dir": str(tmp_path / "no" / "o.nc")}
    code = main([a.format(**fill) for a in argv])
    err = capsys.readouterr().err.strip()
    assert code != 0
    assert message in err
    assert len(err.splitlines()) == 1, err
    assert not (tmp_path / "o.nc").exists()
    assert (tmp_path / "existing.nc").read_text() == "keep me"


def test_version_and_help(capsys):
    assert main(["--version"]) == 0
    assert gmmflow.__version__ in capsys.readouterr().out
    assert main(["em", "--help"]) == 0
    assert "examples:" in capsys.readouterr().out


def test_sample_rejects_bad_input_before_work(tmp_path, capsys):
    (tmp_path / "existing.nc").write_text("keep me")
    code = main(["sample", "--data", "faithful", "--k", "2", "--out", str(tmp_path / "existing.nc")])
    assert code == 2
    assert "already exists; pass --overwrite" in capsys.readouterr().err
    assert (tmp_path / "existing.nc").read_text() == "keep me"
    assert main(["sample", "--data", "faithful", "--k", "2", "--sampler", "stan", "--out", "x.nc"]) == 2
    assert "invalid choice: 'stan'" in capsys.readouterr().err
    assert main(["sample", "--data", "faithful", "--k", "2", "--init", "best", "--out", "x.nc"]) == 2
    assert "invalid choice: 'best'" in capsys.readouterr().err
    out = tmp_path / "o.nc"
    assert main(["sample", "--data", "faithful", "--k", "2", "--init", "restarts", "--sampler", "gibbs",
                 "--out", str(out)]) != 0
    assert "init='restarts' needs a sampler that starts each chain at its own point" in capsys.readouterr().err
    assert not out.exists()


@pytest.mark.slow
def test_sample_writes_a_loadable_run(tmp_path, capsys):
    out = tmp_path / "run.nc"
    code = main(["sample", "--data", "faithful", "--k", "2", "--chains", "2", "--draws", "100", "--tune", "100",
                 "--seed", "0", "--out", str(out)])
    assert code == 0
    text = capsys.readouterr().out
    assert "max r_hat" in text and f"wrote {out}" in text
    idata = gmmflow.load(out)
    assert idata.posterior.sizes["chain"] == 2 and idata.attrs["method"] == "nuts"


def test_quiet_before_or_after_the_command(tmp_path, capsys):
    for argv in (["--quiet", "em"], ["em", "--quiet"]):
        out = tmp_path / f"{len(argv[0])}.nc"
        assert main(argv + ["--data", "faithful", "--k", "2", "--seed", "0", "--out", str(out)]) == 0
        assert capsys.readouterr().out == ""
        assert out.exists()

"""write_report, gmmflow report and gmmflow run: complete output or none."""

from html.parser import HTMLParser

import arviz as az
import numpy as np
import pytest

import gmmflow
from gmmflow.results.from_idata import selection_from_idata
from gmmflow.results.to_idata import with_selection
from gmmflow.cli import main
from conftest import mixture_data

POSTERIOR_PNGS = {"em_convergence", "clusters", "density", "trace", "rank", "pair", "forest", "assignments",
                  "ppc"}


class _References(HTMLParser):
    """Every src/href attribute of a page that points outside it."""

    def __init__(self):
        super().__init__()
        self.refs = []

    def handle_starttag(self, tag, attrs):  # links within the page (#verdict) are not references
        self.refs += [value for name, value in attrs if name in ("src", "href") and not value.startswith("#")]


def references(page) -> list[str]:
    parser = _References()
    parser.feed(page.read_text())
    return parser.refs


def test_report_of_a_posterior_embeds_every_plot(posteriors, tmp_path):
    page = gmmflow.write_report(posteriors[2], tmp_path / "rep")
    assert page == tmp_path / "rep" / "report.html"
    assert {p.stem for p in (tmp_path / "rep").glob("*.png")} == POSTERIOR_PNGS
    refs = references(page)
    assert len(refs) == len(POSTERIOR_PNGS) and all(r.startswith("data:image/png;base64,") for r in refs)
    text = page.read_text()
    for heading in ("Verdict", "Sampling diagnostics", "EM MAP against the posterior", "Assignments",
                    "Predictive fit", "Model specification", "Resolved prior", "Versions"):
        assert heading in text


def test_report_of_an_em_result_from_file(tmp_path):
    em = gmmflow.fit_em(gmmflow.GMM(2), mixture_data(n_per=30, K=2), seed=0)
    gmmflow.save(em, tmp_path / "em.nc")
    gmmflow.write_report(tmp_path / "em.nc", tmp_path / "rep")
    assert {p.stem for p in (tmp_path / "rep").glob("*.png")} == {"em_convergence", "clusters", "density"}
    assert "Sampling diagnostics" not in (tmp_path / "rep" / "report.html").read_text()


def test_report_refuses_existing_directory_and_keeps_it(posteriors, tmp_path):
    out = tmp_path / "rep"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    with pytest.raises(gmmflow.UnsafeOutputError, match="exists and is not a gmmflow output directory"):
        gmmflow.write_report(posteriors[2], out, overwrite=True)  # a directory gmmflow did not write
    assert [p.name for p in out.iterdir()] == ["keep.txt"]


def test_report_failure_leaves_no_directory(posteriors, tmp_path, monkeypatch):
    def boom(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr("gmmflow.report.page.html_report", boom)
    with pytest.raises(KeyboardInterrupt):
        gmmflow.write_report(posteriors[2], tmp_path / "deep" / "rep")
    assert list(tmp_path.iterdir()) == []  # neither rep, nor its parent, nor a temporary directory


def test_selection_table_round_trips_through_the_file(posteriors, tmp_path):
    table = gmmflow.select_components(posteriors[2].observed_data.x.values, ks=[1, 2], seed=0, n_init=2)
    idata = with_selection(posteriors[2], table)
    gmmflow.save(idata, tmp_path / "r.nc")
    back = selection_from_idata(gmmflow.load(tmp_path / "r.nc"))
    assert back[["k", "bic", "icl"]].equals(table[["k", "bic", "icl"]])
    assert back["best_bic"].dtype == bool and back["best_bic"].tolist() == table["best_bic"].tolist()


# ---------------------------------------------------------------- CLI
def test_cli_report(posteriors, tmp_path, capsys):
    gmmflow.save(posteriors[1], tmp_path / "r.nc")
    assert main(["report", str(tmp_path / "r.nc"), "--out", str(tmp_path / "rep")]) == 0
    assert f"wrote {tmp_path / 'rep' / 'report.html'}" in capsys.readouterr().out
    assert len(list((tmp_path / "rep").glob("*.png"))) == len(POSTERIOR_PNGS)


def test_help_of_every_command_has_examples(capsys):
    for command in ("em", "sample", "run", "report"):
        assert main([command, "--help"]) == 0
        assert "examples:" in capsys.readouterr().out
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"gmmflow {gmmflow.__version__}"


def test_run_interrupted_leaves_no_output(tmp_path, monkeypatch, capsys):
    def interrupt(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr("gmmflow.main_job.sample_posterior", interrupt)
    assert main(["run", "--data", "blobs", "--out", str(tmp_path / "results" / "blobs")]) == 130
    assert "interrupted" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
def test_run_end_to_end(tmp_path, capsys):
    out = tmp_path / "results" / "galaxies"
    argv = ["run", "--data", "galaxies", "--k", "2:3", "--draws", "200", "--tune", "300", "--chains", "2",
            "--seed", "0", "--n-init", "3", "--out", str(out)]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "chosen by bic: K = " in printed
    idata = az.from_netcdf(out / "run.nc")
    assert {"posterior", "log_likelihood", "posterior_predictive", "em_estimate", "model_selection"} <= set(
        idata.groups())
    assert {p.stem for p in out.glob("*.png")} == POSTERIOR_PNGS | {"selection"}
    refs = references(out / "report.html")
    assert refs and all(r.startswith("data:image/png;base64,") for r in refs)
    assert idata.attrs["selection_criterion"] == "bic"
    assert "is shown, chosen by BIC: it has the lowest BIC" in (out / "report.html").read_text()
    hidden = sorted(p.name for p in tmp_path.rglob("*") if p.name.startswith("."))
    assert hidden == [".gmmflow-output"]  # no temporaries left; only the marker of a directory gmmflow wrote
    # the same seed gives the same result file contents
    out2 = tmp_path / "again"
    assert main(argv[:-1] + [str(out2), "--quiet"]) == 0
    a, b = gmmflow.load(out / "run.nc"), gmmflow.load(out2 / "run.nc")
    assert a.groups() == b.groups()
    for group in a.groups():
        for name in a[group].data_vars:
            x, y = a[group][name].values, b[group][name].values
            assert np.array_equal(x, y, equal_nan=x.dtype.kind == "f"), (group, name)

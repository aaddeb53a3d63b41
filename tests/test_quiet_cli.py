"""The command line's stderr holds gmmflow's own lines only: errors, and warnings as one line each.

Third-party noise (ArviZ's refactor notice, PyMC's and PyTensor's logs, ArviZ's
Pareto-k and plotting warnings, progress bars off a terminal) is silenced at
its source; ``--debug`` shows everything.
"""

import logging
import os
import re
import subprocess
import sys
import warnings
from pathlib import Path

import matplotlib
import pytest

import gmmflow
from conftest import fake_nuts
from gmmflow import console
from gmmflow.cli import main

TESTS = Path(__file__).resolve().parent
OWN_LINE = re.compile(r"(warning: [A-Za-z]+: \S.*|gmmflow( [a-z]+)?: \S.*)")


def quiet_env(tmp_path) -> dict:
    """A fresh cache directory, so ArviZ's once-a-day notice would show if it were not silenced."""
    return dict(os.environ, XDG_CACHE_HOME=str(tmp_path / "cache"), MPLCONFIGDIR=matplotlib.get_configdir())


def foreign_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if not OWN_LINE.fullmatch(line)]


def test_every_command_prints_only_gmmflow_lines(tmp_path):
    """em, sample, run with a K range (LOO, plots, report), report and clean in one process (NUTS replaced
    by seeded draws: the real sampler is in the slow test below)."""
    commands = [
        ["em", "--data", "faithful", "--k", "2", "--n-init", "1", "--seed", "0", "--out", "fit.nc"],
        ["sample", "--data", "galaxies", "--k", "3", "--chains", "2", "--draws", "100", "--tune", "10", "--seed", "0",
         "--sampler", "nutpie", "--out", "post.nc"],
        ["run", "--data", "galaxies", "--k", "1:2", "--draws", "250", "--tune", "10", "--n-init", "1", "--seed", "0",
         "--sampler", "nutpie", "--out", "run"],
        ["report", "post.nc", "--out", "rep"],
        ["clean", "."],
    ]
    argv = [a for command in commands for a in ["--and", *command]][1:]
    done = subprocess.run([sys.executable, str(TESTS / "fake_nuts_cli.py"), *argv], cwd=tmp_path,
                          env=quiet_env(tmp_path), capture_output=True, text=True, timeout=3000)
    assert done.returncode == 0, done.stderr[-3000:]
    assert foreign_lines(done.stderr) == [], done.stderr
    # two chains: gmmflow's own warning, on one line
    assert "warning: sampling: chains = 2 (threshold 4.0): fewer than 4 chains: r_hat is unreliable." in done.stderr
    assert {"fit.nc", "post.nc", "run", "rep"} <= set(os.listdir(tmp_path))


def test_session_prints_own_warnings_as_one_line_and_drops_the_rest(capsys):
    levels = {name: logging.getLogger(name).level for name in console.NOISY_LOGGERS}
    with console.session(report=True):
        warnings.warn("a library's\nmulti-line notice", FutureWarning)
        warnings.warn("max r_hat = 1.31 (threshold 1.01):\n chains disagree", gmmflow.SamplingWarning)
        warnings.warn("EM did not converge", gmmflow.ConvergenceWarning)
        assert not logging.getLogger("pytensor.graph.rewriting.basic").isEnabledFor(logging.CRITICAL)
        assert not logging.getLogger("pymc").isEnabledFor(logging.CRITICAL)
    assert capsys.readouterr().err == (
        'warning: sampling: max r_hat = 1.31 (threshold 1.01): chains disagree -- see report section "Sampling"\n'
        'warning: EM: EM did not converge -- see report section "EM"\n')
    assert {name: logging.getLogger(name).level for name in console.NOISY_LOGGERS} == levels


def test_debug_shows_raw_warnings_and_tracebacks(tmp_path, monkeypatch):
    monkeypatch.setattr("gmmflow.workflows.nuts_backends.run_nutpie", fake_nuts)
    argv = ["sample", "--data", "faithful", "--k", "2", "--chains", "2", "--draws", "100", "--tune", "10",
            "--seed", "0", "--sampler", "nutpie", "--out", str(tmp_path / "p.nc")]
    with warnings.catch_warnings(record=True) as caught:  # left to Python's warning machinery
        warnings.simplefilter("always")
        assert main(["--debug", *argv]) == 0
    assert any(w.category is gmmflow.SamplingWarning and "chains = 2" in str(w.message) for w in caught)
    with pytest.raises(FileExistsError):  # the exception itself, for its traceback
        main(["--debug", *argv])


def test_progress_bars_only_on_a_terminal(monkeypatch, tmp_path, capsys):
    seen = []

    def record(*args, progressbar, **kwargs):  # what sample_posterior is asked for; no work
        seen.append(progressbar)
        raise RuntimeError("recorded")

    monkeypatch.setattr("gmmflow.workflows.posterior_sampling.sample_posterior", record)
    argv = ["sample", "--data", "faithful", "--k", "2", "--out", str(tmp_path / "p.nc")]
    monkeypatch.setattr(sys.stderr, "isatty", lambda: False, raising=False)
    assert main(argv) == 2
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True, raising=False)
    assert main(argv) == 2
    assert main(["--quiet", *argv]) == 2
    assert seen == [False, True, False]
    assert capsys.readouterr().err == "gmmflow sample: error: recorded\n" * 3


@pytest.mark.slow
def test_a_real_sample_on_one_dimensional_data_with_ties_is_quiet(tmp_path):
    """The real NUTS (nutpie) on galaxies with duplicated rows, K = 1: PyTensor printed 57 lines of
    'BUG IN FGRAPH.REPLACE OR A LISTENER' compiling this model before gmmflow's covariance transform
    stopped feeding it the reshape that trips its rewrite."""
    data = gmmflow.load_dataset("galaxies").to_pandas()
    data = data.iloc[list(range(len(data))) + list(range(20))]
    data.to_csv(tmp_path / "ties.csv", index=False)
    done = subprocess.run([sys.executable, "-m", "gmmflow.cli", "sample", "--data", "ties.csv", "--k", "1",
                           "--chains", "2", "--draws", "200", "--tune", "200", "--seed", "0", "--out", "t.nc"],
                          cwd=tmp_path, env=quiet_env(tmp_path), capture_output=True, text=True, timeout=3000)
    assert done.returncode == 0, done.stderr[-3000:]
    assert foreign_lines(done.stderr) == [], done.stderr
    assert "warning: sampling: chains = 2" in done.stderr

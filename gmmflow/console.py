"""What the command line prints on stderr, and how it stops on a signal.

:func:`session` wraps one command of :func:`gmmflow.cli.main`:

- gmmflow's own warnings (its warning classes, or raised from gmmflow's code)
  print as one line each, ``warning: <topic>: <message>``, with where to
  look in the report when the command writes one; warnings of other
  packages are dropped;
- the loggers of the libraries underneath (PyMC, PyTensor, numba, nutpie,
  ArviZ, matplotlib, dask) are silenced: PyMC announces every sampling step
  and PyTensor logs the traceback of a graph rewrite it skipped (on 1-D data
  with ties; the model it compiles is still correct);
- SIGTERM and SIGINT raise :class:`Stopped` in the main thread, so every
  temporary file or directory is removed on the way out (``with`` blocks and
  ``except BaseException`` clean-ups run) and the command exits 143 or 130.
  Not ``KeyboardInterrupt``: nutpie and PyMC catch that and return the draws
  so far, and the run would go on with them.

``--debug`` keeps the raw warnings (with source lines) and the library logs.
Everything is restored when the session ends.
"""

from __future__ import annotations

import logging
import signal
import sys
import threading
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from gmmflow.exceptions import ConvergenceWarning, OutputWarning, SamplingWarning

PACKAGE_DIR = Path(__file__).resolve().parent
NOISY_LOGGERS = ("pymc", "pytensor", "numba", "nutpie", "arviz", "matplotlib", "distributed", "h5py")
TOPICS = {SamplingWarning: "sampling", ConvergenceWarning: "EM", OutputWarning: "files"}
REPORT_SECTIONS = {SamplingWarning: "Sampling", ConvergenceWarning: "EM"}


class Stopped(BaseException):
    """A signal asked the command to stop; ``exit_code`` is 128 + the signal number."""

    def __init__(self, signum: int):
        self.signum = signum
        self.exit_code = 128 + signum
        self.message = "gmmflow: terminated" if signum == signal.SIGTERM else "gmmflow: interrupted"
        super().__init__(self.message)


def is_own(category: type, filename: str) -> bool:
    """A gmmflow warning: one of its classes, or raised from a file in the gmmflow package."""
    if issubclass(category, tuple(TOPICS)):
        return True
    try:
        return Path(filename).resolve().is_relative_to(PACKAGE_DIR)
    except (OSError, ValueError):
        return False


def one_line(message, category: type, report: bool) -> str:
    """``warning: <topic>: <message>`` on one line, plus the report section when there is a report."""
    topic = next((name for cls, name in TOPICS.items() if issubclass(category, cls)), "gmmflow")
    text = " ".join(str(message).split())
    section = next((name for cls, name in REPORT_SECTIONS.items() if issubclass(category, cls)), None)
    hint = f' -- see report section "{section}"' if report and section else ""
    return f"warning: {topic}: {text}{hint}"


def _show(report: bool):
    def showwarning(message, category, filename, lineno, file=None, line=None):
        if is_own(category, filename):
            print(one_line(message, category, report), file=sys.stderr if file is None else file)

    return showwarning


@contextmanager
def _quiet_loggers() -> Iterator[None]:
    names = [n for n in list(logging.Logger.manager.loggerDict)
             if n.split(".")[0] in NOISY_LOGGERS] + list(NOISY_LOGGERS)
    loggers = {name: logging.getLogger(name) for name in dict.fromkeys(names)}
    saved = {name: lg.level for name, lg in loggers.items()}
    for lg in loggers.values():
        lg.setLevel(logging.CRITICAL + 1)
    try:
        yield
    finally:
        for name, level in saved.items():
            loggers[name].setLevel(level)


def _raise_stopped(signum, frame):
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # a second signal must not interrupt the clean-up
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    raise Stopped(signum)


@contextmanager
def _signals_stop() -> Iterator[None]:
    if threading.current_thread() is not threading.main_thread():  # only the main thread may set handlers
        yield
        return
    saved = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}
    for sig in saved:
        signal.signal(sig, _raise_stopped)
    try:
        yield
    finally:
        for sig, handler in saved.items():
            signal.signal(sig, handler)


@contextmanager
def session(debug: bool = False, report: bool = False) -> Iterator[None]:
    """Run one command with gmmflow's stderr policy (see the module docstring).

    ``report``: the command writes a report, so warnings name its section.
    """
    with _signals_stop(), warnings.catch_warnings():
        if debug:
            yield
            return
        warnings.simplefilter("default")  # every distinct gmmflow warning once
        warnings.showwarning = _show(report)
        with _quiet_loggers():
            yield

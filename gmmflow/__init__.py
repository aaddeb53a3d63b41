"""gmmflow: Gaussian mixture models three ways on one PyMC model.

EM (MAP or MLE), NUTS posterior sampling with label switching handled, and a
comparison layer, every result an ArviZ ``InferenceData``. ``gmmflow.plots``
(matplotlib) and ``gmmflow.pymc`` (the model as PyMC building blocks) are
imported on first use.
"""

import logging as _logging
import warnings as _warnings
from importlib import import_module


def _import_arviz_quietly() -> None:
    """Import ArviZ without its once-a-day notice of the 1.0 refactor (gmmflow pins arviz<1), and
    matplotlib, which it imports, without the log line about building its font cache on the first
    import on a machine: neither is actionable for gmmflow's users. No filter stays installed."""
    font_log = _logging.getLogger("matplotlib.font_manager")
    level = font_log.level
    font_log.setLevel(_logging.ERROR)
    try:
        with _warnings.catch_warnings():
            _warnings.filterwarnings("ignore", message=r"\s*ArviZ is undergoing a major refactor",
                                     category=FutureWarning)
            import arviz  # noqa: F401
    finally:
        font_log.setLevel(level)


_import_arviz_quietly()

from gmmflow._version import __version__  # noqa: E402
from gmmflow.core.hyperparameters import Hyperparameters
from gmmflow.exceptions import (
    AmbiguousLabellingWarning,
    ConvergenceWarning,
    NotAGmmflowFileError,
    NotPositiveDefiniteError,
    OutOfSpaceError,
    OutputWarning,
    SamplingError,
    SamplingWarning,
    UnsafeOutputError,
)
from gmmflow.inputs.csv_reader import read_csv
from gmmflow.inputs.datasets import list_datasets, load_dataset
from gmmflow.main_job import run
from gmmflow.models.priors import Prior
from gmmflow.models.spec import GMM
from gmmflow.report.page import write_report
from gmmflow.results.files import load, save
from gmmflow.workflows.bootstrap import bootstrap
from gmmflow.workflows.calibration import calibrate
from gmmflow.workflows.compare import compare, compare_parameters
from gmmflow.workflows.criteria import aic, bic, icl
from gmmflow.workflows.diagnostics import diagnose
from gmmflow.workflows.em_fit import fit_em
from gmmflow.workflows.modes import find_modes, stack_chains
from gmmflow.workflows.model_selection import SelectionTable, select_components
from gmmflow.workflows.posterior_sampling import sample_posterior
from gmmflow.workflows.prediction import predict, predict_proba, sample_em, score_samples
from gmmflow.workflows.sampler_options import SamplerOptions
from gmmflow.workflows.simulation import simulate

_LAZY_MODULES = ("plots", "pymc")


def __getattr__(name: str):
    if name in _LAZY_MODULES:
        module = import_module(f"gmmflow.{name}")
        globals()[name] = module
        return module
    raise AttributeError(f"module 'gmmflow' has no attribute {name!r}")


__all__ = [
    "GMM",
    "AmbiguousLabellingWarning",
    "ConvergenceWarning",
    "Hyperparameters",
    "NotAGmmflowFileError",
    "NotPositiveDefiniteError",
    "OutOfSpaceError",
    "OutputWarning",
    "Prior",
    "SamplerOptions",
    "SamplingError",
    "SamplingWarning",
    "SelectionTable",
    "UnsafeOutputError",
    "__version__",
    "aic",
    "bic",
    "bootstrap",
    "calibrate",
    "compare",
    "compare_parameters",
    "diagnose",
    "find_modes",
    "fit_em",
    "icl",
    "list_datasets",
    "load",
    "load_dataset",
    "plots",
    "predict",
    "pymc",
    "predict_proba",
    "read_csv",
    "run",
    "sample_em",
    "sample_posterior",
    "save",
    "score_samples",
    "select_components",
    "simulate",
    "stack_chains",
    "write_report",
]

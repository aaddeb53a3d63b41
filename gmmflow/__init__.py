"""gmmflow: Gaussian mixture models three ways on one PyMC model.

EM (MAP or MLE), NUTS posterior sampling with label switching handled, and a
comparison layer, every result an ArviZ ``InferenceData``.
"""

from gmmflow._version import __version__
from gmmflow.datasets import list_datasets, load_dataset, read_csv
from gmmflow.exceptions import (
    ConvergenceWarning,
    NotAGmmflowFileError,
    NotPositiveDefiniteError,
    SamplingError,
    SamplingWarning,
)
from gmmflow.io import load, save
from gmmflow.models.priors import Hyperparameters, Prior
from gmmflow.models.spec import GMM
from gmmflow.workflows.mcmc import diagnose, sample_posterior
from gmmflow.workflows.compare import compare
from gmmflow.workflows.report import write_report
from gmmflow.workflows.run import run
from gmmflow.workflows.select import select_components
from gmmflow.workflows.simulate import simulate
from gmmflow.workflows.em import (
    aic,
    bic,
    fit_em,
    icl,
    predict,
    predict_proba,
    sample_em,
    score_samples,
)

__all__ = [
    "GMM",
    "ConvergenceWarning",
    "Hyperparameters",
    "NotAGmmflowFileError",
    "NotPositiveDefiniteError",
    "Prior",
    "SamplingError",
    "SamplingWarning",
    "__version__",
    "aic",
    "bic",
    "compare",
    "diagnose",
    "fit_em",
    "icl",
    "list_datasets",
    "load",
    "load_dataset",
    "predict",
    "predict_proba",
    "read_csv",
    "run",
    "sample_em",
    "sample_posterior",
    "save",
    "score_samples",
    "select_components",
    "simulate",
    "write_report",
]

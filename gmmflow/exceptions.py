"""Warnings and errors gmmflow raises (re-exported at the top level)."""

from gmmflow.core.gaussian import NotPositiveDefiniteError
from gmmflow.io import NotAGmmflowFileError


class ConvergenceWarning(UserWarning):
    """EM stopped at ``max_iter`` before the objective settled (``converged=False``)."""


class SamplingWarning(UserWarning):
    """A posterior sampling diagnostic is outside its recommended range."""


__all__ = ["ConvergenceWarning", "NotAGmmflowFileError", "NotPositiveDefiniteError", "SamplingWarning"]

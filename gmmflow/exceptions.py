"""Warnings and errors gmmflow raises (re-exported at the top level)."""

from gmmflow.core.gaussian import NotPositiveDefiniteError
from gmmflow.io import NotAGmmflowFileError


class ConvergenceWarning(UserWarning):
    """EM stopped at ``max_iter`` before the objective settled (``converged=False``)."""


class SamplingWarning(UserWarning):
    """A posterior sampling diagnostic is outside its recommended range."""


class SamplingError(RuntimeError):
    """NUTS could not run (e.g. it failed to initialise).

    ``partial`` holds what was computed before the failure: the EM result
    the chains were to start from, with ``attrs["sampling_status"]``
    saying ``"failed: ..."``. It can be saved like any result.
    """

    def __init__(self, message: str, partial=None):
        super().__init__(message)
        self.partial = partial


__all__ = ["ConvergenceWarning", "NotAGmmflowFileError", "NotPositiveDefiniteError", "SamplingError",
           "SamplingWarning"]

"""Every exception and warning gmmflow raises: the leaf module any layer may import.

Re-exported at the top level (``gmmflow.SamplingError`` ...).
"""

from __future__ import annotations

from typing import Any


class NotPositiveDefiniteError(ValueError):
    """A covariance matrix (or variance) is not symmetric positive definite."""


class NotAGmmflowFileError(ValueError):
    """The file is not a readable gmmflow result."""


class ConvergenceWarning(UserWarning):
    """EM stopped at ``max_iter`` before the objective settled (``converged=False``)."""


class SamplingWarning(UserWarning):
    """A posterior sampling diagnostic is outside its recommended range."""


class AmbiguousLabellingWarning(UserWarning):
    """Many bootstrap replicates could not be matched to the EM estimate's components
    unambiguously: their intervals mix components (``em_bootstrap.relabel_ambiguous``)."""


class SamplingError(RuntimeError):
    """The posterior sampler could not run (e.g. it failed to initialise).

    ``partial`` holds what was computed before the failure: the EM result
    the chains were to start from, with ``attrs["sampling_status"]``
    saying ``"failed: ..."``. It can be saved like any result.
    """

    def __init__(self, message: str, partial: Any = None):
        super().__init__(message)
        self.partial = partial


__all__ = ["AmbiguousLabellingWarning", "ConvergenceWarning", "NotAGmmflowFileError", "NotPositiveDefiniteError",
           "SamplingError", "SamplingWarning"]

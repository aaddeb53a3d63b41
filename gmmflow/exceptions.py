"""Every exception and warning gmmflow raises: the leaf module any layer may import.

Re-exported at the top level (``gmmflow.SamplingError`` ...).
"""

from __future__ import annotations

from typing import Any


class NotPositiveDefiniteError(ValueError):
    """A covariance matrix (or variance) is not symmetric positive definite."""


class NotAGmmflowFileError(ValueError):
    """The file is not a readable gmmflow result."""


class UnsafeOutputError(ValueError):
    """An output path that would overwrite or remove an input or files gmmflow did not write,
    or that exists and is not a regular file or directory (a FIFO, a device, a socket)."""


class OutOfSpaceError(OSError):
    """The destination has too little free space for an output (checked, or ENOSPC while writing)."""


class OutputWarning(UserWarning):
    """Something about an output destination the user should know: debris of killed runs, a kept copy."""


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
           "OutOfSpaceError", "OutputWarning", "SamplingError", "SamplingWarning", "UnsafeOutputError"]

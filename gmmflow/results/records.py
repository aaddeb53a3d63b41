"""In-memory fit records: what EM and the samplers produce, before InferenceData.

Workflows pass these records between each other (the EM fit a sampler
starts from, the draws the comparison reads); ``results.to_idata`` converts
them to an ``InferenceData`` once, at the public edge, and
``results.from_idata`` reads a saved result back into the numbers a
workflow needs. No workflow parses what it has just built.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from gmmflow.core.em_driver import EMResult
from gmmflow.core.em_steps import Params
from gmmflow.core.hyperparameters import Hyperparameters
from gmmflow.inputs.fingerprint import DataFingerprint
from gmmflow.inputs.matrix import DataMatrix
from gmmflow.models.spec import GMM


@dataclass(eq=False)
class EMFit:
    """One ``fit_em`` call: every restart, the chosen one, and what it was fitted on.

    ``data.values`` is empty (0 rows) when the observations were not kept
    (chunked input above the storage limit); ``n_obs`` is always the number of
    rows. ``fingerprint`` identifies the data and weights fitted (computed
    from ``data`` and ``sample_weight`` when not given).
    """

    model: GMM
    data: DataMatrix
    hyper: Hyperparameters | None
    restarts: list[EMResult]
    best: int
    responsibilities: np.ndarray | None
    seed: int
    n_obs: int
    sample_weight: np.ndarray | None = None
    store_observed: bool = True
    options: dict = field(default_factory=dict)
    fingerprint: DataFingerprint | None = None

    def __post_init__(self):
        if self.fingerprint is None:
            self.fingerprint = DataFingerprint.of_values(self.data.values, self.data.features, self.data.named,
                                                         self.sample_weight)

    @property
    def estimate(self) -> EMResult:
        return self.restarts[self.best]

    @property
    def params(self) -> Params:
        """The EM estimate (best restart) in the data's frame."""
        return self.estimate.params


@dataclass(eq=False)
class PosteriorSample:
    """Relabelled posterior draws with what was computed from them.

    Draw arrays have the chains stacked (S = chains * draws): ``w`` (S, K),
    ``mu`` (S, K, d), ``cov`` (S, K, d, d) full matrices, ``permutation``
    (S, K). The pointwise quantities are computed on the draws numbered
    ``pointwise_draws`` in every chain (all when None; S' = chains times
    their number): ``log_likelihood`` (S', n); ``assignment`` (n, K), the
    Rao-Blackwellised posterior assignment probability; ``predictive``
    (S', n, d) replicate data sets. Each is None when left out.
    ``sample_stats`` is the sampler's own Dataset with dims (chain, draw, ...).
    ``method`` names the algorithm (``"nuts"``, ``"gibbs"``), ``n_obs`` the
    rows sampled on (None: those of the data record), ``attrs`` extra root attrs.
    """

    shape: tuple[int, int]
    w: np.ndarray
    mu: np.ndarray
    cov: np.ndarray
    permutation: np.ndarray
    log_likelihood: np.ndarray | None
    assignment: np.ndarray | None
    sample_stats: Any
    predictive: np.ndarray | None
    sampler: str
    draws: int
    tune: int
    relabelled: bool
    seed: int
    method: str = "nuts"
    pointwise_draws: np.ndarray | None = None
    n_obs: int | None = None
    attrs: dict = field(default_factory=dict)


@dataclass(eq=False)
class BootstrapSample:
    """Bootstrap refits of an EM estimate, relabelled to it.

    Arrays over B replicates: ``w`` (B, K), ``mu`` (B, K, d), ``cov`` (B, K, d, d)
    full matrices, ``permutation`` (B, K) (replicate component given label k),
    ``ambiguous`` (B,), ``objective``, ``log_likelihood``, ``converged``,
    ``n_iter`` (B,); a replicate whose refit ``failed`` (B,) has NaN parameters
    and permutation -1.
    """

    kind: str
    seed: int
    w: np.ndarray
    mu: np.ndarray
    cov: np.ndarray
    permutation: np.ndarray
    ambiguous: np.ndarray
    failed: np.ndarray
    objective: np.ndarray
    log_likelihood: np.ndarray
    converged: np.ndarray
    n_iter: np.ndarray
    ambiguity_ratio: float

    @property
    def ambiguous_share(self) -> float:
        """Share of the successful replicates whose labelling was ambiguous."""
        ok = ~self.failed
        return float(self.ambiguous[ok].mean()) if ok.any() else float("nan")

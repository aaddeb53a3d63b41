"""The model definition: ``GMM(n_components, covariance_type, prior)``.

A ``GMM`` is a frozen, validated description of the generative model of
docs/architecture.md. It holds no data and no fitted values; EM (``gmmflow.fit_em``),
NUTS (``gmmflow.sample_posterior``) and the PyMC model
(``GMM.pymc_model``) all read it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import numpy as np

from gmmflow.core.gaussian import COVARIANCE_TYPES
from gmmflow.core.hyperparameters import Hyperparameters
from gmmflow.models.priors import Prior, resolve_hyperparameters

# sklearn's and mclust's names for the same structure
MCLUST_NAMES = {"full": "VVV", "tied": "EEE", "diag": "VVI", "spherical": "VII"}
# GMM(prior=<name>)
PRIOR_NAMES = {"default": Prior(), "mclust": Prior(defaults="mclust")}


@dataclass(frozen=True)
class GMM:
    """A Gaussian mixture model: the one definition EM and NUTS share.

    Parameters
    ----------
    n_components : int
        Number of mixture components K >= 1.
    covariance_type : {"full", "tied", "diag", "spherical"}, default "full"
        sklearn's names; mclust's VVV, EEE, VVI, VII.
    prior : Prior, "default", "mclust" or None, default "default"
        ``"default"`` is ``Prior()``: the conjugate prior of Fraley & Raftery
        (2007) with data-dependent defaults, which makes EM compute the MAP.
        ``"mclust"`` is ``Prior(defaults="mclust")``: mclust's ``defaultPrior``
        exactly (it differs for ``diag``: one scalar scale for all features
        instead of one per feature; see :class:`Prior`). ``None`` means no prior:
        EM computes the MLE, with ``reg_covar`` added to the covariance diagonal
        as sklearn does (NUTS needs a prior and refuses ``None``).
    reg_covar : float, default 1e-6
        Non-negative regularisation added to the covariance diagonal in the
        MLE M-step. Ignored when a prior is set (the prior regularises).
        As in sklearn, a positive value makes the M-step a floor rather than
        the exact maximiser, so the log-likelihood can dip slightly between
        iterations when a component holds only a few points; ``reg_covar=0``
        (or a prior) keeps EM exactly monotone.
    noise : bool, default False
        Add mclust's noise component: a uniform density ``1/V`` over a region
        of volume ``V`` holding the data, with weight ``w_0``, for outliers and
        background points (:mod:`gmmflow.core.noise`). The model then has K+1
        weights, the noise's last (mclust's convention), under
        ``Dirichlet(alpha 1_{K+1})``; results store the K Gaussian weights as
        ``w`` and ``w_0`` as ``noise_weight``, :func:`~gmmflow.predict` labels
        noise rows ``-1``, BIC counts two more parameters (the noise weight and
        the volume, as mclust's ``nMclustParams(noise=TRUE)``).
    noise_volume : float, optional
        The volume ``V`` of the noise's region (mclust's ``1/Vinv``), > 0.
        Default: mclust's ``hypvol`` of the fitted data, the smaller of the
        volumes of the data's bounding box and of its principal components'
        bounding box. Only with ``noise=True``.

    Examples
    --------
    >>> import gmmflow
    >>> gmmflow.GMM(2)
    GMM(n_components=2, covariance_type='full', prior=Prior(...), reg_covar=1e-06, noise=False, noise_volume=None)
    >>> gmmflow.GMM(3, "diag", prior=None)  # doctest: +SKIP
    >>> gmmflow.GMM(2, noise=True)  # doctest: +SKIP
    """

    n_components: int
    covariance_type: str = "full"
    prior: Prior | None | str = "default"
    reg_covar: float = 1e-6
    noise: bool = False
    noise_volume: float | None = None

    def __post_init__(self):
        k = self.n_components
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)):
            raise TypeError(
                f"n_components must be an integer >= 1, got {type(k).__name__} {k!r}."
            )
        if k < 1:
            raise ValueError(f"n_components must be >= 1, got {k}.")
        object.__setattr__(self, "n_components", int(k))
        if self.covariance_type not in COVARIANCE_TYPES:
            raise ValueError(
                f"covariance_type must be one of {', '.join(map(repr, COVARIANCE_TYPES))}; "
                f"got {self.covariance_type!r}."
            )
        if isinstance(self.prior, str):
            if self.prior not in PRIOR_NAMES:
                raise ValueError(
                    f"prior must be 'default', 'mclust', None or a gmmflow.Prior, got {self.prior!r}."
                )
            object.__setattr__(self, "prior", PRIOR_NAMES[self.prior])
        elif self.prior is not None and not isinstance(self.prior, Prior):
            raise TypeError(
                f"prior must be 'default', 'mclust', None or a gmmflow.Prior, got {type(self.prior).__name__}."
            )
        reg = self.reg_covar
        if isinstance(reg, bool) or not isinstance(reg, (int, float, np.integer, np.floating)) \
                or not np.isfinite(reg) or reg < 0:
            raise ValueError(f"reg_covar must be a finite number >= 0, got {reg!r}.")
        object.__setattr__(self, "reg_covar", float(reg))
        self._check_noise()

    def _check_noise(self) -> None:
        if not isinstance(self.noise, (bool, np.bool_)):
            raise TypeError(f"noise must be True or False, got {type(self.noise).__name__} {self.noise!r}.")
        object.__setattr__(self, "noise", bool(self.noise))
        volume = self.noise_volume
        if volume is None:
            return
        if not self.noise:
            raise ValueError(f"noise_volume={volume!r} is given but noise=False; pass noise=True to add the "
                             "noise component, or drop noise_volume.")
        if isinstance(volume, bool) or not isinstance(volume, (int, float, np.integer, np.floating)) \
                or not np.isfinite(volume) or volume <= 0:
            raise ValueError(f"noise_volume must be a finite number > 0 (the volume of the noise's region; "
                             f"mclust's 1/Vinv), got {volume!r}. Omit it to take the data's hypervolume.")
        object.__setattr__(self, "noise_volume", float(volume))

    # ------------------------------------------------------------------
    @property
    def is_map(self) -> bool:
        """True when EM computes a MAP (a prior is set), False for the MLE."""
        return self.prior is not None

    def n_parameters(self, n_features: int) -> int:
        """Number of free parameters (for BIC/AIC).

        The noise component counts two: its weight and its volume (mclust's
        ``nMclustParams(..., noise = TRUE)``, whether the volume was given or not).
        """
        K, d = self.n_components, int(n_features)
        cov = {
            "full": K * d * (d + 1) // 2,
            "tied": d * (d + 1) // 2,
            "diag": K * d,
            "spherical": K,
        }[self.covariance_type]
        return (K - 1) + K * d + cov + (2 if self.noise else 0)

    def hyperparameters(
        self, data_mean: np.ndarray, data_cov: np.ndarray, n_obs: float | None = None
    ) -> Hyperparameters | None:
        """The prior's concrete hyper-parameters for data with these moments and
        ``n_obs`` rows (see :func:`~gmmflow.models.priors.resolve_hyperparameters`).

        ``None`` when the model has no prior.
        """
        if self.prior is None:
            return None
        return resolve_hyperparameters(
            self.prior, self.covariance_type, self.n_components, data_mean, data_cov, n_obs
        )

    def pymc_model(self, X: Any = None, **options: Any) -> Any:
        """Declare this GMM as a PyMC model; a ``pymc.Model``.

        ``options`` are those of :func:`gmmflow.models.pymc_model.build_pymc_model`
        (keyword-only): ``marginalized``, ``coords``, ``n_obs``,
        ``hyperparameters``, ``missing``, ``noise_log_volume``.
        """
        from gmmflow.models.pymc_model import build_pymc_model  # imports PyMC: on first use only

        return build_pymc_model(self, X, **options)

    # ------------------------------------------------------------------
    def to_dict(self) -> dict:
        return {
            "n_components": self.n_components,
            "covariance_type": self.covariance_type,
            "prior": None if self.prior is None else self.prior.to_dict(),
            "reg_covar": self.reg_covar,
            "noise": self.noise,
            "noise_volume": self.noise_volume,
        }

    def to_json(self) -> str:
        """JSON text of the spec (stored in every result file's attrs)."""
        return json.dumps(self.to_dict())

    @classmethod
    def from_dict(cls, d: dict) -> GMM:
        prior = None if d["prior"] is None else Prior(**d["prior"])
        return cls(d["n_components"], d["covariance_type"], prior, d.get("reg_covar", 1e-6),
                   d.get("noise", False), d.get("noise_volume"))

    @classmethod
    def from_json(cls, text: str) -> GMM:
        return cls.from_dict(json.loads(text))

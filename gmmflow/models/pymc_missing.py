"""The PyMC likelihood of data with missing cells: one ``GaussianMixture`` per missingness pattern.

The observed-data likelihood of EM with ``missing="marginalize"``
(``core/missing_data.py``): a row observing the features ``o`` contributes
``log sum_k w_k N(x_o | mu_{k,o}, Sigma_{k,oo})``. Rows are grouped by pattern
(``core.missing_data.missing_patterns``) and each group is one observed
variable ``x_pattern{j}`` on its observed columns, with dims
``obs_id_pattern{j}`` (the rows' ``obs_id``) and ``feature_pattern{j}`` (the
observed feature names).

The Cholesky factor of ``Sigma_oo`` is the leading block of ``Sigma``'s only
when the missing features come last, so for full and tied covariances it is
computed from the sub-block of ``Sigma = L L^T`` (one small factorisation per
pattern, in the graph); for diag and spherical the factor is diagonal and its
sub-block is the factor. The complete-rows pattern uses ``L`` itself.
"""

from __future__ import annotations

import numpy as np
import pytensor.tensor as pt

from gmmflow.core.missing_data import missing_patterns
from gmmflow.inputs.matrix import DataMatrix
from gmmflow.models.pymc_distributions import GaussianMixture
from gmmflow.schema import FEATURE, OBS

PATTERN = "_pattern"  # x_pattern0, obs_id_pattern0, feature_pattern0, ...


def observed_cholesky(chol, covariance_type: str, observed: np.ndarray):
    """(K, o, o) lower Cholesky factors of ``Sigma_{k,oo}`` from the (K, d, d) factors ``chol``."""
    sub = chol[:, observed][:, :, observed]
    if covariance_type in ("diag", "spherical"):
        return sub
    full = chol @ chol.mT
    return pt.linalg.cholesky(full[:, observed][:, :, observed])


def pattern_likelihood(name: str, w, mu, chol, covariance_type: str, data: DataMatrix, model) -> list:
    """Declare ``data``'s observed-data likelihood in ``model``: one observed mixture per pattern.

    Returns the observed variables, in the patterns' order.
    """
    variables = []
    for j, pattern in enumerate(missing_patterns(~np.isnan(data.values))):
        o = pattern.observed
        obs_dim, feature_dim = f"{OBS}{PATTERN}{j}", f"{FEATURE}{PATTERN}{j}"
        model.add_coord(obs_dim, data.obs_id[pattern.rows])
        model.add_coord(feature_dim, [data.features[i] for i in o])
        L = chol if pattern.missing.size == 0 else observed_cholesky(chol, covariance_type, o)
        variables.append(GaussianMixture(f"{name}{PATTERN}{j}", w, mu[:, o], chol=L,
                                         observed=data.values[np.ix_(pattern.rows, o)],
                                         dims=(obs_dim, feature_dim)))
    return variables

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


def pattern_mixtures(name: str, w, mu, chol, covariance_type: str, n_features: int, observed_columns, values,
                     dims=None) -> list:
    """One observed mixture ``{name}_pattern{j}`` per pattern, on that pattern's observed columns.

    ``observed_columns[j]`` are pattern j's observed feature indices (of
    ``n_features``; a complete pattern uses ``chol`` itself) and
    ``values[j]`` its rows on those columns (an array or a ``pm.Data``
    container); ``dims[j]`` (optional) the variable's dims. Returns the
    observed variables, in the patterns' order.

    The shapes of ``mu`` and ``chol`` are made static (known K and d): JAX,
    which compiles the template, needs the shapes of the per-pattern
    reshapes at trace time.
    """
    K = w.type.shape[-1]
    mu = pt.specify_shape(mu, (K, n_features))
    chol = pt.specify_shape(chol, (K, n_features, n_features))
    variables = []
    for j, (o, observed) in enumerate(zip(observed_columns, values)):
        o = np.asarray(o)
        L = chol if o.size == n_features else observed_cholesky(chol, covariance_type, o)
        variables.append(GaussianMixture(f"{name}{PATTERN}{j}", w, mu[:, o], chol=L, observed=observed,
                                         dims=None if dims is None else dims[j]))
    return variables


def pattern_likelihood(name: str, w, mu, chol, covariance_type: str, data: DataMatrix, model) -> list:
    """Declare ``data``'s observed-data likelihood in ``model``: one observed mixture per pattern,
    with dims ``obs_id_pattern{j}`` and ``feature_pattern{j}``.

    Returns the observed variables, in the patterns' order.
    """
    patterns = missing_patterns(~np.isnan(data.values))
    dims = []
    for j, pattern in enumerate(patterns):
        obs_dim, feature_dim = f"{OBS}{PATTERN}{j}", f"{FEATURE}{PATTERN}{j}"
        model.add_coord(obs_dim, data.obs_id[pattern.rows])
        model.add_coord(feature_dim, [data.features[i] for i in pattern.observed])
        dims.append((obs_dim, feature_dim))
    return pattern_mixtures(name, w, mu, chol, covariance_type, data.shape[1], [p.observed for p in patterns],
                            [data.values[np.ix_(p.rows, p.observed)] for p in patterns], dims)

"""Data given to a fitted mixture, matched to the features it was fitted on.

The rule, the same for every function that applies a fit to data
(``predict``, ``predict_proba``, ``score_samples``, ``bic``/``aic``/``icl``
with ``X``, ``sample_posterior(em=...)``):

- when both the fit and ``X`` carry feature names (DataFrame columns, a
  DataArray ``feature`` coordinate), columns are matched **by name** and
  reordered to the fit's order; a name the fit does not know, or a fitted
  name ``X`` lacks, is an error listing the expected names;
- otherwise (a plain array on either side) columns are taken **by
  position**, and only when the number of columns agrees.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from gmmflow.checks import summarize_values
from gmmflow.inputs.matrix import DataMatrix, as_data_matrix, data_label


def align_to_features(X, features: Sequence[str], named: bool, what: str = "X", *,
                      missing: bool = False) -> DataMatrix:
    """``X`` checked and with its columns in the order of ``features`` (see the module docstring).

    Parameters
    ----------
    X : array_like, DataFrame or DataArray
    features : sequence of str
        The feature names of the fit, in its order.
    named : bool
        Whether those names came from the fitted data (else they are ``x0, x1, ...``).
    missing : bool, default False
        Accept NaN for missing cells (``as_data_matrix(..., missing=True)``).

    Raises
    ------
    ValueError
        Unknown or missing names, or (by position) another number of columns.
    """
    what = data_label(X, what)
    data = as_data_matrix(X, what, missing=missing)
    features = [str(f) for f in features]
    if named and data.named:
        return _by_name(data, features, what)
    if data.shape[1] != len(features):
        raise ValueError(
            f"{what} has {data.shape[1]} feature(s) but the mixture was fitted on {len(features)} "
            f"({', '.join(features) if len(features) <= 8 else summarize_values(features)}). "
            "Pass data with the same columns."
        )
    return data


def _by_name(data: DataMatrix, features: list[str], what: str) -> DataMatrix:
    unknown = [f for f in data.features if f not in features]
    missing = [f for f in features if f not in data.features]
    if unknown or missing:
        problems = [f"lacks {summarize_values(missing)}" if missing else "",
                    f"has {summarize_values(unknown)}, which the mixture was not fitted on" if unknown else ""]
        raise ValueError(
            f"{what} {' and '.join(p for p in problems if p)}; the mixture was fitted on the features "
            f"{summarize_values(features)}. Pass data with exactly these columns (in any order: they are "
            "matched by name)."
        )
    if data.features == features:
        return data
    order = [data.features.index(f) for f in features]
    return DataMatrix(np.ascontiguousarray(data.values[:, order]), features, data.obs_id, data.name, True)

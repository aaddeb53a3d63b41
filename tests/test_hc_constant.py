"""mclust's qclass start on constant one-dimensional data (found while running the fast tier)."""

import warnings

import numpy as np

import gmmflow
from gmmflow import schema as S


def test_constant_one_dimensional_data_does_not_hang_the_hc_start():
    """Found while running the fast tier: mclust's qclass loops forever on constant 1-D data (every quantile
    is the one value), which hung test_invariants' hypothesis search; gmmflow cuts such rows by order."""
    from gmmflow.core.hierarchical import quantile_partition

    np.testing.assert_array_equal(quantile_partition(np.full(5, 5.0), 2), [0, 0, 0, 1, 1])
    np.testing.assert_array_equal(quantile_partition(np.array([0.0, 0.0, 1.0, 1.0, 1.0]), 2), [0, 0, 1, 1, 1])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        idata = gmmflow.fit_em(gmmflow.GMM(2), np.full((10, 1), 3.0), n_init=1, init="hc", seed=0)
    np.testing.assert_allclose(idata[S.EM_ESTIMATE]["mu"].values, 3.0)

"""mclust's qclass start on constant one-dimensional data (found while running the fast tier)."""

import warnings

import numpy as np

import gmmflow
from gmmflow import schema as S


def test_one_dimensional_data_without_k_plus_one_quantiles_does_not_hang_the_hc_start():
    """Found while running the fast tier: mclust's qclass loops forever on 1-D data with no k + 1 distinct
    quantiles (constant, or values adjacent in float64), which hung test_invariants' hypothesis search;
    gmmflow cuts such rows by rank."""
    from gmmflow.core.hierarchical import quantile_partition

    np.testing.assert_array_equal(quantile_partition(np.full(5, 5.0), 2), [0, 0, 0, 1, 1])
    np.testing.assert_array_equal(quantile_partition(np.array([0.0, 0.0, 1.0, 1.0, 1.0]), 2), [0, 0, 1, 1, 1])
    # two values adjacent in float64: no quantile falls between them, whatever the grid
    x = np.array([np.nextafter(1.0, 2.0), 1.0, 1.0, np.nextafter(1.0, 2.0)])
    np.testing.assert_array_equal(quantile_partition(x, 3), [1, 0, 0, 2])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        idata = gmmflow.fit_em(gmmflow.GMM(2), np.full((10, 1), 3.0), n_init=1, init="hc", seed=0)
    np.testing.assert_allclose(idata[S.EM_ESTIMATE]["mu"].values, 3.0)

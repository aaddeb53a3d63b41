"""The compiled hc merge loop (numba) against the numpy loop it must reproduce.

``gmmflow.kernels.hc_merge.merge_pairs`` and ``gmmflow.core.hierarchical.merge_pairs``
take the same singletons' costs and must merge the same positions at every step
(the same tie rule: the last minimum in mclust's packed order), so every level of
the tree is the same partition. Data: the bundled sets (faithful, geyser and
faithful have duplicated rows, i.e. exact ties), wine-like correlated data in 13
dimensions, rows drawn with replacement (many exact ties), integer lattices (equal
distances between different pairs), the smallest trees (n = 2, 3), and the
subsamples hc takes above ``max_rows``. The numpy path must also be what runs
without numba.
"""

from __future__ import annotations

import re
import sys

import numpy as np
import pytest

from gmmflow.core import hierarchical
from gmmflow.core.hierarchical import EPS, agglomerate, hierarchical_partitions, svd_transform
from gmmflow.inputs.datasets import load_dataset

pytest.importorskip("numba")
from gmmflow.kernels import hc_merge  # noqa: E402


def bundled(name: str) -> np.ndarray:
    X = np.asarray(load_dataset(name).values, dtype=np.float64)
    return X[:, None] if X.ndim == 1 else X


def wine_like(rng, n=178, d=13) -> np.ndarray:
    """Correlated features on different scales, three groups (as the wine data)."""
    A = rng.normal(size=(d, d)) * rng.uniform(0.1, 10.0, size=d)
    centres = rng.normal(scale=3.0, size=(3, d))
    return centres[rng.integers(0, 3, size=n)] + rng.normal(size=(n, d)) @ A


def with_duplicates(rng, n, d) -> np.ndarray:
    X = rng.normal(size=(n, d))
    return X[rng.integers(0, n, size=3 * n)]


def both_trees(Z, model):
    """The merge sequences of both loops and the partitions at every level."""
    Z = np.ascontiguousarray(Z, dtype=np.float64)
    n, d = Z.shape
    alpha = max(float(np.sum((Z - Z.mean(axis=0)) ** 2)) / (n * d), EPS)
    compiled = hc_merge.merge_pairs(Z, model == "VVV", alpha, 1.0, 1)
    reference = hierarchical.merge_pairs(Z, hierarchical._initial_costs(Z, model, alpha, 1.0), model, alpha, 1.0, 1)
    levels = range(1, n + 1)
    return (compiled, reference, agglomerate(Z, levels, model, compiled=True),
            agglomerate(Z, levels, model, compiled=False))


def assert_same_tree(Z, model):
    compiled, reference, ours, ref = both_trees(Z, model)
    np.testing.assert_array_equal(compiled, reference)
    assert ours.keys() == ref.keys()
    for G in ref:
        np.testing.assert_array_equal(ours[G], ref[G], err_msg=f"{G} clusters")


CASES = {
    "faithful": lambda rng: svd_transform(bundled("faithful")),
    "geyser": lambda rng: svd_transform(bundled("geyser")),
    "iris": lambda rng: svd_transform(bundled("iris")),
    "wine": lambda rng: svd_transform(bundled("wine")),
    "galaxies (d = 1)": lambda rng: bundled("galaxies"),
    "wine-like d = 13": lambda rng: svd_transform(wine_like(rng)),
    "duplicated rows d = 3": lambda rng: with_duplicates(rng, 40, 3),
    "duplicated rows d = 9": lambda rng: with_duplicates(rng, 30, 9),
    "integer lattice d = 2": lambda rng: rng.integers(0, 6, size=(150, 2)).astype(float),
    "integer lattice d = 5": lambda rng: rng.integers(0, 3, size=(120, 5)).astype(float),
    "n = 2": lambda rng: rng.normal(size=(2, 2)),
    "n = 3": lambda rng: rng.normal(size=(3, 2)),
    "n = 3, d = 3": lambda rng: rng.normal(size=(3, 3)),
}


@pytest.mark.parametrize("model", ["VVV", "EII"])
@pytest.mark.parametrize("case", list(CASES))
def test_compiled_loop_merges_as_the_numpy_loop(case, model):
    rng = np.random.default_rng(sorted(CASES).index(case))
    assert_same_tree(CASES[case](rng), model)


def test_ties_occur_in_the_tie_cases():
    """The duplicated rows and lattices tie: several pairs share the least cost at the
    first merge, so the tie rule is exercised by the cases above."""
    for case in ("duplicated rows d = 3", "integer lattice d = 2"):
        Z = CASES[case](np.random.default_rng(sorted(CASES).index(case)))
        n, d = Z.shape
        alpha = max(float(np.sum((Z - Z.mean(axis=0)) ** 2)) / (n * d), EPS)
        costs = hierarchical._initial_costs(Z, "VVV", alpha, 1.0)[0]
        assert np.sum(costs == costs.min()) > 1, case


@pytest.mark.parametrize("n_rows", [60, 250, 700])
def test_subsampled_trees_are_the_same(n_rows):
    """The seeded subsamples hc clusters above max_rows: the same rows, the same partitions."""
    X = np.vstack([bundled("geyser"), bundled("faithful")])
    kw = dict(max_rows=n_rows, seed=3)
    hierarchical.clear_tree_cache()
    ours = hierarchical_partitions(X, range(1, 10), compiled=True, **kw)
    ref = hierarchical_partitions(X, range(1, 10), compiled=False, **kw)
    np.testing.assert_array_equal(ours.rows, ref.rows)
    for k in range(1, 10):
        np.testing.assert_array_equal(ours.labels[k], ref.labels[k], err_msg=f"K={k}")


def test_without_numba_the_numpy_loop_runs(monkeypatch):
    """An ImportError from the kernel module (no numba) selects the numpy loop silently,
    with the same partitions; asking for the kernel then raises the ImportError."""
    X = bundled("iris")
    expected = hierarchical_partitions(X, [2, 3, 4], compiled=True).labels
    hierarchical.clear_tree_cache()
    calls = []
    numpy_loop = hierarchical.merge_pairs
    monkeypatch.setattr(hierarchical, "merge_pairs", lambda *a: calls.append(1) or numpy_loop(*a))
    monkeypatch.setitem(sys.modules, "gmmflow.kernels.hc_merge", None)  # import -> ImportError
    monkeypatch.delattr("gmmflow.kernels.hc_merge", raising=False)
    assert hierarchical.compiled_kernels() is None
    got = hierarchical_partitions(X, [2, 3, 4]).labels
    assert calls == [1]
    for k in (2, 3, 4):
        np.testing.assert_array_equal(got[k], expected[k])
    with pytest.raises(ImportError, match=re.escape("gmmflow.kernels.hc_merge")):
        agglomerate(svd_transform(X), [2], compiled=True)
    hierarchical.clear_tree_cache()


def test_above_max_d_features_the_numpy_loop_runs(monkeypatch):
    """The kernel sums features as numpy does up to MAX_D of them; above, the numpy loop runs."""
    calls = []
    numpy_loop = hierarchical.merge_pairs
    monkeypatch.setattr(hierarchical, "merge_pairs", lambda *a: calls.append(1) or numpy_loop(*a))
    monkeypatch.setattr(hc_merge, "MAX_D", 3)
    Z = np.random.default_rng(0).normal(size=(30, 4))
    agglomerate(Z, [2], compiled=True)
    assert calls == [1]
    agglomerate(Z[:, :3], [2], compiled=True)
    assert calls == [1]


@pytest.mark.parametrize("case", ["faithful", "wine", "duplicated rows d = 3", "integer lattice d = 5"])
def test_kernel_singleton_costs_are_numpys(case):
    """The kernel computes the singletons' costs itself: Ward's (no logarithm) bit for bit
    as numpy's ``_initial_costs``, VVV's within two units in the last place of the terms
    (the C library's ``log`` against numpy's vectorised one), for a few pairs only."""
    Z = np.ascontiguousarray(CASES[case](np.random.default_rng(sorted(CASES).index(case))))
    n, d = Z.shape
    alpha = max(float(np.sum((Z - Z.mean(axis=0)) ** 2)) / (n * d), EPS)
    for model in ("EII", "VVV"):
        ref = np.ascontiguousarray(hierarchical._initial_costs(Z, model, alpha, 1.0))
        ours = np.empty_like(ref)
        hc_merge._initial_costs(Z, ours, model == "VVV", alpha, 1.0)
        if model == "EII":
            np.testing.assert_array_equal(ours, ref)
            continue
        scale = np.spacing(np.abs(ref[0]) + 2.0 * abs(np.log(alpha)))
        assert np.all(np.abs(ours[0] - ref[0]) <= 2.0 * scale)
        assert np.mean(ours[0] != ref[0]) < 0.01
        assert np.all(np.isnan(ours[1]))


def test_bounds_are_below_the_exact_costs():
    """The kernel keeps a VVV cost without its determinant until the search reaches it:
    that bound must not exceed the exact cost, which must be the numpy loop's. Checked on
    every pair of the 40 clusters left after merging faithful down (clusters of 2 to 38
    rows, where the determinant counts), against ``_Clusters.costs``."""
    Z = np.ascontiguousarray(svd_transform(bundled("faithful")))
    n, d = Z.shape
    alpha = max(float(np.sum((Z - Z.mean(axis=0)) ** 2)) / (n * d), EPS)
    P = hierarchical._initial_costs(Z, "VVV", alpha, 1.0)
    clusters = hierarchical._Clusters(Z, "VVV", alpha, 1.0)
    tri = hierarchical._triangle_starts(n)
    G = 40
    for step, (a, b) in enumerate(hierarchical.merge_pairs(Z, P.copy(), "VVV", alpha, 1.0, G)):
        hierarchical._merge(P, tri, clusters, a, b, n - step)
    stats = clusters.stats[:, :G]
    size, trace, term = (np.ascontiguousarray(stats[r]) for r in range(3))
    mean = np.ascontiguousarray(stats[3:3 + d].T)
    scatter = np.ascontiguousarray(stats[3 + d:].T.reshape(G, d, d))
    W, L = np.empty((d, d)), np.empty((d + 1, d))
    below = 0
    with np.errstate(divide="ignore", invalid="ignore"):
        for a in range(G):
            ref = clusters.costs(a, G)
            for j in range(G):
                if j == a:
                    continue
                bound, second, exact = hc_merge._pair_bound(a, j, size, trace, term, mean, True, alpha, 1.0, d)
                if exact:
                    cost = bound
                else:
                    cost, second = hc_merge._exact_cost(a, j, second, size, term, mean, scatter, W, L, d)
                    assert bound <= cost
                    below += bound < cost
                np.testing.assert_allclose([cost, second], ref[:, j], rtol=0, atol=4 * np.spacing(ref[1, j]))
    assert below > G * (G - 1) // 2  # the bounds are real bounds, not the costs themselves


def test_sparse_levels_are_cut_as_numpy_cuts_them():
    """Labels at a few levels (with gaps, unsorted, the top level n): the compiled cut of the
    merge sequence equals numpy's."""
    Z = svd_transform(bundled("iris"))
    ks = [9, 1, 150, 4, 2]
    ours, ref = agglomerate(Z, ks, compiled=True), agglomerate(Z, ks, compiled=False)
    assert sorted(ours) == sorted(ref) == sorted(ks)
    for k in ks:
        np.testing.assert_array_equal(ours[k], ref[k])
        assert np.unique(ours[k]).size == k and ours[k][0] == 0

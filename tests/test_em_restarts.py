"""Restarts: batched against one-by-one, start methods, what em_restarts records."""

import re
import warnings

import numpy as np
import pytest

import gmmflow
from conftest import COV_TYPES, mixture_data
from gmmflow.core.em_driver import fit_restarts
from gmmflow.core.em_steps import Params
from gmmflow.core.hierarchical import hierarchical_partitions, partition_parameters
from gmmflow.core.initialization import StartingPoints
from gmmflow.core.row_blocks import ArrayBlocks
from gmmflow.results.from_idata import em_params
from gmmflow.workflows.em_fit import restart_methods


def core_restarts(X, model, methods, batch_size, tol=1e-10, seed=3):
    """The core driver on in-memory rows, as fit_em runs it, with a given batch size (numpy's
    batches: the compiled loop runs each restart alone whatever the batch size, and
    tests/test_em_compiled.py compares it with these)."""
    blocks = ArrayBlocks(X)
    mean, cov = blocks.moments()
    hyper = model.hyperparameters(mean, cov, X.shape[0])
    blocks = blocks.with_shift(mean)
    starts = StartingPoints.from_blocks(blocks, seed, model.n_components, model.covariance_type, hyper,
                                        model.reg_covar, None)
    return fit_restarts(blocks, starts, hyper, model.reg_covar, methods, 1000, tol, seed, batch_size=batch_size,
                        compiled=False)


@pytest.mark.parametrize("t", COV_TYPES)
@pytest.mark.parametrize("prior", ["default", None])
def test_batched_restarts_equal_one_by_one(t, prior):
    """All restarts advanced as one batch give each restart's own run, to rounding:
    the same iterations, traces and parameters to 1e-10 (relative), the same stop."""
    X = gmmflow.load_dataset("iris").values
    model = gmmflow.GMM(3, t, prior=prior)
    methods = ["hc"] + ["kmeans++"] * 5 + ["random"] * 2
    together = core_restarts(X, model, methods, batch_size=None)
    alone = core_restarts(X, model, methods, batch_size=1)
    for a, b in zip(together, alone):
        assert (a.n_iter, a.converged, a.start) == (b.n_iter, b.converged, b.start)
        np.testing.assert_allclose(a.trace, b.trace, rtol=1e-10, atol=0)
        for name in ("weights", "means", "cov"):
            np.testing.assert_allclose(getattr(a.params, name), getattr(b.params, name), rtol=1e-10,
                                       atol=1e-10 * np.abs(getattr(b.params, name)).max())
    # the restarts really differ: the test compares different runs, not one run eight times
    assert len({round(r.objective, 6) for r in together}) > 1 or len({r.n_iter for r in together}) > 1


def test_batched_restarts_are_bit_identical_across_runs():
    X = gmmflow.load_dataset("faithful").values
    model = gmmflow.GMM(3, "full")
    first = core_restarts(X, model, ["hc"] + ["kmeans++"] * 9, batch_size=None)
    again = core_restarts(X, model, ["hc"] + ["kmeans++"] * 9, batch_size=None)
    for a, b in zip(first, again):
        np.testing.assert_array_equal(a.trace, b.trace)
        np.testing.assert_array_equal(a.params.cov, b.params.cov)


def test_batch_of_one_equals_unbatched_kernels():
    """A batch axis of length one changes nothing: the stacked kernels compute the same numbers."""
    X = gmmflow.load_dataset("faithful").values
    blocks = ArrayBlocks(X)
    for t in COV_TYPES:
        idata = gmmflow.fit_em(gmmflow.GMM(2, t), X, n_init=1, seed=0)
        p = em_params(idata)[1]
        one = blocks.e_step(p)
        stacked = blocks.e_step(Params.stack([p, p]))
        np.testing.assert_allclose(stacked.nk[1], one.nk, rtol=1e-13)
        np.testing.assert_allclose(stacked.sxx[0], one.sxx, rtol=1e-13)
        np.testing.assert_allclose(stacked.log_likelihood, [one.log_likelihood] * 2, rtol=1e-13)


def test_restart_methods():
    assert restart_methods("hc", 10) == ["hc"]
    assert restart_methods("hc+kmeans++", 3) == ["hc", "kmeans++", "kmeans++"]
    assert restart_methods("hc+random", 1) == ["hc"]
    assert restart_methods("random", 2) == ["random", "random"]


def test_em_restarts_record_where_each_restart_started():
    X = gmmflow.load_dataset("faithful")
    idata = gmmflow.fit_em(gmmflow.GMM(2), X, n_init=4, seed=0)
    assert idata.attrs["init"] == "hc+kmeans++"
    assert list(idata.em_restarts.init_method.values) == ["hc"] + ["kmeans++"] * 3
    user = gmmflow.fit_em(gmmflow.GMM(2), X, n_init=2, seed=0, init={"means": [[2.0, 55.0], [4.5, 80.0]]})
    assert list(user.em_restarts.init_method.values) == ["user", "user"]


def test_hc_start_is_mclusts_partition_and_runs_once():
    """init="hc": one restart, whose first objective is that of one M-step on mclust's
    partition (the hc partitions themselves are checked against mclust in
    test_mclust_reference)."""
    X = gmmflow.load_dataset("iris").values
    model = gmmflow.GMM(3, "full", prior="mclust", reg_covar=0.0)
    idata = gmmflow.fit_em(model, X, init="hc", n_init=10, seed=0)
    assert idata.em_restarts.sizes["restart"] == 1 and idata.attrs["n_init"] == 1
    labels = hierarchical_partitions(X, [3]).labels[3]
    hyper = model.hyperparameters(X.mean(0), np.cov(X, rowvar=False), X.shape[0])
    start = partition_parameters(X, labels, 3, "full", hyper)
    by_hand = gmmflow.fit_em(model, X, init=start, n_init=1, seed=0)
    np.testing.assert_allclose(idata.em_trace.objective.values[0, 0],
                               by_hand.em_trace.objective.values[0, 0], rtol=1e-12)
    np.testing.assert_allclose(float(idata.em_estimate.objective), float(by_hand.em_estimate.objective),
                               rtol=1e-12)


def test_hc_start_with_weights_clusters_the_weighted_rows():
    """Rows of weight zero take no part in the hc partition (nor in the fit)."""
    X = mixture_data(seed=1, n_per=60, d=2, K=2)
    w = np.ones(X.shape[0])
    w[::3] = 0.0
    a = gmmflow.fit_em(gmmflow.GMM(2), X, init="hc", sample_weight=w, seed=0)
    b = gmmflow.fit_em(gmmflow.GMM(2), X[w > 0], init="hc", seed=0)
    np.testing.assert_allclose(a.em_estimate.mu.values, b.em_estimate.mu.values, rtol=1e-8)


def test_hc_on_constant_data_still_starts():
    X = np.full((10, 2), 3.0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", gmmflow.ConvergenceWarning)
        idata = gmmflow.fit_em(gmmflow.GMM(2), X, init="hc", seed=0)
    assert np.all(np.isfinite(idata.em_estimate.cov.values))


def test_unknown_init_lists_the_choices():
    X = gmmflow.load_dataset("faithful")
    with pytest.raises(ValueError, match=re.escape(
            "init must be one of 'kmeans++', 'random', 'random_from_data', 'hc', 'hc+kmeans++', "
            "'hc+random', 'hc+random_from_data' or a dict with keys among ('weights', 'means', "
            "'covariances'); got 'ward'.")):
        gmmflow.fit_em(gmmflow.GMM(2), X, init="ward")


def test_hc_tree_is_kept_for_other_k_and_copies_are_handed_out():
    """One tree serves every K on the same rows (mclust clusters once per Mclust call); the
    labels handed out are copies, so a caller cannot change the kept tree."""
    from gmmflow.core.hierarchical import _tree_levels, clear_tree_cache

    X = gmmflow.load_dataset("faithful").values
    clear_tree_cache()
    first = hierarchical_partitions(X, [3])
    first.labels[3][:] = -1
    again = hierarchical_partitions(X, [2, 3, 5])
    assert _tree_levels.cache_info().hits == 1
    assert again.labels[3].min() == 0 and np.unique(again.labels[5]).size == 5
    other = hierarchical_partitions(X[::-1], [3])  # other rows (order matters), another tree
    assert _tree_levels.cache_info().misses == 2 and other.labels[3].size == X.shape[0]


def _kmeans_one_restart(X, K, rng, w):
    """Reference: greedy k-means++ then Lloyd for one restart, row by row in plain loops
    (the unbatched algorithm, drawing from ``rng`` in the same order)."""
    n = X.shape[0]
    trials = 2 + int(np.log(K))
    sq = lambda a, b: float(np.sum((a - b) ** 2))  # noqa: E731
    centers = [X[rng.choice(n, p=w / w.sum())]]
    closest = np.array([sq(x, centers[0]) for x in X])
    for _ in range(1, K):
        pot = closest * w
        cand = np.minimum(np.searchsorted(np.cumsum(pot), rng.random(trials) * pot.sum()), n - 1)
        cand_d = np.array([[min(closest[i], sq(X[i], X[c])) for c in cand] for i in range(n)])
        best = int(np.argmin((cand_d * w[:, None]).sum(axis=0)))
        centers.append(X[cand[best]])
        closest = cand_d[:, best]
    centers = np.array(centers)
    labels = np.array([np.argmin([sq(x, c) for c in centers]) for x in X])
    for _ in range(10):
        for k in range(K):
            if w[labels == k].sum() > 0:
                centers[k] = (w[labels == k, None] * X[labels == k]).sum(axis=0) / w[labels == k].sum()
        new = np.array([np.argmin([sq(x, c) for c in centers]) for x in X])
        if np.array_equal(new, labels):
            break
        labels = new
    return labels


@pytest.mark.parametrize("weighted", [False, True])
def test_kmeans_starts_drawn_together_equal_one_restart_at_a_time(weighted):
    """The k-means++ starts of all restarts, seeded and clustered as one batch, are bit for bit
    those drawn one restart at a time (each from its own generator, in restart order), and
    their partitions are those of a plain one-restart loop."""
    from gmmflow.core.initialization import kmeans_responsibilities

    X = mixture_data(seed=2, n_per=40, d=3, K=4)
    w = np.random.default_rng(5).uniform(0.2, 2.0, X.shape[0]) if weighted else None
    blocks = ArrayBlocks(X, sample_weight=w)
    mean, cov = blocks.moments()
    blocks = blocks.with_shift(mean)
    methods = ["hc", "kmeans++", "random", "kmeans++", "kmeans++", "random_from_data", "kmeans++"]
    streams = lambda: [np.random.default_rng(c) for c in np.random.SeedSequence(7).spawn(len(methods))]  # noqa: E731
    for t in COV_TYPES:
        starts = StartingPoints.from_blocks(blocks, 7, 4, t, None, 1e-6, None)
        together = starts.draw_all(methods, streams())
        alone = [starts.draw(m, rng) for m, rng in zip(methods, streams())]
        for a, b in zip(together, alone):
            for name in ("weights", "means", "cov", "chol"):
                np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
    rngs = streams()
    resp = kmeans_responsibilities(blocks.sample(None)[0], 4, rngs[:3], w)
    ref = [_kmeans_one_restart(X - mean, 4, rng, np.ones(X.shape[0]) if w is None else w) for rng in streams()[:3]]
    np.testing.assert_array_equal(resp.argmax(axis=-1), ref)
    assert len({tuple(r) for r in ref}) > 1  # different streams, different partitions: a real comparison


def test_noise_starts_drawn_together_equal_one_restart_at_a_time():
    X = mixture_data(seed=3, n_per=50, d=2, K=2)
    blocks = ArrayBlocks(X)
    mean, cov = blocks.moments()
    blocks = blocks.with_shift(mean)
    starts = StartingPoints.from_blocks(blocks, 0, 2, "full", None, 1e-6, None, log_noise_density=-3.0)
    streams = lambda: [np.random.default_rng(c) for c in np.random.SeedSequence(0).spawn(3)]  # noqa: E731
    together = starts.draw_all(["kmeans++"] * 3, streams())
    alone = [starts.draw("kmeans++", rng) for rng in streams()]
    for a, b in zip(together, alone):
        assert a.has_noise and a.log_noise_density == -3.0
        np.testing.assert_array_equal(a.weights, b.weights)
        np.testing.assert_array_equal(a.cov, b.cov)


@pytest.mark.parametrize("weighted", [False, True])
def test_first_kmeans_centres_are_generator_choices(weighted):
    """The first centre of each restart is the row numpy's ``Generator.choice(n, p=w / w.sum())``
    draws from that restart's generator (kmeans_plusplus draws it from one running sum shared
    by all restarts), and the generator is left where choice leaves it."""
    from gmmflow.core.initialization import kmeans_plusplus

    X = mixture_data(seed=4, n_per=30, d=2, K=3)
    w = np.random.default_rng(6).uniform(0.0, 2.0, X.shape[0]) if weighted else None
    p = (np.ones(X.shape[0]) if w is None else w) / (X.shape[0] if w is None else w.sum())
    streams = lambda: [np.random.default_rng(c) for c in np.random.SeedSequence(11).spawn(20)]  # noqa: E731
    ours, theirs = streams(), streams()
    centres = kmeans_plusplus(X, 1, ours, w)[:, 0]
    rows = [rng.choice(X.shape[0], p=p) for rng in theirs]
    np.testing.assert_array_equal(centres, X[rows])
    assert len(set(rows)) > 10  # twenty streams, many different rows: a real comparison
    assert [r.random() for r in ours] == [r.random() for r in theirs]

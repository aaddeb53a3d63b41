"""Starting points for EM.

Every method ends the same way: initial responsibilities (hard or soft) are
reduced to statistics and one M-step turns them into parameters, as sklearn
does. Values the user gives override the derived ones.

Above ``INIT_SAMPLE_ROWS`` rows, every method works on a uniform random
subsample of that many rows (:func:`init_sample_rows`), in memory and on dask
alike, so initialisation costs O(100k) whatever n is.

``"kmeans++"``
    k-means++ seeding (greedy, ``2 + log K`` candidates per centre, as
    sklearn), then up to ``LLOYD_STEPS`` Lloyd iterations, then each row to
    its nearest centre.
``"random"``
    Uniform random responsibilities, normalised per row.
``"random_from_data"``
    K distinct rows as centres, each row to its nearest centre.
``"hc"``
    mclust's start: the partition into K clusters cut from model-based
    agglomerative hierarchical clustering (:mod:`gmmflow.core.hierarchical`) of
    the rows with positive weight (above ``MAX_HC_ROWS`` of them, a seeded
    uniform subsample, as mclust). Deterministic: the random stream is unused.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np

from gmmflow.core.em_steps import Params, m_step_from_responsibilities
from gmmflow.core.hierarchical import MAX_HC_ROWS, hierarchical_partitions, partition_responsibilities
from gmmflow.core.hyperparameters import Hyperparameters
from gmmflow.core.noise import with_noise

INIT_METHODS = ("kmeans++", "random", "random_from_data", "hc")
USER_START = "user"  # the start method recorded for a restart from user-given values
LLOYD_STEPS = 10
INIT_SAMPLE_ROWS = 100_000
_SAMPLE_STREAM = 0x5A4D  # keeps the subsample's random stream apart from the restarts'
_HC_STREAM = 0x4843  # the hc subsample's stream


def init_sample_rows(n_rows: int, seed: int) -> np.ndarray | None:
    """Rows every restart initialises on: all (None) up to ``INIT_SAMPLE_ROWS``,
    else a sorted uniform random subset of that size, the same for in-memory
    and chunked data."""
    if n_rows <= INIT_SAMPLE_ROWS:
        return None
    rng = np.random.default_rng(np.random.SeedSequence([seed, _SAMPLE_STREAM]))
    return np.sort(rng.choice(n_rows, size=INIT_SAMPLE_ROWS, replace=False))


def _sq_distances(X, centers, x_sq=None):
    """Squared distances of rows ``X`` (n, d) to centres (..., c, d): (..., n, c).

    ``x_sq`` is ``|x_i|^2`` for each row when the caller keeps it (it is the same
    for every call on the same rows)."""
    if x_sq is None:
        x_sq = _row_norms(X)
    d2 = x_sq[:, None] - 2.0 * X @ np.swapaxes(centers, -1, -2) + np.sum(centers**2, axis=-1)[..., None, :]
    return np.maximum(d2, 0.0)


def _row_norms(X):
    return np.einsum("ij,ij->i", X, X)


def nearest(X: np.ndarray, centers: np.ndarray, x_sq=None) -> np.ndarray:
    """Index of the nearest centre (of each set in ``centers`` (..., c, d)) for every row: (..., n)."""
    return np.argmin(_sq_distances(X, centers, x_sq), axis=-1)


def _draw_candidates(pot: np.ndarray, trials: int, rngs: list[np.random.Generator]) -> np.ndarray:
    """For each restart r, ``trials`` rows drawn with probability proportional to ``pot[r]``
    (uniformly if all are 0) from ``rngs[r]``: (R, trials).

    The totals (pairwise sums, as each row's own ``sum``) and running sums of all
    restarts are taken at once; each generator draws its ``trials`` uniforms as
    it would alone.
    """
    total = pot.sum(axis=-1)
    cum = np.cumsum(pot, axis=-1)
    cand = np.empty((len(rngs), trials), dtype=np.intp)
    for r, rng in enumerate(rngs):
        if total[r] <= 0:  # all remaining rows coincide with a centre
            cand[r] = rng.choice(pot.shape[-1], size=trials)
        else:
            cand[r] = np.searchsorted(cum[r], rng.random(trials) * total[r])
    return np.minimum(cand, pot.shape[-1] - 1, out=cand)


def kmeans_plusplus(X: np.ndarray, n_clusters: int, rngs: list[np.random.Generator],
                    sample_weight=None) -> np.ndarray:
    """Greedy k-means++ seeding (Arthur & Vassilvitskii 2007; sklearn's variant): (R, K, d).

    One set of centres per generator in ``rngs`` (R restarts): the distances
    of all sets are computed together, and each set draws from its own
    generator exactly as it would alone. The first centre is row
    ``rng.choice(n, p=w / w.sum())``, drawn as ``Generator.choice`` draws it (one
    uniform, searched in the normalised running sum of ``p``), that sum computed
    once for all restarts.
    """
    n = X.shape[0]
    w = np.ones(n) if sample_weight is None else sample_weight
    trials = 2 + int(np.log(n_clusters))
    batch = np.arange(len(rngs))
    x_sq = _row_norms(X)
    cdf = np.cumsum(w / w.sum())
    cdf /= cdf[-1]
    centers = np.empty((len(rngs), n_clusters, X.shape[1]))
    centers[:, 0] = X[[cdf.searchsorted(rng.random(), side="right") for rng in rngs]]
    closest = _sq_distances(X, centers[:, :1], x_sq)[..., 0]  # (R, n)
    for c in range(1, n_clusters):
        # an unweighted fit's weights are ones: the products would be the same numbers
        cand = _draw_candidates(closest if sample_weight is None else closest * w, trials, rngs)  # (R, trials)
        cand_d = np.minimum(closest[..., None], _sq_distances(X, X[cand], x_sq))  # (R, n, trials)
        best = np.argmin((cand_d if sample_weight is None else cand_d * w[:, None]).sum(axis=-2), axis=-1)
        centers[:, c] = X[cand[batch, best]]
        closest = cand_d[batch, :, best]
    return centers


def _cluster_sums(labels, K, weighted_columns):
    """Weights and weighted row sums per cluster of each labelling ``labels`` (R, n): (R, K), (R, K, d).

    ``bincount`` over labels offset by ``K r`` sums every restart's rows in row
    order, as one restart's own ``bincount`` would. ``weighted_columns`` (d + 1,
    R' n), R' >= R: the weights and each feature times them, repeated for each
    restart (the first R n entries are used).
    """
    R, n = labels.shape
    flat = (labels + K * np.arange(R)[:, None]).ravel()
    sums = [np.bincount(flat, weights=col[:R * n], minlength=R * K) for col in weighted_columns]
    return sums[0].reshape(R, K), np.stack(sums[1:], axis=1).reshape(R, K, -1)


def lloyd(X: np.ndarray, centers: np.ndarray, n_steps: int = LLOYD_STEPS, sample_weight=None):
    """A few Lloyd (k-means) steps from each set of centres (R, K, d); an emptied centre stays where it
    was. A set stops when its labels stop changing, the others go on. Returns centres and labels (R, n)."""
    centers = centers.copy()
    R, K = centers.shape[:2]
    w = np.ones(X.shape[0]) if sample_weight is None else sample_weight
    x_sq = _row_norms(X)
    weighted_columns = np.tile(np.column_stack([w, X * w[:, None]]).T, R)  # (d + 1, R n)
    labels = nearest(X, centers, x_sq)
    moving = np.arange(R)
    for _ in range(n_steps):
        counts, sums = _cluster_sums(labels[moving], K, weighted_columns)
        filled = counts > 0
        moved = centers[moving]
        moved[filled] = sums[filled] / counts[filled, None]
        centers[moving] = moved
        new = nearest(X, moved, x_sq)
        changed = np.any(new != labels[moving], axis=-1)
        labels[moving] = new
        moving = moving[changed]
        if moving.size == 0:
            break
    return centers, labels


def _one_hot(labels, K):
    """(..., n) labels as (..., n, K) hard responsibilities."""
    return (labels[..., None] == np.arange(K)).astype(np.float64)


def initial_responsibilities(X, K, method, rng, sample_weight=None, means=None) -> np.ndarray:
    """Initial (n, K) responsibilities by ``method`` or nearest given ``means``."""
    if means is not None:
        return _one_hot(nearest(X, means), K)
    if method == "kmeans++":
        return kmeans_responsibilities(X, K, [rng], sample_weight)[0]
    if method == "random":
        resp = rng.uniform(size=(X.shape[0], K))
        return resp / resp.sum(axis=1, keepdims=True)
    if method == "random_from_data":
        idx = rng.choice(X.shape[0], size=K, replace=False)
        return _one_hot(nearest(X, X[idx]), K)
    raise ValueError(f"init must be one of {INIT_METHODS} or a dict, got {method!r}")


def kmeans_responsibilities(X, K, rngs: list[np.random.Generator], sample_weight=None) -> np.ndarray:
    """Hard (R, n, K) responsibilities of k-means++ then Lloyd, one restart per generator, all together."""
    centers = kmeans_plusplus(X, K, rngs, sample_weight)
    _, labels = lloyd(X, centers, sample_weight=sample_weight)
    return _one_hot(labels, K)


def initial_parameters(
    X: np.ndarray,
    n_components: int,
    covariance_type: str,
    method: str,
    rng: np.random.Generator,
    hyper: Hyperparameters | None,
    reg_covar: float,
    sample_weight=None,
    given: dict | None = None,
) -> Params:
    """Initial parameters: responsibilities -> one M-step -> user overrides.

    ``given`` may hold validated ``weights``, ``means`` and ``covariances`` (in
    the frame of ``X``). What it lacks comes from the M-step on hard
    assignments to the given means (or to ``method``'s centres).
    """
    given = given or {}
    if {"weights", "means", "covariances"} <= given.keys():
        return Params.from_cov(given["weights"], given["means"], given["covariances"], covariance_type)
    resp = initial_responsibilities(X, n_components, method, rng, sample_weight, given.get("means"))
    params = m_step_from_responsibilities(X, resp, covariance_type, hyper, reg_covar, sample_weight)
    return Params.from_cov(
        given.get("weights", params.weights),
        given.get("means", params.means),
        given.get("covariances", params.cov),
        covariance_type,
    )


@dataclass(frozen=True, eq=False)
class StartingPoints:
    """Where every EM restart starts: one shared sample of rows and the start methods.

    Built once per fit by :meth:`from_blocks`, in the frame of the blocks
    (shifted by their ``shift``); :meth:`draw` gives one restart's initial
    parameters by a method, from its own random stream. The hierarchical
    clustering of ``"hc"`` is computed once and shared.
    """

    sample: np.ndarray
    sample_weight: np.ndarray | None
    n_components: int
    covariance_type: str
    hyper: Hyperparameters | None
    reg_covar: float
    given: dict | None
    seed: int = 0
    log_noise_density: float | None = None  # a noise model's -log V: every start gets the noise component

    @classmethod
    def from_blocks(cls, blocks, seed: int, n_components: int, covariance_type: str,
                    hyper: Hyperparameters | None, reg_covar: float, given: dict | None,
                    log_noise_density: float | None = None) -> StartingPoints:
        """Starting points on the uniform subsample of :func:`init_sample_rows` of ``blocks``.

        ``hyper`` and the user's ``given`` values are in the data's frame and
        are moved to the blocks' frame here. With ``log_noise_density`` (a
        noise model) every start gets the noise component
        (:func:`~gmmflow.core.noise.with_noise`: weight ``INITIAL_NOISE_WEIGHT``
        unless the user gave all K+1 weights).
        """
        sample, sample_weight = blocks.sample(init_sample_rows(blocks.n_rows, seed))
        shift = blocks.shift
        if given and "means" in given:
            given = given | {"means": given["means"] - shift}
        return cls(sample, sample_weight, n_components, covariance_type,
                   None if hyper is None else hyper.shifted(shift), reg_covar, given, seed, log_noise_density)

    @cached_property
    def hc_start(self) -> Params:
        """One M-step on the hc partition into K clusters (mclust's ``me()`` start)."""
        rows = np.arange(self.sample.shape[0])
        if self.sample_weight is not None:
            rows = np.flatnonzero(self.sample_weight > 0)
        seed = np.random.SeedSequence([self.seed, _HC_STREAM])
        hc = hierarchical_partitions(self.sample[rows], [self.n_components], max_rows=MAX_HC_ROWS,
                                     seed=np.random.default_rng(seed))
        if hc.rows is not None:
            rows = rows[hc.rows]
        resp = partition_responsibilities(hc.labels[self.n_components], self.n_components)
        sw = None if self.sample_weight is None else self.sample_weight[rows]
        return m_step_from_responsibilities(self.sample[rows], resp, self.covariance_type, self.hyper,
                                            self.reg_covar, sw)

    def draw(self, method: str, rng: np.random.Generator) -> Params:
        """One restart's initial parameters by ``method`` (blocks' frame).

        ``"user"``: the given values, completed from assignments to the given
        means (or to k-means++ centres).
        """
        if method == "hc":
            start = self.hc_start
        else:
            start = initial_parameters(self.sample, self.n_components, self.covariance_type,
                                       "kmeans++" if method == USER_START else method, rng,
                                       self.hyper, self.reg_covar, self.sample_weight,
                                       self.given if method == USER_START else None)
        return self._with_noise(start)

    def draw_all(self, methods: list[str], rngs: list[np.random.Generator]) -> list[Params]:
        """Every restart's initial parameters, ``draw(methods[r], rngs[r])`` for each r, in order.

        The k-means++ restarts are seeded, clustered and turned into parameters
        together (one set of numpy passes for all of them,
        :func:`kmeans_responsibilities`), when the first of them is reached;
        each draws from its own generator as it would alone.
        """
        batch = [r for r, method in enumerate(methods) if method == "kmeans++"]
        starts: dict[int, Params] = {}
        for r, (method, rng) in enumerate(zip(methods, rngs)):
            if r in starts:
                continue
            if method == "kmeans++" and len(batch) > 1:
                starts |= dict(zip(batch, self._kmeans_starts([rngs[b] for b in batch])))
            else:
                starts[r] = self.draw(method, rng)
        return [starts[r] for r in range(len(methods))]

    def _kmeans_starts(self, rngs: list[np.random.Generator]) -> list[Params]:
        """k-means++ starts from ``rngs``, computed as one batch (one M-step for all)."""
        resp = kmeans_responsibilities(self.sample, self.n_components, rngs, self.sample_weight)
        params = m_step_from_responsibilities(self.sample, resp, self.covariance_type, self.hyper,
                                              self.reg_covar, self.sample_weight)
        return [self._with_noise(params.take(j)) for j in range(len(rngs))]

    def _with_noise(self, start: Params) -> Params:
        return start if self.log_noise_density is None else with_noise(start, self.log_noise_density)

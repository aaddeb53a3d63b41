r"""Bootstrap weights, drawn chunk by chunk, so they never need the whole data at once.

A bootstrap replicate refits the model on the same rows with new observation
weights (mclust's ``MclustBootstrap`` types ``"bs"`` and ``"wlbs"``):

``"nonparametric"``
    Multinomial counts: ``c ~ Multinomial(n, (1/n, ..., 1/n))``, the number of
    times each row is drawn when resampling n rows with replacement. Weighting
    row i by ``c_i`` is the same fit as on the resampled copy (EM's statistics
    are sums over rows), without making the copy.
``"weighted"``
    The weighted likelihood bootstrap (Newton & Raftery 1994):
    ``w = n * Dirichlet(1, ..., 1)``, i.e. ``w_i = n E_i / sum_j E_j`` with
    ``E_i ~ Exponential(1)``. Scaled to sum to n so that a prior weighs as much
    against the data as in the original fit (mclust scales to ``max(w) = 1``,
    which changes only its MAP fits, not its MLEs).

Rows come in chunks of sizes ``m_1..m_C`` (one chunk for in-memory data). A
multinomial over all n rows splits exactly into chunk totals
``T ~ Multinomial(n, (m_1/n, ..., m_C/n))`` and, given ``T_c``, counts within chunk
c ``~ Multinomial(T_c, uniform over its m_c rows)``; exponentials are drawn per
chunk and scaled by their total over all chunks. Every (replicate b, chunk c)
draws from its own stream ``SeedSequence(seed, spawn_key=(b, c + 1))``, the chunk
totals from ``spawn_key=(b, 0)``, so a replicate's weights depend only on the
seed, b and the chunking, not on which replicates are computed together.
"""

from __future__ import annotations

import numpy as np

RESAMPLING_KINDS = ("nonparametric", "weighted")


def replicate_stream(seed: int, replicate: int, chunk: int = -1) -> np.random.Generator:
    """The random stream of one replicate (``chunk = -1``: its totals or simulation) or one chunk."""
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(int(replicate), int(chunk) + 1)))


def chunk_totals(seed: int, replicates: np.ndarray, sizes: np.ndarray) -> np.ndarray:
    """Rows drawn from each chunk, (B, C): ``Multinomial(n, sizes / n)`` per replicate."""
    sizes = np.asarray(sizes, dtype=np.int64)
    n = int(sizes.sum())
    return np.stack([replicate_stream(seed, b).multinomial(n, sizes / n) for b in replicates])


def multinomial_chunk(seed: int, replicates: np.ndarray, chunk: int, totals: np.ndarray, m: int) -> np.ndarray:
    """Counts (B, m) of the rows of one chunk, given each replicate's total for it."""
    uniform = np.full(m, 1.0 / m)
    return np.stack([replicate_stream(seed, b, chunk).multinomial(int(t), uniform)
                     for b, t in zip(replicates, totals)]).astype(np.float64)


def exponential_chunk(seed: int, replicates: np.ndarray, chunk: int, m: int) -> np.ndarray:
    """Exponential(1) draws (B, m) for the rows of one chunk."""
    return np.stack([replicate_stream(seed, b, chunk).standard_exponential(m) for b in replicates])


def resampling_weights(kind: str, seed: int, replicates: np.ndarray, n: int) -> np.ndarray:
    """All (B, n) weights of in-memory rows (one chunk)."""
    replicates = np.asarray(replicates)
    if kind == "nonparametric":
        return multinomial_chunk(seed, replicates, 0, np.full(replicates.size, n), n)
    E = exponential_chunk(seed, replicates, 0, n)
    return E * (n / E.sum(axis=1, keepdims=True))

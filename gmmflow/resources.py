"""Up-front memory estimates: refuse work the machine cannot hold, before it starts.

Every size a user controls enters an estimate: rows, features, K (and a
K range), restarts (``n_init``), chains x draws, predictive replicates,
rows per chunk, rows drawn by ``sample_em``/``simulate``. Each estimate
counts the large float64 arrays a workflow holds at once (data copies,
responsibilities, per-restart parameters, stored draws with the copies
relabelling makes, pointwise log-likelihoods, predictive draws), phase by
phase where a workflow frees some before it makes others; the sampler's
own state and Python object overhead are ignored. The estimates
are lower bounds of the peak, so a refusal is never a false alarm
(``tests/test_faults.py`` measures the peak of a run with ``tracemalloc``
against its estimate).

Time is not bounded: a long run (many restarts, many draws) is the
user's choice and can be interrupted (Ctrl-C) without leaving output.
"""

from __future__ import annotations

import os

from gmmflow.checks import summarize_values

FLOAT = 8  # bytes
GIB = 2.0**30


def available_memory() -> float:
    """Bytes of memory available to this process now (Linux ``MemAvailable``, else total RAM)."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return float(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return float(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    except (ValueError, OSError, AttributeError):  # pragma: no cover - non-POSIX
        return float("inf")


def covariance_entries(covariance_type: str, k: int, d: int) -> int:
    """Numbers in one compact covariance parameter: K d^2 (full), d^2 (tied), K d (diag), K (spherical)."""
    return {"full": k * d * d, "tied": d * d, "diag": k * d, "spherical": k}[covariance_type]


def restart_bytes(d: int, k: int, covariance_type: str = "full") -> float:
    """One EM restart kept in a result: weights, means, the compact covariance and its Cholesky factor,
    the full covariances of ``em_restarts`` and at least two trace entries."""
    return FLOAT * (k + k * d + 2 * covariance_entries(covariance_type, k, d) + k * d * d + 2)


def em_bytes(n: int, d: int, k: int, n_init: int = 1, covariance_type: str = "full") -> float:
    """fit_em on an in-memory array: the validated copy, the stored data, responsibilities
    (working and kept), and every restart's parameters."""
    return FLOAT * n * (2 * d + 2 * k) + n_init * restart_bytes(d, k, covariance_type)


def chunked_em_bytes(n: int, d: int, k: int, chunk_rows: int, stored: bool, n_init: int = 1,
                     covariance_type: str = "full", missing: bool = False) -> float:
    """fit_em on chunked data: one chunk in flight (its values and responsibilities), the observed data
    and responsibilities when they are stored, and every restart's parameters. With ``missing`` (NaN
    marginalized), a chunk's kernel also holds a copy of its observed values and its missingness
    mask, and per pattern (at most ``min(chunk_rows, 2^d)``) the marginal and conditional of every
    component (about ``2 k d^2`` values)."""
    kept = FLOAT * n * (d + k) if stored else 0.0
    patterns = FLOAT * (chunk_rows * (d + 1) + min(chunk_rows, 2 ** min(d, 62)) * 2 * k * d * d) if missing else 0.0
    return FLOAT * chunk_rows * (d + 2 * k) + patterns + kept + n_init * restart_bytes(d, k, covariance_type)


def posterior_bytes(n: int, d: int, k: int, chains: int, draws: int, predictive: bool,
                    covariance_type: str = "full", n_init: int = 1, loo: bool = False) -> float:
    """sample_posterior: the EM fit, then the larger of its two phases.

    While the draws are relabelled: the backend's raw draws (compact
    covariances), the draws as full covariances and their relabelled copy.
    After: the raw and relabelled draws, each draw's Cholesky factors, the
    pointwise log-likelihood (plus two working copies when ``loo``: PSIS-LOO
    in ``select_components`` and ``run``), assignment probabilities and
    predictive replicates if asked.
    """
    s = chains * draws
    compact = covariance_entries(covariance_type, k, d)
    raw = FLOAT * s * (k + k * d + compact)
    relabelled = FLOAT * s * (k + k * d + k * d * d)
    relabelling = raw + FLOAT * s * k * d * d + relabelled
    after = raw + relabelled + FLOAT * (s * compact + s * n * (3 if loo else 1) + n * k
                                        + (s * n * d if predictive else 0))
    return em_bytes(n, d, k, n_init, covariance_type) + max(relabelling, after)


def sample_bytes(n: int, d: int) -> float:
    """``n`` rows drawn from a mixture: the values, their labels and one working copy."""
    return FLOAT * n * (2 * d + 1)


def check_memory(needed: float, what: str, fix: str, available: float | None = None) -> None:
    """Raise ``MemoryError`` naming the estimate if ``needed`` bytes exceed what is available."""
    available = available_memory() if available is None else available
    if needed > available:
        raise MemoryError(
            f"{what} needs an estimated {needed / GIB:.1f} GiB of memory but only "
            f"{available / GIB:.1f} GiB is available; {fix}."
        )


def describe_ks(ks) -> str:
    """A K grid for a message: ``K = 3``, ``K in [1, 2, 4]``, ``K in 1..272 (272 values)``."""
    ks = list(ks)
    return f"K = {ks[0]}" if len(ks) == 1 else f"K in {summarize_values(ks)}"

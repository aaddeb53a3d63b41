"""Up-front memory estimates: refuse work the machine cannot hold, before it starts.

Each estimate counts the large float64 arrays a workflow keeps (data copies,
responsibilities, pointwise log-likelihoods, predictive draws); small
per-component arrays and the sampler's own state are ignored. The estimates
are lower bounds of the peak, so a refusal is never a false alarm.
"""

from __future__ import annotations

import os

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


def em_bytes(n: int, d: int, k: int) -> float:
    """fit_em on an in-memory array: the validated copy, the stored data, responsibilities."""
    return FLOAT * n * (2 * d + 2 * k)


def posterior_bytes(n: int, d: int, k: int, chains: int, draws: int, predictive: bool) -> float:
    """sample_posterior: pointwise log-likelihood (kept, plus two working copies for LOO),
    assignment probabilities, and predictive replicates if asked."""
    s = chains * draws
    return em_bytes(n, d, k) + FLOAT * (3 * s * n + n * k + (s * n * d if predictive else 0))


def check_memory(needed: float, what: str, fix: str, available: float | None = None) -> None:
    """Raise ``MemoryError`` naming the estimate if ``needed`` bytes exceed what is available."""
    available = available_memory() if available is None else available
    if needed > available:
        raise MemoryError(
            f"{what} needs an estimated {needed / GIB:.1f} GiB of memory but only "
            f"{available / GIB:.1f} GiB is available; {fix}."
        )

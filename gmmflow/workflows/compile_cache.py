"""Compile once, reuse: compiled samplers kept for the process, compiled code kept on disk.

In memory: :func:`compiled` keeps what a backend built for a key, (backend,
covariance type, K, n, d, ...); the data and the hyper-parameters are inputs
of what is compiled, never part of the key, so ``select_components``, repeated
``sample_posterior`` calls and new data of the same shape reuse it.
``builds`` counts the builds per key (what the tests check).

On disk: JAX's persistent compilation cache goes to the user's cache
directory (``platformdirs.user_cache_dir("gmmflow")``, i.e.
``$XDG_CACHE_HOME/gmmflow`` or ``~/.cache/gmmflow`` on Linux), never the
working directory; a later process loads the compiled XLA programs from it
instead of compiling them again. A cache directory the user set for JAX
(``JAX_COMPILATION_CACHE_DIR`` or ``jax.config``) is left as it is.
PyTensor's own caches (C modules, numba) live in its ``base_compiledir``
(``~/.pytensor`` by default).
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

_COMPILED: dict[tuple, Any] = {}
_LOCK = threading.Lock()
builds: Counter = Counter()


def compiled(key: tuple, build: Callable[[], Any]) -> Any:
    """What ``build()`` returns for ``key``, built on the first call of the process only."""
    with _LOCK:
        if key not in _COMPILED:
            _COMPILED[key] = build()
            builds[key] += 1
        return _COMPILED[key]


def clear() -> None:
    """Forget every compiled sampler of this process (the on-disk caches stay)."""
    with _LOCK:
        _COMPILED.clear()


def cache_directory() -> Path:
    """gmmflow's directory in the user's cache directory (not created here)."""
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("gmmflow"))


def use_persistent_jax_cache() -> Path | None:
    """Point JAX's compilation cache at ``cache_directory() / "jax"`` unless the user chose one.

    Every compiled program is kept (no minimum compile time or size). Returns
    the directory in use, or None when it cannot be created (JAX then
    compiles in every process, as without a cache).
    """
    import jax

    chosen = jax.config.jax_compilation_cache_dir
    if chosen:
        return Path(chosen)
    path = cache_directory() / "jax"
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError:
        return None
    jax.config.update("jax_compilation_cache_dir", str(path))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
    return path

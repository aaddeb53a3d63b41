"""Compile once, reuse: compiled samplers kept for the process, compiled code kept on disk.

In memory: :func:`compiled` keeps what a backend built for a key, (backend,
covariance type, K, n, d, ...); the data and the hyper-parameters are inputs
of what is compiled, never part of the key, so ``select_components``, repeated
``sample_posterior`` calls and new data of the same shape reuse it.
``builds`` counts the builds per key (what the tests check).

On disk, in the user's cache directory (``platformdirs.user_cache_dir("gmmflow")``,
i.e. ``$XDG_CACHE_HOME/gmmflow`` or ``~/.cache/gmmflow`` on Linux), never the
working directory:

* ``jax/``: JAX's persistent compilation cache; a later process loads the
  compiled XLA programs from it instead of compiling them again. A cache
  directory the user set for JAX (``JAX_COMPILATION_CACHE_DIR`` or
  ``jax.config``) is left as it is.
* ``programs/``: programs before compilation (e.g. numpyro's NUTS programs as
  serialized ``jax.export`` modules, :mod:`~gmmflow.workflows.numpyro_nuts`),
  one file per :func:`program_key`. A later process reads them instead of
  building the PyMC graph, turning it into JAX and tracing it again (about 2 s
  of every ``sample_posterior`` process on Faithful). The key holds the
  versions of gmmflow (and a digest of its source, so that an edited
  checkout does not read stale programs) and of the libraries the program
  was built with; a file that cannot be read is rebuilt and replaced.
PyTensor's own caches (C modules, numba) live in its ``base_compiledir``
(``~/.pytensor`` by default).
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import threading
from collections import Counter
from collections.abc import Callable
from functools import cache
from importlib import metadata
from pathlib import Path
from typing import Any

_COMPILED: dict[tuple, Any] = {}
_LOCK = threading.RLock()  # re-entrant: a build may need another compiled piece
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
    # Start JAX's CPU backend now. Importing pymc.sampling.jax (which turns the PyMC graph into JAX)
    # sets XLA_FLAGS to force 100 host devices; a backend started after that import has other devices,
    # and the devices are part of every cache key. A process that reads stored programs never imports
    # it, so without this its keys would differ from those of the process that traced the programs.
    jax.devices()
    return path


@cache
def source_digest() -> str:
    """sha256 of gmmflow's own source files (names and contents), computed once per process."""
    root = Path(__file__).resolve().parents[1]
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*.py")):
        digest.update(str(path.relative_to(root)).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def program_key(kind: str, libraries: tuple[str, ...], **parts) -> str:
    """The file name of a stored program: ``kind`` and a digest of ``parts`` (JSON-able), gmmflow's
    version and source digest, and the installed versions of ``libraries``."""
    from gmmflow._version import __version__

    versions = {name: metadata.version(name) for name in libraries}
    text = json.dumps({"gmmflow": __version__, "source": source_digest(), "versions": versions, **parts},
                      sort_keys=True, default=repr)
    return f"{kind}-{hashlib.sha256(text.encode()).hexdigest()[:32]}"


def read_program(key: str) -> list[bytes] | None:
    """The blobs stored under ``key`` by :func:`store_program`, or None (absent, unreadable, truncated)."""
    try:
        data = (cache_directory() / "programs" / key).read_bytes()
        blobs, at = [], 0
        while at < len(data):
            size = int.from_bytes(data[at:at + 8], "little")
            blobs.append(data[at + 8:at + 8 + size])
            if len(blobs[-1]) != size:
                return None
            at += 8 + size
        return blobs or None
    except (OSError, ValueError):
        return None


def store_program(key: str, blobs: list[bytes]) -> bool:
    """Store ``blobs`` under ``key``, whole or not at all (a temporary file renamed into place);
    False when the cache directory cannot be written (the program is then built in every process)."""
    directory = cache_directory() / "programs"
    try:
        directory.mkdir(parents=True, exist_ok=True)
        f = tempfile.NamedTemporaryFile(dir=directory, prefix=f".{key}.", delete=False)
    except OSError:
        return False
    try:
        with f:
            for blob in blobs:
                f.write(len(blob).to_bytes(8, "little"))
                f.write(blob)
        os.replace(f.name, directory / key)
    except OSError:
        Path(f.name).unlink(missing_ok=True)
        return False
    return True

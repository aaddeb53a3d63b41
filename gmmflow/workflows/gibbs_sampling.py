"""``sampler="gibbs"``: the conjugate blocked Gibbs sampler of :mod:`gmmflow.core.gibbs` as a backend.

``sample_posterior`` walks one path for every sampler (EM start ->
raw draws -> relabelling -> pointwise quantities -> one InferenceData ->
``diagnose``); this module supplies what differs for Gibbs:

- the data may be chunked (dask array, dask-backed DataArray, zarr store):
  :func:`gibbs_data` returns a blocks object for them as ``fit_em`` does,
  and every sweep is one pass over the blocks under the active dask
  scheduler, with memory O(chunk x K);
- :func:`run` returns the raw draws in the form of a NUTS backend's
  (``posterior`` with the covariance type's own variable, ``sample_stats``);
- the groups that grow with rows x draws are computed on a thinned subset
  of the draws (:func:`pointwise_draws`), and left out when the rows are
  not kept in memory (chunked input above ``fit_em``'s storage limit of
  1,000,000 rows); the root attrs ``pointwise_draws`` (draws per chain
  they hold; 0 when left out) and ``observed_data_stored`` say which.
"""

from __future__ import annotations

import os
import sys
from contextlib import contextmanager

import arviz as az
import numpy as np

from gmmflow.checks import check_noise_with_missing
from gmmflow.core.em_steps import Params
from gmmflow.core.assignment_draws import ChainStreams
from gmmflow.core.gibbs import run_chains
from gmmflow.core.hyperparameters import Hyperparameters
from gmmflow.core.missing_data import row_blocks
from gmmflow.core.row_blocks import default_chunk_size, default_n_threads
from gmmflow.inputs.chunked import ChunkedMatrix, as_chunked_matrix, is_chunked
from gmmflow.inputs.matrix import DataMatrix, as_data_matrix
from gmmflow.models.pymc_model import covariance_value_name
from gmmflow.resources import FLOAT, em_bytes
from gmmflow.workflows.em_fit import STORE_MAX_ROWS, chunked_blocks

GIBBS = "gibbs"
# values of the pointwise groups (log-likelihood, plus predictive replicates if asked) kept in memory:
# 5e7 float64 = 400 MB, so the log-likelihood and ArviZ's two working copies for LOO stay near 1.2 GB
POINTWISE_MAX_VALUES = 50_000_000


def gibbs_data(model, X, chunk_size: int | None = None, missing: bool = False):
    """``(data record, blocks)``: in-memory input as ``DataMatrix`` and ``ArrayBlocks`` (``MissingBlocks``
    when ``missing`` and some cells are NaN), chunked input (dask array, dask-backed DataArray, zarr
    path) as ``ChunkedMatrix`` and ``DaskBlocks`` (``MissingDaskBlocks`` when ``missing`` and some
    cells are NaN).

    Raises what ``fit_em`` raises on bad data, before any work.
    """
    K = model.n_components
    if is_chunked(X):
        data = as_chunked_matrix(X, chunk_size, missing)
        return data, chunked_blocks(model, data, default_chunk_size(K, data.shape[1]))
    data = as_data_matrix(X, missing=missing)
    n, d = data.shape
    chunk = default_chunk_size(K, d)
    threads = default_n_threads(n, chunk, os.cpu_count() or 1)
    check_noise_with_missing(model.noise, missing and bool(np.isnan(data.values).any()))
    return data, row_blocks(data.values, chunk_size=chunk, n_threads=threads)


def stored_rows(data: DataMatrix | ChunkedMatrix) -> int:
    """How many rows the result keeps (see :func:`stored_data`)."""
    return kept_rows(data.shape[0], not isinstance(data, DataMatrix))


def kept_rows(n: int, chunked: bool) -> int:
    """Rows a result on ``n`` rows keeps: all in memory; chunked, none above ``STORE_MAX_ROWS``."""
    return n if not chunked or n <= STORE_MAX_ROWS else 0


def pointwise_size(n: int, d: int, chunked: bool, chains: int, draws: int, predictive: bool) -> tuple[int, int]:
    """``(rows, draws of all chains)`` of the pointwise groups a Gibbs result on ``n x d`` data holds,
    known before any work (for the CLI's free-space check)."""
    rows = kept_rows(n, chunked)
    return rows, chains * len(pointwise_draws(rows, d, chains, draws, predictive))


def stored_data(data: DataMatrix | ChunkedMatrix) -> DataMatrix:
    """The rows the result keeps: all of in-memory data; chunked data up to ``STORE_MAX_ROWS``
    rows (read into memory), else none (a (0, d) record)."""
    if isinstance(data, DataMatrix):
        return data
    values = data.values.compute() if stored_rows(data) else np.empty((0, data.shape[1]))
    return DataMatrix(values, data.features, np.arange(values.shape[0]))


def pointwise_draws(n_stored: int, n_features: int, chains: int, draws: int, predictive: bool) -> np.ndarray:
    """Draw numbers (the same in every chain) on which the pointwise groups are computed.

    Every draw while ``rows x draws x (1 + d if predictive)`` values fit in
    :data:`POINTWISE_MAX_VALUES`, else evenly thinned to fit (at least one
    draw per chain); none when no rows are stored.
    """
    if n_stored == 0:
        return np.arange(0)
    per_draw = n_stored * chains * (1 + (n_features if predictive else 0))
    keep = max(1, min(draws, POINTWISE_MAX_VALUES // per_draw))
    return np.unique(np.linspace(0, draws - 1, keep).round().astype(int))


def gibbs_bytes(n_in_memory: int, n_stored: int, d: int, k: int, chains: int, draws: int, kept: int,
                predictive: bool) -> float:
    """Memory of a Gibbs run: in-memory data (as ``fit_em``), the draws (full covariances, kept about
    four times over while relabelled and stored), and the pointwise groups on ``kept`` draws per chain
    (the log-likelihood thrice, for LOO, and predictive replicates)."""
    draw_values = chains * draws * k * (1 + d + d * d)
    pointwise = chains * kept * n_stored * (3 + (d if predictive else 0)) + n_stored * k
    return em_bytes(n_in_memory, d, k) + FLOAT * (4 * draw_values + pointwise)


@contextmanager
def progress_bar(total: int, enabled: bool):
    """A ``tick(i)`` callback drawing a progress bar on stderr when it is a terminal (else a no-op)."""
    if not (enabled and sys.stderr.isatty()):
        yield None
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    columns = (TextColumn("Gibbs sweeps"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with Progress(*columns, console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task("sweeps", total=total)
        yield lambda i: bar.update(task, completed=i + 1)


def run(blocks, start: Params, hyper: Hyperparameters, draws: int, tune: int, chains: int,
        seed: np.random.SeedSequence, progressbar: bool) -> az.InferenceData:
    """Raw Gibbs draws from ``start`` (the EM estimate, data frame): ``posterior`` and ``sample_stats``.

    ``posterior`` holds ``w``, ``mu`` and the covariance type's own variable
    (``cov`` for full/tied, ``var`` for diag/spherical, compact shapes), as
    the PyMC model names them; ``sample_stats`` holds ``lp``, the log
    posterior density ``log p(X | theta) + log p(theta)`` of each draw (every
    normalising constant: EM's objective). The sweeps run about the EM
    mixture's mean (``sum_k w_k mu_k / sum_k w_k`` over the Gaussians), so
    second moments keep their digits. A noise model's ``w`` has K+1 entries,
    the noise's last; rows with missing cells (``MissingBlocks``) have them
    drawn in every sweep (``lp`` then holds the observed-data likelihood).
    """
    gauss = start.weights[:start.means.shape[0]]
    shift = gauss @ start.means / gauss.sum()
    streams = ChainStreams.spawn(seed, chains)
    with progress_bar(tune + draws, progressbar) as tick:
        out = run_chains(blocks.with_shift(shift), start.shifted(-shift), hyper.shifted(shift), streams, tune,
                         draws, tick)
    posterior = {"w": out.weights, "mu": out.means + shift, covariance_value_name(start.covariance_type): out.cov}
    idata = az.from_dict(posterior=posterior, sample_stats={"lp": out.log_likelihood + out.log_prior})
    idata.sample_stats.attrs["sampler"] = GIBBS
    return idata

"""Fingerprints of the data a result was fitted on: shape, names, a hash of the values and weights.

Every result records one (root attr ``data_fingerprint``, JSON); a function
that combines a result with data or with another result compares them, so
an EM fit of other data is never used as if it were of this data.

What is hashed: the data as gmmflow fitted them, i.e. the float64 values
(little-endian, row-major, columns in the fit's feature order), cut into
blocks of ``block_rows`` rows. Each block's bytes are hashed with BLAKE2b
(32-byte digest) and the result is the BLAKE2b digest of the concatenated
block digests. In-memory data are one block (``block_rows = n``); chunked
data (dask, zarr) are hashed chunk by chunk in the same pass that checks
them for NaN, so ``block_rows`` is their row chunk size, and data held in
memory are compared with a chunked fit by re-hashing them in its blocks.
Weights (as used: rescaled, see ``checks.check_sample_weight``) are hashed
the same way, as one block.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import asdict, dataclass

import numpy as np

from gmmflow.checks import summarize_values

DIGEST_SIZE = 32


def block_digest(block: np.ndarray) -> bytes:
    """BLAKE2b digest of a block's float64 values (little-endian, row-major)."""
    data = np.ascontiguousarray(block, dtype="<f8")
    return hashlib.blake2b(data.tobytes(), digest_size=DIGEST_SIZE).digest()


def combine_digests(digests: Iterable[bytes]) -> str:
    """The hash of a sequence of block digests, as hex text."""
    return hashlib.blake2b(b"".join(digests), digest_size=DIGEST_SIZE).hexdigest()


def hash_values(values: np.ndarray, block_rows: int | None = None) -> str:
    """Hash of ``values`` cut into blocks of ``block_rows`` rows (default: one block)."""
    n = values.shape[0]
    step = max(int(block_rows or n), 1)
    return combine_digests(block_digest(values[a:a + step]) for a in range(0, max(n, 1), step))


@dataclass(frozen=True)
class DataFingerprint:
    """What identifies a data set: its shape, feature names, and hashes of its values and weights.

    ``named`` is False when the names were made up (``x0, x1, ...`` for a
    plain array). ``weights_hash`` is None for an unweighted fit.
    """

    n_obs: int
    features: tuple
    named: bool
    values_hash: str
    block_rows: int
    weights_hash: str | None = None

    @classmethod
    def of_values(cls, values: np.ndarray, features, named: bool, sample_weight=None,
                  block_rows: int | None = None) -> DataFingerprint:
        """The fingerprint of in-memory ``values`` (n, d), hashed in blocks of ``block_rows`` rows."""
        n = int(values.shape[0])
        block_rows = int(block_rows or n)
        weights = None if sample_weight is None else hash_values(np.asarray(sample_weight, np.float64))
        return cls(n, tuple(str(f) for f in features), bool(named), hash_values(values, block_rows),
                   block_rows, weights)

    @property
    def shape(self) -> tuple[int, int]:
        return self.n_obs, len(self.features)

    def to_json(self) -> str:
        return json.dumps(asdict(self) | {"features": list(self.features)})

    @classmethod
    def from_json(cls, text: str) -> DataFingerprint:
        record = json.loads(text)
        return cls(int(record["n_obs"]), tuple(record["features"]), bool(record["named"]),
                   str(record["values_hash"]), int(record["block_rows"]), record.get("weights_hash"))

    def describe(self) -> str:
        """``272 x 2 (eruptions, waiting), values 3f9a0c1d2e4b, unweighted``."""
        names = ", ".join(self.features) if len(self.features) <= 6 else summarize_values(list(self.features))
        weights = "unweighted" if self.weights_hash is None else f"weights {self.weights_hash[:12]}"
        return f"{self.n_obs} x {len(self.features)} ({names}), values {self.values_hash[:12]}, {weights}"

    def differences(self, other: DataFingerprint) -> list[str]:
        """How the data of two fingerprints differ (empty when they are the same data; weights not compared).

        Names count only when both sides have given names; values are compared
        by hash, so ``other`` must be hashed in the same blocks.
        """
        if self.shape != other.shape:
            return [f"shape {self.shape} vs {other.shape}"]
        if self.named and other.named and self.features != other.features:
            return [f"features {list(self.features)} vs {list(other.features)}"]
        return ["the values differ"] if self.values_hash != other.values_hash else []

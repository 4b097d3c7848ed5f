"""Categorical vocabularies with hashed out-of-vocabulary buckets, and dense normalisation."""

from __future__ import annotations

import zlib
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np

from towers.errors import FeatureError

__all__ = ["DenseStats", "Vocabulary"]

PAD = 0  # index 0 is padding in every vocabulary (empty sequence slots, missing values)


@dataclass
class Vocabulary:
    """str -> int: 0 padding, 1..n_oov hashed unknowns, then the known tokens in order.

    Unknown values (new users, new items) land in a stable hash bucket, so they get a
    usable embedding instead of an error, and the same unknown always lands in the same one.
    """

    tokens: list[str]
    n_oov: int = 1
    _index: dict[str, int] = field(default_factory=dict, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.n_oov < 1:
            raise FeatureError("a vocabulary needs at least one out-of-vocabulary bucket")
        offset = 1 + self.n_oov
        self._index = dict(zip(self.tokens, range(offset, offset + len(self.tokens)),
                               strict=True))
        if len(self._index) != len(self.tokens):
            raise FeatureError("vocabulary tokens must be unique")

    @classmethod
    def build(cls, values: Iterable[str], *, min_count: int = 1, n_oov: int = 1,
              max_size: int | None = None) -> Vocabulary:
        """Tokens seen at least `min_count` times, most frequent first (ties by value)."""
        counts = Counter(v for v in values if v != "")
        kept = sorted((t for t, c in counts.items() if c >= min_count),
                      key=lambda t: (-counts[t], t))
        return cls(tokens=kept[:max_size] if max_size else kept, n_oov=n_oov)

    @property
    def size(self) -> int:
        return 1 + self.n_oov + len(self.tokens)

    def __len__(self) -> int:
        return self.size

    def oov_bucket(self, value: str) -> int:
        return 1 + zlib.crc32(value.encode("utf-8")) % self.n_oov

    def encode_one(self, value: str) -> int:
        if value == "":
            return PAD
        idx = self._index.get(value)
        return idx if idx is not None else self.oov_bucket(value)

    def encode(self, values: Sequence[str] | np.ndarray) -> np.ndarray:
        get = self._index.get
        out = [get(v) for v in values]
        return np.fromiter(
            (i if i is not None else (PAD if v == "" else self.oov_bucket(v))
             for i, v in zip(out, values, strict=True)),
            dtype=np.int64, count=len(out),
        )

    def known(self, value: str) -> bool:
        return value in self._index

    def to_json(self) -> dict[str, object]:
        return {"tokens": self.tokens, "n_oov": self.n_oov}

    @classmethod
    def from_json(cls, obj: dict[str, object]) -> Vocabulary:
        tokens, n_oov = obj.get("tokens"), obj.get("n_oov")
        if not isinstance(tokens, list) or not all(isinstance(t, str) for t in tokens):
            raise FeatureError("vocabulary 'tokens' must be a list of strings")
        if not isinstance(n_oov, int):
            raise FeatureError("vocabulary 'n_oov' must be an integer")
        return cls(tokens=tokens, n_oov=n_oov)


@dataclass(frozen=True)
class DenseStats:
    """Mean and standard deviation of one dense feature, measured on training data."""

    mean: float = 0.0
    std: float = 1.0

    @classmethod
    def fit(cls, values: np.ndarray) -> DenseStats:
        finite = values[np.isfinite(values)]
        if len(finite) == 0:
            return cls()
        std = float(finite.std())
        return cls(mean=float(finite.mean()), std=std if std > 1e-6 else 1.0)

    def normalise(self, values: np.ndarray) -> np.ndarray:
        """(x - mean) / std; missing (NaN) values become 0, the mean."""
        out = (np.asarray(values, dtype=np.float64) - self.mean) / self.std
        return np.nan_to_num(out, nan=0.0, posinf=0.0, neginf=0.0).astype(np.float32)

    def to_json(self) -> dict[str, float]:
        return {"mean": self.mean, "std": self.std}

    @classmethod
    def from_json(cls, obj: dict[str, object]) -> DenseStats:
        mean, std = obj.get("mean"), obj.get("std")
        if not isinstance(mean, int | float) or not isinstance(std, int | float) or std <= 0:
            raise FeatureError("dense statistics need a numeric 'mean' and a positive 'std'")
        return cls(mean=float(mean), std=float(std))

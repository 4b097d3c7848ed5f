"""ItemIndex: external item ids, a faiss backend, a version tag, and input checks."""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from index.backends import Backend
from index.concurrency import ReadWriteLock, omp_threads
from index.config import IndexConfig
from index.errors import IndexInputError, IndexVersionError
from index.idmap import IdMap, check_unique, encode_ids
from index.versions import VersionState, check_move

logger = logging.getLogger(__name__)

VERSION_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


@dataclass(frozen=True)
class SearchResult:
    ids: np.ndarray  # (nq, k) str; "" pads rows with fewer than k reachable items
    scores: np.ndarray  # (nq, k) float32, best first; -inf pads
    version: str  # the index version that answered

    def rows(self) -> list[list[tuple[str, float]]]:
        """Per query, (item id, score) pairs without padding."""
        return [[(i, float(s)) for i, s in zip(ids, scores, strict=True) if i]
                for ids, scores in zip(self.ids.tolist(), self.scores.tolist(), strict=True)]


def check_version(version: str) -> str:
    if not isinstance(version, str) or not VERSION_RE.match(version):
        raise IndexInputError(f"version {version!r} must be 1-128 characters of letters, digits, "
                              "'.', '_' or '-', starting with a letter or digit")
    return version


def as_vectors(vectors: object, dim: int, *, metric: str, what: str) -> np.ndarray:
    """Validated (n, dim) float32 C-contiguous copy-if-needed; normalised for cosine."""
    x = np.asarray(vectors)
    if x.ndim != 2:
        raise IndexInputError(f"{what} must be a 2-D (n, {dim}) array, got shape {x.shape}; "
                              "wrap a single vector as v[None, :]")
    if x.dtype.kind not in "fiu":
        raise IndexInputError(f"{what} must be numeric, got dtype {x.dtype}")
    if x.shape[1] != dim:
        raise IndexInputError(f"{what} have dimension {x.shape[1]}, the index has {dim}: "
                              "use embeddings from the tower this index was built with")
    x = np.ascontiguousarray(x, dtype=np.float32)
    bad = np.flatnonzero(~np.isfinite(x).all(axis=1))
    if len(bad):
        raise IndexInputError(f"{len(bad)} of {len(x)} {what} contain NaN or inf (rows "
                              f"{bad[:5].tolist()}); fix the embeddings before indexing")
    if metric == "cosine":
        norms = np.linalg.norm(x, axis=1, keepdims=True)
        zero = np.flatnonzero(norms[:, 0] == 0)
        if len(zero):
            raise IndexInputError(f"{len(zero)} {what} are zero and have no direction for cosine "
                                  f"(rows {zero[:5].tolist()})")
        x = x / norms
    return x


class ItemIndex:
    """Searchable item vectors under stable string ids, tagged with a version.

    Searches may run from many threads; add, upsert and remove wait for running searches
    and block new ones while they change the index (faiss is not safe otherwise).
    """

    def __init__(self, *, backend: Backend, idmap: IdMap, config: IndexConfig, version: str,
                 checkpoint: str = "", state: VersionState = VersionState.BUILDING) -> None:
        assert backend.count() == len(idmap), "backend and id map disagree"
        self._backend = backend
        self._idmap = idmap
        self._config = config
        self._version = check_version(version)
        self._checkpoint = checkpoint
        self._state = state
        self._lock = ReadWriteLock()

    def __len__(self) -> int:
        return len(self._idmap)

    def __repr__(self) -> str:
        return (f"ItemIndex(version={self._version!r}, backend={self.backend!r}, "
                f"items={len(self)}, dim={self.dim}, state={self._state.name})")

    @property
    def version(self) -> str:
        return self._version

    @property
    def checkpoint(self) -> str:
        """Id of the tower checkpoint whose item embeddings this index holds."""
        return self._checkpoint

    @property
    def config(self) -> IndexConfig:
        return self._config

    @property
    def state(self) -> VersionState:
        return self._state

    @property
    def metric(self) -> str:
        return self._config.metric

    @property
    def dim(self) -> int:
        return self._backend.dim

    @property
    def backend(self) -> str:
        return self._backend.name

    @property
    def search_params(self) -> dict[str, int]:
        return self._backend.search_params()

    def search(self, vectors: object, k: int) -> SearchResult:
        """Top-k items by inner product (cosine when so configured) for each query row."""
        if isinstance(k, bool) or not isinstance(k, int | np.integer) or k < 1:
            raise IndexInputError(f"k must be a positive integer, not {k!r}")
        q = as_vectors(vectors, self.dim, metric=self.metric, what="query vectors")
        with self._lock.read(), omp_threads(self._config.search_threads):
            kk = min(int(k), len(self._idmap))
            if kk == 0 or not len(q):
                return self._result(np.zeros((len(q), 0), np.float32), np.zeros((len(q), 0)))
            scores, slots = self._backend.search(q, kk)
            return self._result(scores, slots)

    def exact_search(self, vectors: object, k: int) -> SearchResult:
        """Brute-force top-k over the stored vectors, whatever the backend (for calibration)."""
        q = as_vectors(vectors, self.dim, metric=self.metric, what="query vectors")
        with self._lock.read(), omp_threads(self._config.search_threads):
            if not len(self._idmap):
                return self._result(np.zeros((len(q), 0), np.float32), np.zeros((len(q), 0)))
            live = np.zeros(self._idmap.n_slots, dtype=bool)
            live[self._idmap.live_slots()] = True
            kk = min(int(k), len(self._idmap))
            return self._result(*self._backend.exact_search(q, kk, live))

    def add(self, ids: Sequence[str], vectors: object) -> None:
        """Add items whose ids are not in the index yet."""
        keys, x = self._inputs(ids, vectors)
        with self._lock.write():
            self._check_mutable()
            known = self._idmap.lookup(keys) >= 0
            if known.any():
                raise IndexInputError(f"{int(known.sum())} ids are already in the index "
                                      f"({self._names(keys[known])}): use upsert to replace them")
            self._insert(keys, x)

    def upsert(self, ids: Sequence[str], vectors: object) -> int:
        """Replace the vectors of known ids and add the others; returns how many were new."""
        keys, x = self._inputs(ids, vectors)
        with self._lock.write():
            self._check_mutable()
            slots = self._idmap.lookup(keys)
            old = slots >= 0
            if old.any():
                self._backend.remove(slots[old])
                if self._backend.reuses_slots:
                    self._backend.add(slots[old], x[old])
                else:
                    self._idmap.release(slots[old], reuse=False)
                    self._insert(keys[old], x[old])
            self._insert(keys[~old], x[~old])
            return int((~old).sum())

    def remove(self, ids: Sequence[str]) -> None:
        """Remove items; every id must be in the index."""
        keys = encode_ids(ids)
        check_unique(keys)
        with self._lock.write():
            self._check_mutable()
            slots = self._idmap.lookup(keys)
            if (slots < 0).any():
                raise IndexInputError(f"{int((slots < 0).sum())} ids are not in the index "
                                      f"({self._names(keys[slots < 0])}); nothing was removed")
            self._backend.remove(slots)
            self._idmap.release(slots, reuse=self._backend.reuses_slots)

    def set_search_params(self, **params: int) -> None:
        """Change search-time state (nprobe for ivf, ef_search for hnsw) between searches."""
        with self._lock.write():
            self._backend.set_search_params(**params)

    def mark_ready(self) -> None:
        """Seal a BUILDING index so it can be swapped in."""
        self._move(VersionState.READY)
        logger.info("index %s ready: %s items, backend %s", self._version, len(self), self.backend)

    def _move(self, to: VersionState) -> None:
        check_move(self._version, self._state, to)
        self._state = to

    def _check_mutable(self) -> None:
        if self._state is VersionState.RETIRED:
            raise IndexVersionError(f"index {self._version} is RETIRED: change the live version")

    def _inputs(self, ids: Sequence[str], vectors: object) -> tuple[np.ndarray, np.ndarray]:
        keys = encode_ids(ids)
        x = as_vectors(vectors, self.dim, metric=self.metric, what="item vectors")
        if len(keys) != len(x):
            raise IndexInputError(f"{len(keys)} ids for {len(x)} vectors: pass one id per row")
        check_unique(keys)
        return keys, x

    def _insert(self, keys: np.ndarray, x: np.ndarray) -> None:
        if len(keys):
            slots = self._idmap.insert(keys, reuse_free=self._backend.reuses_slots)
            self._backend.add(slots, x)

    def _result(self, scores: np.ndarray, slots: np.ndarray) -> SearchResult:
        slots = np.asarray(slots, dtype=np.int64)
        ids = self._idmap.external(slots)
        scores = np.where(slots < 0, -np.inf, scores).astype(np.float32)
        return SearchResult(ids=ids, scores=scores, version=self._version)

    @staticmethod
    def _names(keys: np.ndarray, limit: int = 3) -> str:
        names = [repr(k.decode("utf-8")) for k in keys[:limit]]
        return ", ".join(names) + (", ..." if len(keys) > limit else "")

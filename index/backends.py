"""Faiss backends behind `ItemIndex`: the common shape and the exact one (ivf.py, hnsw.py).

A backend stores vectors under int64 slots chosen by the id map and answers searches with
slots; it knows nothing of external ids, versions or files. Inputs arrive validated
(float32, C-contiguous, finite, normalised for cosine); callers hold the write lock
around `add` and `remove`, since faiss must not be mutated during a search.
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from typing import ClassVar, TypeVar

import faiss
import numpy as np

from index.config import IndexConfig
from index.errors import IndexInputError

logger = logging.getLogger(__name__)

IndexT = TypeVar("IndexT", bound=faiss.Index)


def expect_type(index: faiss.Index, kind: type[IndexT]) -> IndexT:
    """`index` as a `kind`: refuses a loaded index of another type than the backend writes."""
    if not isinstance(index, kind):
        raise ValueError(f"expected a {kind.__name__}, found {type(index).__name__}")
    return index


def downcast(index: faiss.Index, kind: type[IndexT], *, inside: bool = False) -> IndexT:
    """`index` as its concrete faiss class, which must be a `kind` (ValueError otherwise).

    faiss hands out the indexes it holds (the one inside an id map, HNSW storage) as its
    generic `Index`; `faiss.downcast_index` gives the class with that type's attributes.
    """
    concrete = faiss.downcast_index(index)
    if not isinstance(concrete, kind):
        where = " inside" if inside else ""
        raise ValueError(f"expected a {kind.__name__}{where}, found {type(concrete).__name__}")
    return concrete


class Backend(ABC):
    """Common shape of the backends; `index` is what gets written to disk."""

    name: ClassVar[str]
    reuses_slots: ClassVar[bool] = True  # False: a removed slot is never given out again

    def __init__(self, index: faiss.Index) -> None:
        self.index = index

    @classmethod
    @abstractmethod
    def create(cls, dim: int, n_items: int, config: IndexConfig) -> Backend:
        """An empty backend for about `n_items` vectors of dimension `dim`, untrained."""

    @classmethod
    @abstractmethod
    def restore(cls, index: faiss.Index, arrays: dict[str, np.ndarray], *, config: IndexConfig,
                live_slots: np.ndarray) -> Backend:
        """The backend around a loaded faiss index and its `arrays`; ValueError on a mismatch."""

    @property
    def dim(self) -> int:
        return int(self.index.d)

    def count(self) -> int:
        """Live (searchable) entries."""
        return int(self.index.ntotal)

    def train(self, vectors: np.ndarray, *, config: IndexConfig) -> None:
        """Fit whatever the backend learns from data; nothing for most."""
        return None  # a deliberate default, not an abstract method

    def add(self, slots: np.ndarray, vectors: np.ndarray) -> None:
        self.index.add_with_ids(vectors, slots)

    def remove(self, slots: np.ndarray) -> None:
        # the selector faiss's own wrapper builds for an array of ids
        removed = self.index.remove_ids(
            faiss.IDSelectorBatch(np.ascontiguousarray(slots, dtype=np.int64)))
        assert removed == len(slots), f"removed {removed} of {len(slots)} slots"

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(scores, slots), both (nq, k), best first; slot -1 pads missing results."""
        return self.index.search(queries, k)

    def exact_search(self, queries: np.ndarray, k: int,
                     live: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Brute force over the stored vectors: the reference when calibrating.

        `live` is a bool mask over slots; other slots are never returned.
        """
        return self.search(queries, k)

    def arrays(self) -> dict[str, np.ndarray]:
        """Extra arrays saved next to the faiss index."""
        return {}

    def empty_like(self) -> Backend:
        """An empty backend with the same trained state (quantizer, codebooks)."""
        raise NotImplementedError

    def search_params(self) -> dict[str, int]:
        return {}

    def set_search_params(self, **params: int) -> None:
        if params:
            raise IndexInputError(f"the {self.name} backend has no search parameters "
                                  f"{sorted(params)}")


class ExactBackend(Backend):
    """Brute-force inner product; removals compact the flat storage (O(n) memmove)."""

    name = "exact"

    @classmethod
    def create(cls, dim: int, n_items: int, config: IndexConfig) -> ExactBackend:
        return cls(faiss.IndexIDMap(faiss.IndexFlatIP(dim)))

    @classmethod
    def restore(cls, index: faiss.Index, arrays: dict[str, np.ndarray], *, config: IndexConfig,
                live_slots: np.ndarray) -> ExactBackend:
        idmap = expect_type(index, faiss.IndexIDMap)
        downcast(idmap.index, faiss.IndexFlatIP, inside=True)
        return cls(idmap)

    def empty_like(self) -> ExactBackend:
        return ExactBackend(faiss.IndexIDMap(faiss.IndexFlatIP(self.dim)))


def knn_live(queries: np.ndarray, vectors: np.ndarray, slot_of_row: np.ndarray,
             live: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Exact top-k over `vectors` rows, reported as slots, skipping slots not `live`."""
    row_live = live[slot_of_row] if len(slot_of_row) else np.zeros(0, dtype=bool)
    dead = int(len(row_live) - row_live.sum())
    wide = min(k + dead, len(vectors))
    scores, rows = faiss.knn(queries, vectors, wide, metric=faiss.METRIC_INNER_PRODUCT)
    slots = np.where(rows >= 0, slot_of_row[np.maximum(rows, 0)], -1)
    if dead:
        keep = (rows >= 0) & row_live[np.maximum(rows, 0)]
        order = np.argsort(~keep, axis=1, kind="stable")
        scores = np.where(np.take_along_axis(keep, order, 1),
                          np.take_along_axis(scores, order, 1), -np.inf)
        slots = np.where(np.isfinite(scores), np.take_along_axis(slots, order, 1), -1)
    return scores[:, :k].astype(np.float32), slots[:, :k].astype(np.int64)


BACKEND_NAMES = ("exact", "ivf", "hnsw")


def backend_class(name: str) -> type[Backend]:
    """The backend class stored under `name` ("exact", "ivf", "hnsw")."""
    from index.hnsw import HNSWBackend  # both modules import this one
    from index.ivf import IVFBackend

    classes: dict[str, type[Backend]] = {
        "exact": ExactBackend, "ivf": IVFBackend, "hnsw": HNSWBackend}
    return classes[name]

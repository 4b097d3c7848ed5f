"""The HNSW backend: a graph over flat vectors, with tombstones for removals."""

from __future__ import annotations

import faiss
import numpy as np

from index.backends import Backend, downcast, expect_type, knn_live
from index.config import IndexConfig
from index.errors import IndexInputError


class HNSWBackend(Backend):
    """HNSW graph over flat vectors; removals are tombstones filtered at search time.

    Faiss HNSW has no `remove_ids`, so a removed or replaced item leaves its node in the
    graph (still used for routing) and its slot is never reused; searches pass a bitmap
    of live slots. Tombstones cost memory and a little speed until the next rebuild.
    """

    name = "hnsw"
    reuses_slots = False
    index: faiss.IndexIDMap

    def __init__(self, index: faiss.IndexIDMap, *, dead: np.ndarray | None = None) -> None:
        super().__init__(index)
        self.hnsw_index = downcast(index.index, faiss.IndexHNSWFlat, inside=True)
        self.dead = np.zeros(0, dtype=bool) if dead is None else dead  # by slot
        self._params: faiss.SearchParameters | None = None  # HNSW ones that skip tombstones
        self._bitmap = np.zeros(0, dtype=np.uint8)  # the selector points into it
        self._selector: faiss.IDSelector | None = None  # the params do not own it
        self._refresh_filter()

    @classmethod
    def create(cls, dim: int, n_items: int, config: IndexConfig) -> HNSWBackend:
        inner = faiss.IndexHNSWFlat(dim, config.hnsw_m, faiss.METRIC_INNER_PRODUCT)
        inner.hnsw.efConstruction = config.hnsw_ef_construction
        inner.hnsw.efSearch = config.hnsw_ef_search
        return cls(faiss.IndexIDMap(inner))

    @classmethod
    def restore(cls, index: faiss.Index, arrays: dict[str, np.ndarray], *, config: IndexConfig,
                live_slots: np.ndarray) -> HNSWBackend:
        idmap = expect_type(index, faiss.IndexIDMap)
        downcast(idmap.index, faiss.IndexHNSWFlat, inside=True)
        stored = faiss.vector_to_array(idmap.id_map)
        dead = np.zeros(int(stored.max(initial=-1)) + 1, dtype=bool)
        dead[stored] = True
        dead[live_slots[live_slots < len(dead)]] = False
        return cls(idmap, dead=dead)

    def count(self) -> int:
        return int(self.index.ntotal) - int(self.dead.sum())

    def add(self, slots: np.ndarray, vectors: np.ndarray) -> None:
        super().add(slots, vectors)
        end = int(slots.max()) + 1 if len(slots) else 0
        if end > len(self.dead):
            self.dead = np.concatenate([self.dead, np.zeros(end - len(self.dead), bool)])
        self._refresh_filter()

    def remove(self, slots: np.ndarray) -> None:
        assert not self.dead[slots].any(), "slot removed twice"
        self.dead[slots] = True
        self._refresh_filter()

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        return self.index.search(queries, k, params=self._params)

    def exact_search(self, queries: np.ndarray, k: int,
                     live: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        storage = downcast(self.hnsw_index.storage, faiss.IndexFlat, inside=True)
        n = int(storage.ntotal)
        vectors = faiss.rev_swig_ptr(storage.get_xb(), n * self.dim).reshape(n, self.dim)
        slot_of_row = faiss.vector_to_array(self.index.id_map)
        return knn_live(queries, vectors, slot_of_row, live, k)

    def empty_like(self) -> HNSWBackend:
        h = self.hnsw_index.hnsw
        m = int(h.nb_neighbors(1))  # type: ignore[attr-defined]  # faiss: missing from its stubs
        inner = faiss.IndexHNSWFlat(self.dim, m, faiss.METRIC_INNER_PRODUCT)
        inner.hnsw.efConstruction = h.efConstruction
        inner.hnsw.efSearch = h.efSearch
        return HNSWBackend(faiss.IndexIDMap(inner))

    def search_params(self) -> dict[str, int]:
        return {"ef_search": int(self.hnsw_index.hnsw.efSearch)}

    def set_search_params(self, **params: int) -> None:
        ef = params.pop("ef_search", None)
        super().set_search_params(**params)
        if ef is not None:
            if ef < 1:
                raise IndexInputError(f"ef_search must be >= 1, not {ef}")
            self.hnsw_index.hnsw.efSearch = int(ef)
            self._refresh_filter()

    def _refresh_filter(self) -> None:
        """Search parameters that skip tombstones (None while there are none)."""
        if not self.dead.any():
            self._params = None
            return
        self._bitmap = np.packbits(~self.dead, bitorder="little")
        params = faiss.SearchParametersHNSW()  # type: ignore[attr-defined]  # faiss: not in stubs
        params.efSearch = int(self.hnsw_index.hnsw.efSearch)
        self._selector = faiss.IDSelectorBitmap(len(self._bitmap), faiss.swig_ptr(self._bitmap))
        params.sel = self._selector
        self._params = params

"""The IVF backend: fast-scan PQ lists whose candidates are re-scored exactly."""

from __future__ import annotations

import logging

import faiss
import numpy as np

from index.backends import Backend, downcast, expect_type, knn_live
from index.config import IndexConfig
from index.errors import IndexInputError

logger = logging.getLogger(__name__)

RERANK_CHUNK = 256  # queries re-scored at a time: bounds the (q, k', d) gather


class IVFBackend(Backend):
    """IVF lists of 4-bit PQ fast-scan codes; candidates re-scored from float vectors.

    On vectors with little structure (random unit vectors) the coarse lists prune poorly,
    so recall comes from scanning many lists cheaply (fast-scan codes, ~1 ns per code)
    and re-scoring `rerank * k` candidates exactly. The float vectors are kept in a
    slot-indexed array, which also makes upserts O(changed) and gives an exact reference
    for calibrating nprobe.
    """

    name = "ivf"

    def __init__(self, index: faiss.Index, vectors: np.ndarray, *, rerank: int) -> None:
        super().__init__(index)
        self.ivf = downcast(index, faiss.IndexIVFPQFastScan)
        self._vectors = vectors  # (capacity, d) float32, row = slot; grows geometrically
        self._rows = len(vectors)  # rows in use: 1 + the highest slot ever added
        self.rerank = rerank

    @classmethod
    def create(cls, dim: int, n_items: int, config: IndexConfig) -> IVFBackend:
        if dim % config.pq_dims:
            raise IndexInputError(f"pq_dims={config.pq_dims} does not divide dimension {dim}")
        nlist = config.resolve_nlist(n_items)
        index = faiss.IndexIVFPQFastScan(faiss.IndexFlatIP(dim), dim, nlist,
                                         dim // config.pq_dims, 4, faiss.METRIC_INNER_PRODUCT)
        index.by_residual = False  # one query lookup table for all lists, not one per list
        index.cp.niter = config.kmeans_iters
        index.cp.seed = config.seed
        index.cp.max_points_per_centroid = config.train_points_per_list
        index.nprobe = config.resolve_nprobe(nlist)
        return cls(index, np.empty((0, dim), dtype=np.float32), rerank=config.rerank)

    @classmethod
    def restore(cls, index: faiss.Index, arrays: dict[str, np.ndarray], *, config: IndexConfig,
                live_slots: np.ndarray) -> IVFBackend:
        ivf = expect_type(index, faiss.IndexIVFPQFastScan)
        vectors = arrays["vectors"]
        if vectors.shape[1:] != (ivf.d,) or len(vectors) < (live_slots.max(initial=-1) + 1):
            raise ValueError(f"vectors of shape {vectors.shape} do not cover the live slots")
        return cls(ivf, vectors, rerank=config.rerank)

    def train(self, vectors: np.ndarray, *, config: IndexConfig) -> None:
        nlist = self.ivf.nlist
        if len(vectors) < max(nlist, 2 * self.ivf.ksub):
            raise IndexInputError(f"{len(vectors)} vectors cannot train {nlist} IVF lists: "
                                  "use the exact backend or a smaller nlist")
        size = min(len(vectors), nlist * config.train_points_per_list)
        rng = np.random.default_rng(config.seed)
        sample = vectors[np.sort(rng.choice(len(vectors), size, replace=False))]
        self.index.train(sample)
        logger.info("trained IVF: %s lists, %s PQ sub-quantizers on %s vectors",
                    nlist, self.ivf.M, size)

    @property
    def vectors(self) -> np.ndarray:
        """The stored vectors by slot (freed slots are zero rows)."""
        return self._vectors[: self._rows]

    def add(self, slots: np.ndarray, vectors: np.ndarray) -> None:
        end = int(slots.max()) + 1 if len(slots) else 0
        if end > len(self._vectors):  # a build allocates exactly; later growth is geometric
            capacity = end if not self._rows else max(end, self._rows + self._rows // 4 + 64)
            grown = np.zeros((capacity, self.dim), dtype=np.float32)
            grown[: self._rows] = self.vectors
            self._vectors = grown
        self._rows = max(self._rows, end)
        self._vectors[slots] = vectors
        super().add(slots, vectors)

    def remove(self, slots: np.ndarray) -> None:
        before = self._list_sizes()
        super().remove(slots)
        self._clear_vacated(before)
        self._vectors[slots] = 0.0

    def _invlists(self) -> faiss.InvertedLists:
        invlists = self.ivf.invlists
        assert invlists is not None, "an IVF index owns its inverted lists"
        return invlists

    def _list_sizes(self) -> np.ndarray:
        invlists = self._invlists()
        return np.array([invlists.list_size(i) for i in range(self.ivf.nlist)], dtype=np.int64)

    def _clear_vacated(self, before: np.ndarray) -> None:
        """Zero the packed codes of entries a removal vacated in still-allocated blocks.

        Fast-scan lists pack 4-bit codes of a block of vectors together, and adding ORs
        new codes into their positions; `remove_ids` shrinks a list without clearing the
        positions it frees, so the next add would blend old and new codes.
        """
        invlists = faiss.downcast_InvertedLists(self._invlists())  # a BlockInvertedLists
        # faiss: BlockInvertedLists (and so n_per_block) is missing from its stubs
        per_block = int(invlists.n_per_block)  # type: ignore[attr-defined]
        packer = self.ivf.get_CodePacker()
        zero = np.zeros(packer.code_size, dtype=np.uint8)
        after = self._list_sizes()
        for list_no in np.flatnonzero(after < before):
            size = int(after[list_no])
            allocated = -(-size // per_block) * per_block
            codes = invlists.get_codes(int(list_no))
            for offset in range(size, min(int(before[list_no]), allocated)):
                packer.pack_1_c(faiss.swig_ptr(zero), offset, codes)

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        if not self.rerank:
            return self.index.search(queries, k)
        wide = min(k * self.rerank, max(self.count(), k))
        _, candidates = self.index.search(queries, wide)
        return rescore(queries, candidates, self.vectors, k)

    def exact_search(self, queries: np.ndarray, k: int,
                     live: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return knn_live(queries, self.vectors, np.arange(len(self.vectors)), live, k)

    def arrays(self) -> dict[str, np.ndarray]:
        return {"vectors": self.vectors}

    def empty_like(self) -> IVFBackend:
        index = faiss.clone_index(self.index)
        index.reset()
        return IVFBackend(index, np.empty((0, self.dim), dtype=np.float32), rerank=self.rerank)

    def search_params(self) -> dict[str, int]:
        return {"nprobe": int(self.ivf.nprobe), "nlist": int(self.ivf.nlist)}

    def set_search_params(self, **params: int) -> None:
        nprobe = params.pop("nprobe", None)
        super().set_search_params(**params)
        if nprobe is not None:
            if not 1 <= nprobe <= self.ivf.nlist:
                raise IndexInputError(f"nprobe must be in [1, {self.ivf.nlist}], not {nprobe}")
            self.ivf.nprobe = int(nprobe)


def rescore(queries: np.ndarray, candidates: np.ndarray, vectors: np.ndarray,
            k: int) -> tuple[np.ndarray, np.ndarray]:
    """Exact inner products of each query with its candidate slots; best k, best first."""
    nq, wide = candidates.shape
    k = min(k, wide)
    scores = np.empty((nq, k), dtype=np.float32)
    slots = np.empty((nq, k), dtype=np.int64)
    for a in range(0, nq, RERANK_CHUNK):
        cand = candidates[a : a + RERANK_CHUNK]
        s = np.matmul(vectors[np.maximum(cand, 0)], queries[a : a + RERANK_CHUNK, :, None])[..., 0]
        s[cand < 0] = -np.inf
        top = np.argpartition(-s, k - 1, axis=1)[:, :k] if k < wide else np.indices(s.shape)[1]
        top_s = np.take_along_axis(s, top, 1)
        order = np.argsort(-top_s, axis=1, kind="stable")
        scores[a : a + RERANK_CHUNK] = np.take_along_axis(top_s, order, 1)
        slots[a : a + RERANK_CHUNK] = np.take_along_axis(np.take_along_axis(cand, top, 1), order, 1)
    slots[~np.isfinite(scores)] = -1
    return scores, slots

"""IndexConfig: how an item index is built and searched.

Backends, all behind `ItemIndex`:
- "exact": `IndexFlatIP` behind an `IndexIDMap`; brute force, the reference answer.
- "ivf": an inverted file (k-means lists, flat coarse quantizer) of 4-bit PQ fast-scan codes,
  one sub-quantizer per dimension by default, whose candidates are re-scored exactly from the
  stored float vectors. Upserts and removals are cheap, so it is the large-catalogue default.
- "hnsw": `IndexHNSWFlat`; faiss cannot remove from it, so removed or replaced items become
  tombstones filtered at search time until the next rebuild.
"auto" picks "exact" up to `auto_threshold` items and "ivf" above.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import Any

from index.errors import IndexInputError

METRICS = ("ip", "cosine")
BACKENDS = ("auto", "exact", "ivf", "hnsw")
MIN_POINTS_PER_LIST = 39  # faiss k-means warns below this many training points per centroid


@dataclass(frozen=True)
class IndexConfig:
    metric: str = "ip"  # "ip" or "cosine" (= inner product of vectors normalised on the way in)
    backend: str = "auto"  # "auto", "exact", "ivf" or "hnsw"
    auto_threshold: int = 100_000  # "auto" uses exact search up to this many items
    nlist: int = 0  # IVF lists; 0 = a power of two near 2*sqrt(n), at most n/39
    nprobe: int = 0  # IVF lists scanned per query; 0 = ceil(probe_fraction * nlist)
    probe_fraction: float = 0.1  # clustered embeddings need ~0.05-0.1; random vectors ~0.4
    pq_dims: int = 1  # dimensions per 4-bit IVF sub-quantizer; 2 halves the scan, costs recall
    rerank: int = 4  # IVF re-scores k * rerank candidates exactly; 0 keeps the PQ scores
    train_points_per_list: int = 64  # IVF k-means sample size per list
    kmeans_iters: int = 10  # IVF k-means iterations (random-like data gains little from more)
    hnsw_m: int = 32  # HNSW neighbours per node
    hnsw_ef_construction: int = 80  # HNSW build beam; higher is slower to build, better graph
    hnsw_ef_search: int = 128  # HNSW search beam (index state, like nprobe)
    build_threads: int = 1  # OpenMP threads for training and adding; leaves cores to readers
    build_nice: int = 19  # build_aside raises its thread's nice by this (Linux, max 19): idle CPU
    search_threads: int = 0  # OpenMP threads per search call; 0 = faiss default (all cores)
    seed: int = 1234  # k-means and training sample seed

    def __post_init__(self) -> None:
        if self.metric not in METRICS:
            raise IndexInputError(f"metric must be one of {METRICS}, not {self.metric!r}")
        if self.backend not in BACKENDS:
            raise IndexInputError(f"backend must be one of {BACKENDS}, not {self.backend!r}")
        for name in ("auto_threshold", "nlist", "nprobe", "rerank", "build_threads",
                     "build_nice", "search_threads", "seed"):
            if getattr(self, name) < 0:
                raise IndexInputError(f"{name} must be >= 0, not {getattr(self, name)}")
        for name in ("pq_dims", "train_points_per_list", "kmeans_iters", "hnsw_m",
                     "hnsw_ef_construction", "hnsw_ef_search"):
            if getattr(self, name) < 1:
                raise IndexInputError(f"{name} must be >= 1, not {getattr(self, name)}")
        if not 0.0 < self.probe_fraction <= 1.0:
            raise IndexInputError(f"probe_fraction must be in (0, 1], not {self.probe_fraction}")

    def resolve_backend(self, n_items: int) -> str:
        """The backend used for a catalogue of `n_items`."""
        if self.backend != "auto":
            return self.backend
        return "exact" if n_items <= self.auto_threshold else "ivf"

    def resolve_nlist(self, n_items: int) -> int:
        """IVF list count for `n_items`: the setting, else by size."""
        if self.nlist:
            return self.nlist
        by_size = 2 ** round(math.log2(max(2.0 * math.sqrt(max(n_items, 1)), 1.0)))
        cap = 2 ** int(math.log2(max(n_items // MIN_POINTS_PER_LIST, 1)))
        return max(1, min(by_size, cap))

    def resolve_nprobe(self, nlist: int) -> int:
        """Lists scanned per query for an IVF of `nlist` lists."""
        wanted = self.nprobe or math.ceil(self.probe_fraction * nlist)
        return max(1, min(wanted, nlist))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> IndexConfig:
        """Rebuild from `to_dict` output; unknown keys are an error, missing keys take defaults."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise IndexInputError(f"unknown IndexConfig fields {unknown}")
        return cls(**data)

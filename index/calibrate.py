"""Tuning search depth (IVF nprobe, HNSW ef_search) against exact answers on sample queries.

Recall depends on the data: clustered tower embeddings need a few percent of the IVF
lists, random vectors nearly half. So the index agent measures instead of guessing:
exact top-k of a sample of queries (recent user embeddings), then the smallest depth
whose recall@k reaches the target. The chosen value is index state and is saved.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from index.errors import IndexInputError
from index.items import ItemIndex, as_vectors

logger = logging.getLogger(__name__)

PARAMS = {"ivf": "nprobe", "hnsw": "ef_search"}
MAX_EF_SEARCH = 4096


@dataclass(frozen=True)
class Calibration:
    param: str  # "nprobe", "ef_search", or "" for the exact backend
    value: int
    recall: float  # recall@k on the sample at `value`
    reached: bool  # False when even the deepest search misses the target


def recall_at_k(found: np.ndarray, reference: np.ndarray) -> float:
    """Mean share of each reference row found in the same row of `found`; padding ignored."""
    pad = "" if reference.dtype.kind in "US" else -1
    hits = []
    for f, r in zip(found, reference, strict=True):
        r = r[r != pad]
        if len(r):
            hits.append(len(np.intersect1d(f, r)) / len(r))
    return float(np.mean(hits)) if hits else 1.0


def calibrate(index: ItemIndex, queries: np.ndarray, *, k: int = 50,
              target_recall: float = 0.95) -> Calibration:
    """Set the smallest search depth reaching `target_recall` on `queries` and report it.

    Run it on a version before it goes live: each step changes the search depth.
    """
    if not 0.0 < target_recall <= 1.0:
        raise IndexInputError(f"target_recall must be in (0, 1], not {target_recall}")
    q = as_vectors(queries, index.dim, metric=index.metric, what="calibration queries")
    param = PARAMS.get(index.backend, "")
    if not param or not len(index) or not len(q):
        return Calibration(param, 0, 1.0, True)
    kk = min(k, len(index))
    reference = index.exact_search(q, kk).ids

    def measure(value: int) -> float:
        index.set_search_params(**{param: value})
        return recall_at_k(index.search(q, kk).ids, reference)

    lo, hi = (1, index.search_params["nlist"]) if param == "nprobe" else (kk, MAX_EF_SEARCH)
    best = measure(hi)
    if best < target_recall:
        logger.warning("%s=%s reaches recall@%s %.3f < target %.3f", param, hi, kk, best,
                       target_recall)
        return Calibration(param, hi, best, False)
    while lo < hi:
        mid = (lo + hi) // 2
        recall = measure(mid)
        if recall >= target_recall:
            hi, best = mid, recall
        else:
            lo = mid + 1
    index.set_search_params(**{param: hi})
    logger.info("calibrated %s: %s=%s, recall@%s %.3f on %s queries", index.version, param, hi,
                kk, best, len(q))
    return Calibration(param, hi, best, True)

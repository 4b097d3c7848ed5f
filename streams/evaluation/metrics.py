"""Recall-quality metrics exactly as docs/evaluation.md defines them.

A ranking is a best-first sequence of item ids (duplicates are the caller's problem: the
evaluator removes them before scoring); a target set `T_u` is the distinct test items.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence, Set
from functools import lru_cache

__all__ = ["hit_rate", "ndcg", "offline_metrics", "recall"]


def _hits(ranked: Sequence[str], targets: Set[str], k: int) -> list[bool]:
    return [item in targets for item in ranked[:k]]


def hit_rate(rankings: Sequence[Sequence[str]], targets: Sequence[Set[str]], k: int) -> float:
    """Share of users with |topK ∩ T_u| >= 1."""
    return _mean(any(_hits(r, t, k)) for r, t in zip(rankings, targets, strict=True))


def recall(rankings: Sequence[Sequence[str]], targets: Sequence[Set[str]], k: int) -> float:
    """Mean over users of |topK ∩ T_u| / |T_u|."""
    return _mean(sum(_hits(r, t, k)) / len(t) for r, t in zip(rankings, targets, strict=True))


def ndcg(rankings: Sequence[Sequence[str]], targets: Sequence[Set[str]], k: int) -> float:
    """Binary-relevance NDCG@K; the ideal DCG puts min(|T_u|, K) hits first."""
    return _mean(_ndcg_one(r, t, k) for r, t in zip(rankings, targets, strict=True))


def _ndcg_one(ranked: Sequence[str], targets: Set[str], k: int) -> float:
    assert targets, "a user without targets has no NDCG"
    found = [pos for pos, hit in enumerate(_hits(ranked, targets, k)) if hit]
    return _dcg(found) / _ideal_dcg(min(len(targets), k))


def _dcg(positions: Iterable[int]) -> float:
    return sum(1.0 / math.log2(pos + 2) for pos in positions)


@lru_cache(maxsize=1024)
def _ideal_dcg(n: int) -> float:
    """DCG of n hits at the top."""
    return _dcg(range(n))


def _mean(values: Iterable[float]) -> float:
    total, n = 0.0, 0
    for v in values:
        total += v
        n += 1
    return total / n if n else 0.0


def offline_metrics(rankings: Sequence[Sequence[str]], targets: Sequence[Set[str]],
                    ks: Sequence[int]) -> dict[str, float | int]:
    """HitRate@K, Recall@K and NDCG@K for every K, and the number of users."""
    top = max(ks, default=0)
    sums = {f"{name}@{k}": 0.0 for name in ("HitRate", "Recall", "NDCG") for k in ks}
    for ranked, t in zip(rankings, targets, strict=True):
        hits = [pos for pos, item in enumerate(ranked[:top]) if item in t]  # one pass per user
        for k in ks:
            found = [pos for pos in hits if pos < k]
            sums[f"HitRate@{k}"] += bool(found)
            sums[f"Recall@{k}"] += len(found) / len(t)
            sums[f"NDCG@{k}"] += _dcg(found) / _ideal_dcg(min(len(t), k))
    n = len(rankings)
    out: dict[str, float | int] = {key: v / n if n else 0.0 for key, v in sums.items()}
    out["users"] = n
    return out


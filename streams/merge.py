"""Fusion of several channels' candidate lists into one deduplicated top-K.

Each channel contributes to an item's fused score: with `rrf` (weighted reciprocal-rank
fusion) `weight / (rrf_k + rank)`, rank from 1; with `score` `weight * score / best
score of that channel's list`. Channel lists are each a best-first list of (item, score).
Quotas reserve a place in the top-K for each channel's best items (when it has them);
the rest of the places go by fused score, and the result is ordered by fused score.
An item is credited to the channel that contributed most to its score.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

__all__ = ["MergeConfig", "Merged", "merge"]

Candidates = list[tuple[str, float]]


@dataclass(frozen=True)
class MergeConfig:
    method: str = "rrf"  # "rrf" (reciprocal rank) or "score" (scores scaled per channel)
    rrf_k: float = 60.0  # rank offset of reciprocal-rank fusion: larger flattens the ranks
    weights: Mapping[str, float] = field(default_factory=dict)  # channel -> weight (1)
    quotas: Mapping[str, int] = field(default_factory=dict)  # channel -> reserved places

    def __post_init__(self) -> None:
        if self.method not in ("rrf", "score"):
            raise ValueError(f"merge method {self.method!r}: use 'rrf' or 'score'")
        assert self.rrf_k >= 0 and all(q >= 0 for q in self.quotas.values())


@dataclass(frozen=True)
class Merged:
    items: list[str]
    scores: list[float]
    channels: list[str]


def merge(lists: Sequence[tuple[str, Candidates]], *, k: int,
          config: MergeConfig | None = None) -> Merged:
    """Fuse (channel name, candidates) lists into the best `k` distinct items."""
    config = config or MergeConfig()
    fused: dict[str, float] = {}
    credit: dict[str, tuple[float, str]] = {}
    for name, cands in lists:
        weight = config.weights.get(name, 1.0)
        for item, part in _contributions(cands, weight, config):
            fused[item] = fused.get(item, 0.0) + part
            if item not in credit or part > credit[item][0]:
                credit[item] = (part, name)
    chosen = _reserve(lists, k, config.quotas)
    order = sorted(fused, key=lambda i: -fused[i])  # stable: first seen wins ties
    for item in order:
        if len(chosen) >= k:
            break
        chosen.setdefault(item, None)
    final = sorted(chosen, key=lambda i: -fused[i])
    return Merged(items=final, scores=[fused[i] for i in final],
                  channels=[credit[i][1] for i in final])


def _contributions(cands: Candidates, weight: float, config: MergeConfig
                   ) -> list[tuple[str, float]]:
    if config.method == "rrf":
        return [(item, weight / (config.rrf_k + rank))
                for rank, (item, _) in enumerate(cands, start=1)]
    best = max((s for _, s in cands), default=0.0)
    scale = weight / best if best > 0 else 0.0
    return [(item, s * scale) for item, s in cands]


def _reserve(lists: Sequence[tuple[str, Candidates]], k: int,
             quotas: Mapping[str, int]) -> dict[str, None]:
    """Each channel's best items up to its quota (channel order), at most k in all."""
    chosen: dict[str, None] = {}
    for name, cands in lists:
        want = quotas.get(name, 0)
        for item, _ in cands:
            if want <= 0 or len(chosen) >= k:
                break
            if item not in chosen:
                chosen[item] = None
                want -= 1
    return chosen

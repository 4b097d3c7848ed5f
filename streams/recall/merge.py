"""Fusion of several channels' candidate lists into one deduplicated top-K.

Each channel contributes to an item's fused score: with `rrf` (weighted reciprocal-rank
fusion) `weight / (rrf_k + rank)`, rank from 1; with `score` `weight * score / best
score of that channel's list`; with `raw` `weight * score` (for channels whose scores are
on one scale, such as calibrated rates). Channel lists are each a best-first list of
(item, score).
Quotas reserve a place in the top-K for each channel's best items (when it has them);
the rest of the places go by fused score, and the result is ordered by fused score.
An item is credited to the channel that contributed most to its score.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache

from streams.errors import SettingsError

__all__ = ["MergeConfig", "Merged", "merge"]

Candidates = list[tuple[str, float]]
METHODS = ("rrf", "score", "raw")


@dataclass(frozen=True)
class MergeConfig:
    method: str = "rrf"  # "rrf" (reciprocal rank), "score" (scaled per channel) or "raw"
    rrf_k: float = 60.0  # rank offset of reciprocal-rank fusion: larger flattens the ranks
    weights: Mapping[str, float] = field(default_factory=dict)  # channel -> weight (1)
    quotas: Mapping[str, int] = field(default_factory=dict)  # channel -> reserved places

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise SettingsError(f"merge method {self.method!r}: use one of {', '.join(METHODS)}")
        if self.rrf_k < 0 or any(q < 0 for q in self.quotas.values()):
            raise SettingsError("merge: rrf_k and quotas must not be negative")


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
            before = fused.get(item)
            if before is None:
                fused[item] = part
                credit[item] = (part, name)
            else:
                fused[item] = before + part
                if part > credit[item][0]:
                    credit[item] = (part, name)
    # reverse=True keeps sort stability: the first seen still wins ties
    order = sorted(fused, key=fused.__getitem__, reverse=True)
    chosen = _reserve(lists, k, config.quotas)
    if chosen:
        for item in order:
            if len(chosen) >= k:
                break
            chosen.setdefault(item, None)
        final = sorted(chosen, key=fused.__getitem__, reverse=True)
    else:  # no quotas: the best k, already in order
        final = order[:k]
    return Merged(items=final, scores=[fused[i] for i in final],
                  channels=[credit[i][1] for i in final])


def _contributions(cands: Candidates, weight: float, config: MergeConfig
                   ) -> Iterable[tuple[str, float]]:
    if config.method == "rrf":
        return zip([item for item, _ in cands], _rrf_parts(weight, config.rrf_k, len(cands)),
                   strict=True)
    if config.method == "raw":
        return [(item, s * weight) for item, s in cands]
    best = max((s for _, s in cands), default=0.0)
    scale = weight / best if best > 0 else 0.0
    return [(item, s * scale) for item, s in cands]


@lru_cache(maxsize=256)
def _rrf_parts(weight: float, rrf_k: float, n: int) -> tuple[float, ...]:
    """weight / (rrf_k + rank) for ranks 1..n (the same few lists every batch)."""
    return tuple(weight / (rrf_k + rank) for rank in range(1, n + 1))


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

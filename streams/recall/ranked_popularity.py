"""The popularity channel a worker ranks with: the board's rankings, read once per batch.

`streams.state.popularity.PopularityBoard` keeps the decayed counts in Redis; a batch
reads the global ranking and those of its users' regions, and this channel serves them,
blending a user's region into the global ranking with `region_weight`.
"""

from __future__ import annotations

from collections.abc import Container, Sequence
from typing import Any

import numpy as np

from streams.recall.channels import Candidates, first_k
from towers.sequence import UserHistory

__all__ = ["RankedPopularity", "Ranking", "regions_of"]

Ranking = tuple[np.ndarray, np.ndarray]  # (item ids, scores) best first

class RankedPopularity:
    """A channel over rankings read once per batch (global, and blended per region)."""

    def __init__(self, rankings: dict[str, Ranking], *, region_weight: float = 0.0,
                 name: str = "popularity") -> None:
        self.name = name
        self.rankings = rankings
        self.region_weight = region_weight
        self._blended: dict[str, Ranking] = {}

    def fit(self, dataset: Any, history: Any) -> None:  # state lives in Redis
        return None

    def observe(self, events: Any) -> None:
        return None

    def _ranking(self, region: str) -> Ranking:
        base = self.rankings.get("", (np.zeros(0, dtype=object), np.zeros(0)))
        w = self.region_weight
        if not region or w <= 0 or region not in self.rankings:
            return base
        if region not in self._blended:
            score: dict[str, float] = {}
            for (ids, scores), weight in ((base, 1 - w), (self.rankings[region], w)):
                for item, s in zip(ids.tolist(), scores.tolist(), strict=True):
                    score[item] = score.get(item, 0.0) + weight * s
            order = sorted(score, key=lambda i: -score[i])
            self._blended[region] = (np.array(order, dtype=object),
                                     np.array([score[i] for i in order]))
        return self._blended[region]

    def candidates(self, histories: Sequence[UserHistory | None], *, k: int, now: float,
                   exclude: Sequence[Container[str]] | None = None) -> list[Candidates]:
        out = []
        for j, history in enumerate(histories):
            ids, scores = self._ranking(history.region if history is not None else "")
            out.append(first_k(ids, scores, k, exclude[j] if exclude is not None else None))
        return out


def regions_of(histories: Sequence[UserHistory | None]) -> set[str]:
    """Regions named by a batch's users (each needs one ranking read)."""
    return {h.region for h in histories if h is not None and h.region}


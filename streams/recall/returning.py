"""The `returning` channel: live popularity for users back after a break, else nothing.

Someone whose newest interaction is `away_s` old or more when the list is computed gets
more of what sells now; someone mid-session gets none of it. Lists a worker computes when
an interaction arrives never see it (the user's newest event is that one); lists computed
later do: in a worker, the refresh a context event for that user triggers (a store
opening after a break), and offline, the nightly lists of the frozen protocol.
"""

from __future__ import annotations

from collections.abc import Container, Sequence
from dataclasses import dataclass
from typing import Any

from streams.recall.channels import Candidates, Channel
from towers.sequence import DAY, UserHistory

__all__ = ["ReturningConfig", "ReturningPopularity"]


@dataclass(frozen=True)
class ReturningConfig:
    away_s: float = 1 * DAY  # newest event at least this old when the list is computed


class ReturningPopularity:
    """A popularity channel's list for users away for `away_s` or more, else nothing.

    It reads a popularity channel the system already fits and feeds, so its own `fit`
    and `observe` do nothing (the counts must not be added twice).
    """

    def __init__(self, popularity: Channel, config: ReturningConfig, *,
                 name: str = "returning") -> None:
        self.popularity = popularity
        self.config = config
        self.name = name

    def fit(self, dataset: Any, history: Any) -> None:
        return None

    def observe(self, events: Any) -> None:
        return None

    def candidates(self, histories: Sequence[UserHistory | None], *, k: int, now: float,
                   exclude: Sequence[Container[str]] | None = None) -> list[Candidates]:
        away = [j for j, h in enumerate(histories)
                if h is not None and len(h) and now - h.last_ts >= self.config.away_s]
        out: list[Candidates] = [[] for _ in histories]
        if not away:
            return out
        found = self.popularity.candidates([histories[j] for j in away], k=k, now=now,
                                           exclude=[exclude[j] for j in away]
                                           if exclude is not None else None)
        for j, cands in zip(away, found, strict=True):
            out[j] = cands
        return out

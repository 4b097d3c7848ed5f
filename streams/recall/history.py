"""Per-user histories held in memory: what the recall code reads in-process.

The evaluator and the replay tool keep user state here; the streaming workers read the
same `UserHistory` objects from the state store, so the recall code sees one shape.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Sequence, Set
from typing import Any

import numpy as np

from towers.data import Interactions
from towers.sequence import UserHistory

logger = logging.getLogger(__name__)

__all__ = ["InMemoryHistories", "time_order"]


def time_order(log: Interactions) -> np.ndarray:
    """Row indices sorted stably by timestamp (the order of docs/evaluation.md)."""
    return np.argsort(log.ts, kind="stable")


class InMemoryHistories:
    """user id -> bounded `UserHistory`, plus the unbounded set of items each user ever had."""

    def __init__(self, *, max_len: int = 200) -> None:
        assert max_len >= 1, "max_len must be positive"
        self.max_len = max_len
        self._histories: dict[str, UserHistory] = {}
        self._seen: dict[str, set[str]] = {}

    @classmethod
    def from_interactions(
        cls, log: Interactions, order: np.ndarray | None = None, *, max_len: int = 200
    ) -> InMemoryHistories:
        """Build from the rows `order` of `log` (time order; default: all rows sorted by ts)."""
        out = cls(max_len=max_len)
        rows = time_order(log) if order is None else np.asarray(order)
        if len(rows) == 0:
            return out
        users = log.user[rows]
        # group rows by user keeping time order inside each group
        grouped = rows[np.argsort(users.astype(str), kind="stable")]
        cols = [log.user[grouped].tolist(), log.item[grouped].tolist(),
                log.ts[grouped].tolist(), log.quantity[grouped].astype(float).tolist(),
                log.kind[grouped].tolist(), log.region[grouped].tolist()]
        user_col = cols[0]
        starts = [0] + [j for j in range(1, len(user_col)) if user_col[j] != user_col[j - 1]]
        for a, b in zip(starts, [*starts[1:], len(user_col)], strict=True):
            out._add_user(cols, a, b)
        logger.debug("built %s histories from %s rows", len(out._histories), len(rows))
        return out

    def _add_user(self, cols: list[list[Any]], a: int, b: int) -> None:
        """One user's rows [a, b) of the grouped columns (user, item, ts, qty, kind, region)."""
        users, items, ts, qty, kind, region = cols
        lo = max(a, b - self.max_len)
        latest = region[b - 1] or next((r for r in reversed(region[a:b]) if r), "")
        self._histories[users[a]] = UserHistory(
            user_id=users[a], max_len=self.max_len, items=items[lo:b], ts=ts[lo:b],
            quantity=qty[lo:b], kind=kind[lo:b], region=latest,
        )
        self._seen[users[a]] = set(items[a:b])

    def apply(self, events: Interactions) -> None:
        """Append events (applied in time order, ties in row order)."""
        if len(events) == 0:
            return
        order = time_order(events)
        cols = (events.user[order].tolist(), events.item[order].tolist(),
                events.ts[order].tolist(), events.quantity[order].tolist(),
                events.kind[order].tolist(), events.region[order].tolist())
        for user, item, ts, qty, kind, region in zip(*cols, strict=True):
            history = self._histories.get(user)
            if history is None:
                history = self._histories[user] = UserHistory(user_id=user, max_len=self.max_len)
                self._seen[user] = set()
            history.append(item, ts, qty, kind)
            if region:
                history.region = region
            self._seen[user].add(item)

    def get(self, user: str) -> UserHistory | None:
        return self._histories.get(user)

    def many(self, users: Iterable[str]) -> list[UserHistory | None]:
        return [self._histories.get(u) for u in users]

    def seen(self, user: str) -> Set[str]:
        """Every item the user ever had (empty for an unknown user)."""
        return self._seen.get(user, _EMPTY)

    def seen_many(self, users: Sequence[str]) -> list[Set[str]]:
        return [self._seen.get(u, _EMPTY) for u in users]

    def users(self) -> list[str]:
        return list(self._histories)

    def __contains__(self, user: object) -> bool:
        return user in self._histories

    def __len__(self) -> int:
        return len(self._histories)

    def __iter__(self) -> Iterator[str]:
        return iter(self._histories)


_EMPTY: frozenset[str] = frozenset()

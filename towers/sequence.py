"""Recency-weighted interaction sequences, shared by training, serving and evaluation."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

__all__ = ["UserHistory", "recency_weights"]

DAY = 86_400.0


def recency_weights(
    ts: np.ndarray, quantity: np.ndarray, now: float, half_life_s: float
) -> np.ndarray:
    """weight = quantity * 2^(-age / half_life); events from the future get age 0."""
    assert half_life_s > 0, "half-life must be positive"
    age = np.maximum(now - np.asarray(ts, dtype=np.float64), 0.0)
    return np.asarray(quantity, dtype=np.float64) * np.exp2(-age / half_life_s)


@dataclass
class UserHistory:
    """One user's most recent interactions, oldest first, bounded to `max_len`.

    This is the state every recall channel and the user tower read; the Redis store and
    the in-memory store both hand it out, so offline and streaming paths agree.
    """

    user_id: str
    max_len: int = 200
    items: list[str] = field(default_factory=list)
    ts: list[float] = field(default_factory=list)
    quantity: list[float] = field(default_factory=list)
    kind: list[str] = field(default_factory=list)
    region: str = ""
    last_event_id: str = ""  # id of the last event applied (for RecallResult provenance)

    def __len__(self) -> int:
        return len(self.items)

    def append(
        self, item: str, ts: float, quantity: float = 1.0, kind: str = "purchase",
        event_id: str = "",
    ) -> None:
        """Add one event, keeping time order (late events are inserted in place)."""
        pos = len(self.ts)
        while pos > 0 and self.ts[pos - 1] > ts:
            pos -= 1
        self.items.insert(pos, item)
        self.ts.insert(pos, float(ts))
        self.quantity.insert(pos, float(quantity))
        self.kind.insert(pos, kind)
        if len(self.items) > self.max_len:
            drop = len(self.items) - self.max_len
            del self.items[:drop], self.ts[:drop], self.quantity[:drop], self.kind[:drop]
        if event_id:
            self.last_event_id = event_id

    @property
    def last_ts(self) -> float:
        return self.ts[-1] if self.ts else float("nan")

    def weights(self, now: float, half_life_s: float) -> np.ndarray:
        return recency_weights(np.asarray(self.ts), np.asarray(self.quantity), now, half_life_s)

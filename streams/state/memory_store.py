"""In-memory user state with the Redis store's semantics, for unit tests and the replay tool."""

from __future__ import annotations

import logging
import math
import time
from bisect import bisect_left, insort
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import orjson

from streams.state.contract import (
    InteractionUpdate,
    StateConfig,
    UserFeatures,
    context_blob,
    encode_recall,
)
from towers.sequence import UserHistory

logger = logging.getLogger(__name__)

__all__ = ["InMemoryUserStateStore"]


class _IdWindow:
    """Processed event ids ordered by (applied_at, id), trimmed like the Redis zset."""

    def __init__(self) -> None:
        self.at: dict[str, float] = {}
        self.order: list[tuple[float, str]] = []

    def seen(self, event_id: str, cutoff: float) -> bool:
        at = self.at.get(event_id)
        return at is not None and at >= cutoff

    def add(self, event_id: str, *, now: float, limit: int) -> None:
        old = self.at.pop(event_id, None)
        if old is not None:  # an expired id seen again: it moves to `now`
            del self.order[bisect_left(self.order, (old, event_id))]
        self.at[event_id] = now
        insort(self.order, (now, event_id))
        drop = max(0, len(self.order) - limit)  # the oldest beyond `limit` (ZREMRANGEBYRANK)
        for _, gone in self.order[:drop]:
            del self.at[gone]
        del self.order[:drop]

    def dump(self) -> list[list[Any]]:
        return [[at, event_id] for at, event_id in self.order]


@dataclass
class UserState:
    """Everything the store knows of one user; `apply` is the per-event step."""

    seq: list[tuple[float, int, str, float, str]] = field(default_factory=list)
    events: int = 0  # also the arrival number of the latest event
    quantity: float = 0.0
    region: str = ""
    last_event_id: str = ""
    last_event_ts: float = 0.0
    max_ts: float = -math.inf
    seen: set[str] = field(default_factory=set)
    ids: _IdWindow = field(default_factory=_IdWindow)

    def apply(self, ev: InteractionUpdate, *, now: float, config: StateConfig) -> bool:
        cutoff = now - config.event_ttl_s
        if self.ids.seen(ev.event_id, cutoff):
            return False
        self.ids.add(ev.event_id, now=now, limit=config.max_event_ids)
        ts, quantity = float(ev.ts), float(ev.quantity)
        self.events += 1
        insort(self.seq, (ts, self.events, ev.item_id, quantity, ev.kind))
        if len(self.seq) > config.max_len:
            del self.seq[: len(self.seq) - config.max_len]
        self.quantity += quantity
        self.last_event_id, self.last_event_ts = ev.event_id, ts
        self.max_ts = max(self.max_ts, ts)
        if ev.region:
            self.region = ev.region
        self.seen.add(ev.item_id)
        return True

    def history(self, user_id: str, max_len: int, last: int | None = None) -> UserHistory:
        seq = self.seq[-last:] if last else self.seq
        return UserHistory(
            user_id=user_id, max_len=max_len, items=[e[2] for e in seq],
            ts=[e[0] for e in seq], quantity=[e[3] for e in seq],
            kind=[e[4] for e in seq], region=self.region, last_event_id=self.last_event_id,
        )

    def features(self) -> UserFeatures:
        return UserFeatures(region=self.region, events=self.events, quantity=self.quantity,
                            last_event_id=self.last_event_id, last_event_ts=self.last_event_ts,
                            max_ts=self.max_ts)


class InMemoryUserStateStore:
    """`UserStateStore` in a dict; each method runs without awaiting, so it is atomic."""

    def __init__(self, *, config: StateConfig | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.config = config or StateConfig()
        self._clock = clock
        self._users: dict[str, UserState] = {}
        self._regions: dict[str, bytes] = {}
        self._stock_ts: dict[str, float] = {}
        self._unavailable: set[str] = set()
        self._context_ids = _IdWindow()
        self._embeddings: dict[tuple[str, str], tuple[bytes, float]] = {}
        self._recalls: dict[str, tuple[bytes, float]] = {}
        self._live_version: str | None = None
        self._counters = {"applied": 0, "duplicates": 0}

    def _count(self, applied: bool) -> bool:
        self._counters["applied" if applied else "duplicates"] += 1
        return applied

    async def apply_interaction(
        self, *, event_id: str, user_id: str, item_id: str, ts: float,
        quantity: float = 1.0, kind: str = "purchase", region: str = "",
    ) -> bool:
        ev = InteractionUpdate(event_id, user_id, item_id, ts, quantity, kind, region)
        return (await self.apply_interactions([ev]))[0]

    async def apply_interactions(self, events: Sequence[InteractionUpdate]) -> list[bool]:
        now = self._clock()
        out = []
        for ev in events:
            user = self._users.get(ev.user_id) or self._users.setdefault(ev.user_id, UserState())
            out.append(self._count(user.apply(ev, now=now, config=self.config)))
        return out

    async def histories(self, user_ids: Sequence[str], *, last: int | None = None
                        ) -> list[UserHistory | None]:
        assert last is None or last >= 1, "last: how many of the newest events to read"
        users = [self._users.get(u) for u in user_ids]
        return [s.history(u, self.config.max_len, last) if s else None
                for u, s in zip(user_ids, users, strict=True)]

    async def features(self, user_ids: Sequence[str]) -> list[UserFeatures | None]:
        return [s.features() if (s := self._users.get(u)) else None for u in user_ids]

    async def seen_items(self, user_ids: Sequence[str]) -> list[set[str]]:
        return [set(s.seen) if (s := self._users.get(u)) else set() for u in user_ids]

    async def apply_context(
        self, *, event_id: str, ts: float, region: str = "", weather: str = "",
        temperature: float | None = None, holiday: bool = False,
        stock: Mapping[str, bool] | None = None,
    ) -> bool:
        blob = context_blob(ts, weather, temperature, holiday)
        return self._apply_context(event_id, float(ts), region, blob, stock or {})

    async def apply_stock(self, *, event_id: str, ts: float, stock: Mapping[str, bool]) -> bool:
        return self._apply_context(event_id, float(ts), None, b"", stock)

    def _apply_context(self, event_id: str, ts: float, region: str | None, blob: bytes,
                       stock: Mapping[str, bool]) -> bool:
        now = self._clock()
        cutoff = now - self.config.event_ttl_s
        if self._context_ids.seen(event_id, cutoff):
            return self._count(False)
        self._context_ids.add(event_id, now=now, limit=self.config.max_context_ids)
        old = self._regions.get(region) if region is not None else None
        if region is not None and (old is None or ts >= orjson.loads(old)["ts"]):
            self._regions[region] = blob
        for item, available in stock.items():
            if ts >= self._stock_ts.get(item, -math.inf):
                self._stock_ts[item] = ts
                (self._unavailable.discard if available else self._unavailable.add)(item)
        return self._count(True)

    async def context(self, region: str) -> dict[str, Any] | None:
        blob = self._regions.get(region)
        return orjson.loads(blob) if blob is not None else None

    async def unavailable_items(self) -> set[str]:
        return set(self._unavailable)

    def _alive(self, entry: tuple[bytes, float] | None) -> bytes | None:
        return entry[0] if entry is not None and entry[1] > self._clock() else None

    async def get_embeddings(
        self, user_ids: Sequence[str], *, version: str) -> list[np.ndarray | None]:
        blobs = [self._alive(self._embeddings.get((u, version))) for u in user_ids]
        return [np.frombuffer(b, dtype=np.float32).copy() if b is not None else None
                for b in blobs]

    async def put_embeddings(
        self, user_ids: Sequence[str], vectors: np.ndarray, *, version: str) -> None:
        assert len(user_ids) == len(vectors), "one vector per user"
        expires = self._clock() + self.config.embedding_ttl_s
        rows = np.ascontiguousarray(vectors, dtype=np.float32)
        for user_id, row in zip(user_ids, rows, strict=True):
            self._embeddings[(user_id, version)] = (row.tobytes(), expires)

    async def put_recalls(self, results: Mapping[str, Mapping[str, Any]]) -> None:
        ttl = self.config.recall_ttl_s
        expires = self._clock() + ttl if ttl else math.inf
        for user_id, result in results.items():
            self._recalls[user_id] = (encode_recall(result), expires)

    async def put_recall(self, user_id: str, result: Mapping[str, Any]) -> None:
        await self.put_recalls({user_id: result})

    async def get_recalls(self, user_ids: Sequence[str]) -> list[dict[str, Any] | None]:
        blobs = [self._alive(self._recalls.get(u)) for u in user_ids]
        return [orjson.loads(b) if b is not None else None for b in blobs]

    async def get_recall(self, user_id: str) -> dict[str, Any] | None:
        return (await self.get_recalls([user_id]))[0]

    async def live_version(self) -> str | None:
        return self._live_version

    async def set_live_version(self, version: str) -> None:
        self._live_version = version

    async def counters(self) -> dict[str, int]:
        return dict(self._counters)

    async def snapshot(self) -> dict[str, Any]:
        users: dict[str, dict[str, Any]] = {}
        for user_id, s in self._users.items():
            users[user_id] = {"seq": [list(e) for e in s.seq], "features": asdict(s.features()),
                              "seen": sorted(s.seen), "ids": s.ids.dump()}
        for (user_id, version), entry in self._embeddings.items():
            if (blob := self._alive(entry)) is not None:
                users.setdefault(user_id, {}).setdefault("embeddings", {})[version] = blob
        for user_id, entry in self._recalls.items():
            if (blob := self._alive(entry)) is not None:
                users.setdefault(user_id, {})["recall"] = orjson.loads(blob)
        return {
            "users": users,
            "regions": {r: orjson.loads(b) for r, b in self._regions.items()},
            "stock_ts": dict(self._stock_ts), "unavailable": sorted(self._unavailable),
            "context_ids": self._context_ids.dump(), "live_version": self._live_version,
        }

    async def close(self) -> None:
        logger.debug("in-memory state closed (%s users)", len(self._users))

"""User state in Redis: Lua scripts apply groups of events, one round trip per batch."""

from __future__ import annotations

import contextlib
import hashlib
import logging
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import numpy as np
import orjson
import redis.asyncio as aioredis
from redis.crc import key_slot
from redis.exceptions import NoScriptError, RedisError
from redis.utils import HIREDIS_AVAILABLE

from streams.state.contract import (
    InteractionUpdate,
    StateConfig,
    StateKeys,
    StateStoreError,
    UserFeatures,
    context_blob,
    encode_recall,
    member_payload,
    reply_text,
)
from streams.state.lua import APPLY_CONTEXT, APPLY_INTERACTIONS, READ_HISTORIES
from streams.state.snapshot import parse_features, redis_snapshot
from towers.sequence import UserHistory

logger = logging.getLogger(__name__)

__all__ = ["RedisUserStateStore"]

_SCRIPTS = {"interactions": APPLY_INTERACTIONS, "context": APPLY_CONTEXT, "read": READ_HISTORIES}
_SHA = {name: hashlib.sha1(src.encode()).hexdigest() for name, src in _SCRIPTS.items()}


class RedisUserStateStore:
    """`UserStateStore` on Redis (standalone or Cluster: a user's keys share one slot).

    Counter increments are kept in the process and written with the next pipeline (or by
    `counters()` / `close()`), so they cost no round trip of their own.
    """

    def __init__(self, client: aioredis.Redis, *, config: StateConfig | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.config = config or StateConfig()
        self.keys = StateKeys(self.config.prefix)
        self._r = client
        self._clock = clock
        self._pending = {"applied": 0, "duplicates": 0}
        self._cluster = isinstance(client, aioredis.RedisCluster)
        # Without hiredis, parsing one reply element per event in Python costs more than
        # joining the members in Lua; with it, plain reads spare Redis that Lua work.
        self._lua_reads = not HIREDIS_AVAILABLE

    @classmethod
    def from_url(cls, url: str, *, config: StateConfig | None = None,
                 clock: Callable[[], float] = time.time, **options: Any) -> RedisUserStateStore:
        """`options` go to `redis.asyncio.Redis.from_url` (timeouts, TLS); replies stay bytes."""
        options["decode_responses"] = False
        return cls(aioredis.Redis.from_url(url, **options), config=config, clock=clock)

    @contextlib.contextmanager
    def _guard(self, what: str) -> Iterator[None]:
        try:
            yield
        except RedisError as exc:
            raise StateStoreError(
                f"Redis state {what} failed ({type(exc).__name__}: {exc}); nothing of it may be "
                "assumed applied: retry the batch and commit no offset before it succeeds"
            ) from exc

    def _ms(self, seconds: float) -> int:
        return max(1, int(seconds * 1000))

    def _pipeline(self) -> tuple[Any, dict[str, int]]:
        """A pipeline that starts by writing the pending counter increments."""
        pipe = self._r.pipeline(transaction=False)
        taken = {name: value for name, value in self._pending.items() if value}
        self._pending = {"applied": 0, "duplicates": 0}
        for name, value in taken.items():
            pipe.hincrby(self.keys.counters, name, value)
        return pipe, taken

    async def _execute(self, pipe: Any, taken: dict[str, int], what: str) -> list[Any]:
        """The replies after the counter increments; NOSCRIPT errors are left in place."""
        try:
            with self._guard(what):
                out = await pipe.execute(raise_on_error=False)
        except StateStoreError:
            for name, value in taken.items():  # the increments were not written: keep them
                self._pending[name] += value
            raise
        for reply in out:
            if isinstance(reply, Exception) and not isinstance(reply, NoScriptError):
                with self._guard(what):
                    raise reply
        return out[len(taken):]

    async def _scripts(self, calls: list[tuple[str, list[str], list[Any]]], what: str
                       ) -> list[Any]:
        """Run script calls in one pipeline; after a Redis restart, load them and rerun."""
        results: list[Any] = [None] * len(calls)
        todo = list(range(len(calls)))
        for _ in range(2):
            pipe, taken = self._pipeline()
            for i in todo:
                name, keys, args = calls[i]
                pipe.evalsha(_SHA[name], len(keys), *keys, *args)
            for i, reply in zip(todo, await self._execute(pipe, taken, what), strict=True):
                results[i] = reply
            todo = [i for i in todo if isinstance(results[i], NoScriptError)]
            if not todo:  # NOSCRIPT means that script did not run: rerunning is safe
                return results
            await self._load_scripts()
        raise StateStoreError("Redis keeps losing the state scripts (SCRIPT FLUSH?); retry")

    async def _load_scripts(self) -> None:
        with self._guard("script load"):
            for src in _SCRIPTS.values():
                await self._r.script_load(src)
        logger.info("loaded state scripts into Redis")

    def _dedup_args(self, event_id: str, now: float, limit: int) -> list[Any]:
        ttl = self.config.event_ttl_s
        return [event_id, repr(now), repr(now - ttl), self._ms(ttl), limit]

    def _count(self, applied: list[bool]) -> list[bool]:
        self._pending["applied"] += sum(applied)
        self._pending["duplicates"] += len(applied) - sum(applied)
        return applied

    def _groups(self, user_ids: Sequence[str]) -> list[list[int]]:
        """Indices per script call, in order; on a cluster each call stays in one slot."""
        size, n = self.config.script_batch, len(user_ids)
        if not self._cluster:
            return [list(range(i, min(i + size, n))) for i in range(0, n, size)]
        by_slot: dict[int, list[int]] = {}
        for i, user_id in enumerate(user_ids):
            slot = key_slot(self.keys.user(user_id, "seq").encode())
            by_slot.setdefault(slot, []).append(i)
        return [g[i:i + size] for g in by_slot.values() for i in range(0, len(g), size)]

    async def apply_interaction(
        self, *, event_id: str, user_id: str, item_id: str, ts: float,
        quantity: float = 1.0, kind: str = "purchase", region: str = "",
    ) -> bool:
        ev = InteractionUpdate(event_id, user_id, item_id, ts, quantity, kind, region)
        return (await self.apply_interactions([ev]))[0]

    async def apply_interactions(self, events: Sequence[InteractionUpdate]) -> list[bool]:
        now, cfg = float(self._clock()), self.config
        head = [repr(now), repr(now - cfg.event_ttl_s), self._ms(cfg.event_ttl_s),
                cfg.max_event_ids, cfg.max_len]
        groups = self._groups([ev.user_id for ev in events])
        calls = []
        for group in groups:
            users: dict[str, int] = {}
            keys: list[str] = []
            rows = []
            for ev in (events[i] for i in group):
                if (index := users.get(ev.user_id)) is None:
                    index = users[ev.user_id] = len(users)
                    keys += self.keys.events(ev.user_id)
                ts, quantity = float(ev.ts), float(ev.quantity)
                payload = member_payload(ts, ev.item_id, quantity, ev.kind).decode()
                rows.append([index, ev.event_id, repr(ts), payload, ev.item_id,
                             repr(quantity), ev.region])
            calls.append(("interactions", keys, [*head, orjson.dumps(rows)]))
        replies = [[flag == 49 for flag in reply]  # b"1"
                   for reply in await self._scripts(calls, "apply interactions")]
        return self._count(self._scatter(groups, replies, len(events)))

    @staticmethod
    def _scatter(groups: list[list[int]], replies: list[list[Any]], n: int) -> list[Any]:
        out: list[Any] = [None] * n
        for group, reply in zip(groups, replies, strict=True):
            for i, value in zip(group, reply, strict=True):
                out[i] = value
        return out

    async def histories(self, user_ids: Sequence[str], *, last: int | None = None
                        ) -> list[UserHistory | None]:
        assert last is None or last >= 1, "last: how many of the newest events to read"
        if not self._lua_reads:
            return await self._plain_histories(user_ids, last)
        groups = self._groups(user_ids)
        calls = [("read", [k for i in g for k in (self.keys.user(user_ids[i], "seq"),
                                                   self.keys.user(user_ids[i], "feat"))],
                  [last or 0]) for g in groups]
        replies = [orjson.loads(r) for r in await self._scripts(calls, "read histories")]
        return [self._history(u, r) for u, r in
                zip(user_ids, self._scatter(groups, replies, len(user_ids)), strict=True)]

    async def _plain_histories(self, user_ids: Sequence[str], last: int | None
                               ) -> list[UserHistory | None]:
        def build(pipe: Any) -> None:
            for u in user_ids:
                pipe.zrange(self.keys.user(u, "seq"), -last if last else 0, -1)
                pipe.hmget(self.keys.user(u, "feat"), "region", "last_event_id")
        replies = await self._batch("read histories", build)
        return [self._history(u, [orjson.loads(b"[" + b",".join(members) + b"]"),
                                  (f[0] or b"").decode(), (f[1] or b"").decode()]
                              if members else None)
                for u, members, f in zip(user_ids, replies[::2], replies[1::2], strict=True)]

    def _history(self, user_id: str, reply: list[Any] | None) -> UserHistory | None:
        if reply is None:
            return None
        rows, region, last_event_id = reply  # rows: [arrival, ts, item, quantity, kind]
        return UserHistory(
            user_id=user_id, max_len=self.config.max_len, items=[r[2] for r in rows],
            ts=[r[1] for r in rows], quantity=[r[3] for r in rows], kind=[r[4] for r in rows],
            region=region, last_event_id=last_event_id,
        )

    async def _batch(self, what: str, build: Callable[[Any], None]) -> list[Any]:
        pipe, taken = self._pipeline()
        build(pipe)
        return await self._execute(pipe, taken, what)

    async def features(self, user_ids: Sequence[str]) -> list[UserFeatures | None]:
        def build(pipe: Any) -> None:
            for u in user_ids:
                pipe.hgetall(self.keys.user(u, "feat"))
        return [parse_features(h) for h in await self._batch("read features", build)]

    async def seen_items(self, user_ids: Sequence[str]) -> list[set[str]]:
        def build(pipe: Any) -> None:
            for u in user_ids:
                pipe.smembers(self.keys.user(u, "seen"))
        return [{i.decode() for i in items} for items in await self._batch("read seen", build)]

    async def apply_context(
        self, *, event_id: str, ts: float, region: str = "", weather: str = "",
        temperature: float | None = None, holiday: bool = False,
        stock: Mapping[str, bool] | None = None,
    ) -> bool:
        blob = context_blob(ts, weather, temperature, holiday)
        return await self._apply_context(event_id, float(ts), region, blob, stock or {})

    async def apply_stock(self, *, event_id: str, ts: float, stock: Mapping[str, bool]) -> bool:
        return await self._apply_context(event_id, float(ts), None, b"", stock)

    async def _apply_context(self, event_id: str, ts: float, region: str | None, blob: bytes,
                             stock: Mapping[str, bool]) -> bool:
        keys = [self.keys.ctx(k) for k in ("ids", "regions", "stock_ts", "unavailable")]
        now = float(self._clock())
        args = [*self._dedup_args(event_id, now, self.config.max_context_ids),
                "0" if region is None else "1", region or "", repr(ts), blob]
        for item, available in stock.items():
            args += [item, "1" if available else "0"]
        (reply,) = await self._scripts([("context", keys, args)], "apply context")
        return self._count([reply == 1])[0]

    async def context(self, region: str) -> dict[str, Any] | None:
        with self._guard("read context"):
            blob = await self._r.hget(self.keys.ctx("regions"), region)
        return orjson.loads(blob) if blob is not None else None

    async def unavailable_items(self) -> set[str]:
        with self._guard("read stock"):
            items = await self._r.smembers(self.keys.ctx("unavailable"))
        return {reply_text(i) for i in items}

    async def get_embeddings(
        self, user_ids: Sequence[str], *, version: str) -> list[np.ndarray | None]:
        def build(pipe: Any) -> None:
            for u in user_ids:
                pipe.get(self.keys.user(u, f"emb:{version}"))
        blobs = await self._batch("read embeddings", build)
        return [np.frombuffer(b, dtype=np.float32).copy() if b is not None else None
                for b in blobs]

    async def put_embeddings(
        self, user_ids: Sequence[str], vectors: np.ndarray, *, version: str) -> None:
        assert len(user_ids) == len(vectors), "one vector per user"
        rows = np.ascontiguousarray(vectors, dtype=np.float32)
        ttl = self._ms(self.config.embedding_ttl_s)

        def build(pipe: Any) -> None:
            for u, row in zip(user_ids, rows, strict=True):
                pipe.set(self.keys.user(u, f"emb:{version}"), row.tobytes(), px=ttl)
        await self._batch("write embeddings", build)

    async def put_recalls(self, results: Mapping[str, Mapping[str, Any]]) -> None:
        ttl = self._ms(self.config.recall_ttl_s) if self.config.recall_ttl_s else None

        def build(pipe: Any) -> None:
            for u, result in results.items():
                pipe.set(self.keys.user(u, "recall"), encode_recall(result), px=ttl)
        await self._batch("write recalls", build)

    async def put_recall(self, user_id: str, result: Mapping[str, Any]) -> None:
        await self.put_recalls({user_id: result})

    async def get_recalls(self, user_ids: Sequence[str]) -> list[dict[str, Any] | None]:
        def build(pipe: Any) -> None:
            for u in user_ids:
                pipe.get(self.keys.user(u, "recall"))
        return [orjson.loads(b) if b is not None else None
                for b in await self._batch("read recalls", build)]

    async def get_recall(self, user_id: str) -> dict[str, Any] | None:
        return (await self.get_recalls([user_id]))[0]

    async def live_version(self) -> str | None:
        with self._guard("read live version"):
            value = await self._r.get(self.keys.live_version)
        return reply_text(value) if value is not None else None

    async def set_live_version(self, version: str) -> None:
        with self._guard("write live version"):
            await self._r.set(self.keys.live_version, version)

    async def counters(self) -> dict[str, int]:
        (raw,) = await self._batch("read counters",
                                   lambda pipe: pipe.hgetall(self.keys.counters))
        out = {"applied": 0, "duplicates": 0}
        out.update({k.decode(): int(v) for k, v in raw.items()})
        return out

    async def snapshot(self) -> dict[str, Any]:
        await self._batch("flush counters", lambda pipe: None)
        with self._guard("snapshot"):
            return await redis_snapshot(self._r, self.keys)

    async def close(self) -> None:
        try:
            if any(self._pending.values()):
                await self._batch("flush counters", lambda pipe: None)
        finally:
            await self._r.aclose()

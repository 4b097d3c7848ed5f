"""Read a Redis store's keys back into the logical form `InMemoryUserStateStore.snapshot` gives.

For tests and checks only (it scans the whole key space of one prefix): the two stores
must compare equal after the same operations.
"""

from __future__ import annotations

import re
from dataclasses import asdict
from typing import TYPE_CHECKING, Any

import orjson

from streams.state.contract import StateKeys, UserFeatures, user_from_tag

if TYPE_CHECKING:
    import redis.asyncio as aioredis

__all__ = ["parse_features", "redis_snapshot"]

_GLOB_SPECIAL = re.compile(r"([*?\[\]\\])")


def parse_features(h: dict[bytes, bytes]) -> UserFeatures | None:
    """A user's features hash as the Lua script writes it; None when the user is unknown."""
    if not h:
        return None
    return UserFeatures(
        region=h.get(b"region", b"").decode(), events=int(h[b"events"]),
        quantity=float(h[b"quantity"]), last_event_id=h[b"last_event_id"].decode(),
        last_event_ts=float(h[b"last_event_ts"]), max_ts=float(h[b"max_ts"]),
    )


def _commands(kind: str) -> tuple[str, dict[str, Any]]:
    if kind == "seq":
        return "zrange", {"start": 0, "end": -1}
    if kind in ("ids", "ctx:ids"):
        return "zrange", {"start": 0, "end": -1, "withscores": True}
    if kind in ("feat", "ctx:regions", "ctx:stock_ts"):
        return "hgetall", {}
    if kind in ("seen", "ctx:unavailable"):
        return "smembers", {}
    return "get", {}


async def redis_snapshot(client: aioredis.Redis, keys: StateKeys) -> dict[str, Any]:
    """Everything under `keys.prefix` but the counters, decoded; TTLs are left out."""
    prefix = keys.prefix.encode()
    user_key = re.compile(re.escape(prefix) + rb":\{u:([^}]*)\}:(.+)", re.DOTALL)
    ctx_key = re.compile(re.escape(prefix) + rb":\{ctx\}:(.+)", re.DOTALL)
    found: list[tuple[str | None, str]] = []
    async for key in client.scan_iter(match=_GLOB_SPECIAL.sub(r"\\\1", keys.prefix) + ":*",
                                      count=1000):
        if m := user_key.fullmatch(key):
            found.append((user_from_tag(m[1].decode()), m[2].decode()))
        elif m := ctx_key.fullmatch(key):
            found.append((None, "ctx:" + m[1].decode()))
        elif key == keys.live_version.encode():
            found.append((None, "live_version"))
    pipe = client.pipeline(transaction=False)
    for user_id, kind in found:
        name = keys.user(user_id, kind) if user_id is not None else (
            keys.ctx(kind[4:]) if kind.startswith("ctx:") else keys.live_version)
        command, options = _commands(kind)
        getattr(pipe, command)(name, **options)
    replies = await pipe.execute()
    return _assemble(found, replies)


def _assemble(found: list[tuple[str | None, str]], replies: list[Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"users": {}, "regions": {}, "stock_ts": {}, "unavailable": [],
                           "context_ids": [], "live_version": None}
    users: dict[str, dict[str, Any]] = out["users"]
    for (user_id, kind), reply in zip(found, replies, strict=True):
        if user_id is None:
            _assemble_global(out, kind, reply)
            continue
        user = users.setdefault(user_id, {})
        if kind == "seq":
            user["seq"] = [[r[1], int(r[0], 16), *r[2:]]
                           for r in orjson.loads(b"[" + b",".join(reply) + b"]")]
        elif kind == "feat":
            features = parse_features(reply)
            user["features"] = asdict(features) if features else None
        elif kind == "seen":
            user["seen"] = sorted(i.decode() for i in reply)
        elif kind == "ids":
            user["ids"] = [[score, event_id.decode()] for event_id, score in reply]
        elif kind == "recall" and reply is not None:
            user["recall"] = orjson.loads(reply)
        elif kind.startswith("emb:") and reply is not None:
            user.setdefault("embeddings", {})[kind[4:]] = reply
    for user in users.values():
        if "features" in user:  # an expired ids key reads as no ids, as in memory
            for name in ("seq", "seen", "ids"):
                user.setdefault(name, [])
    return out


def _assemble_global(out: dict[str, Any], kind: str, reply: Any) -> None:
    if kind == "ctx:regions":
        out["regions"] = {r.decode(): orjson.loads(b) for r, b in reply.items()}
    elif kind == "ctx:stock_ts":
        out["stock_ts"] = {i.decode(): float(ts) for i, ts in reply.items()}
    elif kind == "ctx:unavailable":
        out["unavailable"] = sorted(i.decode() for i in reply)
    elif kind == "ctx:ids":
        out["context_ids"] = [[score, event_id.decode()] for event_id, score in reply]
    elif kind == "live_version" and reply is not None:
        out["live_version"] = reply.decode()

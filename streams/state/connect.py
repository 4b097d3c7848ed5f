"""Opening a state store from a URL, and the one read a command makes without a store."""

from __future__ import annotations

import redis

from streams.errors import ServiceError
from streams.state.contract import StateConfig, StateKeys, UserStateStore, reply_text

__all__ = ["check_reachable", "live_version_now", "open_state_store"]


def open_state_store(url: str, *, config: StateConfig | None = None) -> UserStateStore:
    """`memory://` gives the in-memory store, `redis://` / `rediss://` the Redis one."""
    config = config or StateConfig()
    if url.startswith("memory://"):
        from streams.state.memory_store import InMemoryUserStateStore

        return InMemoryUserStateStore(config=config)
    from streams.state.redis_store import RedisUserStateStore

    return RedisUserStateStore.from_url(url, config=config)


def check_reachable(redis_url: str, *, timeout_s: float = 3.0) -> None:
    """Raise ServiceError unless Redis at `redis_url` answers a PING."""
    client = redis.Redis.from_url(redis_url, socket_connect_timeout=timeout_s,
                                  socket_timeout=timeout_s)
    try:
        client.ping()
    except redis.RedisError as exc:
        raise ServiceError(f"cannot reach Redis: {exc}") from exc
    finally:
        client.close()


def live_version_now(redis_url: str, *, prefix: str) -> str | None:
    """The live version as stored in Redis, read synchronously (before any event loop)."""
    client = redis.Redis.from_url(redis_url)
    try:
        raw = client.get(StateKeys(prefix).live_version)
    except redis.RedisError as exc:
        raise ServiceError(f"cannot read the live version from Redis: {exc}") from exc
    finally:
        client.close()
    return reply_text(raw) if raw else None

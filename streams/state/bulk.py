"""Warm Redis state from a historical log before a replay, without a script call per event.

The log is folded per user in Python into the state the stores would reach by applying it
in order, then written with plain commands packed straight into RESP: redis-py's
per-argument encoding costs more than everything else at a million events.
"""

from __future__ import annotations

import gc
import logging
import time
from collections.abc import Sequence
from functools import reduce
from operator import add
from typing import Any

import numpy as np
import redis

from streams.state.contract import (
    InteractionUpdate,
    StateConfig,
    StateKeys,
    StateStoreError,
    encode_member,
)
from streams.state.memory_store import UserState
from towers.data import Interactions

logger = logging.getLogger(__name__)

__all__ = ["bulk_load", "fold_users"]


def _fold_user(rows: list[tuple[Any, ...]], *, now: float, config: StateConfig) -> UserState:
    """One user's rows (event_id, item, ts, quantity, kind, region), in log order."""
    seen_ids: set[str] = set()
    applied = []
    for r in rows:
        if r[0] not in seen_ids:
            seen_ids.add(r[0])
            applied.append(r)
    state = UserState()
    if len(applied) > config.max_event_ids:  # ids get trimmed, so a late redelivery may
        # apply again: only the per-event path knows which
        for event_id, item, ts, quantity, kind, region in rows:
            state.apply(InteractionUpdate(event_id, "", item, ts, quantity, kind, region),
                        now=now, config=config)
        return state
    # keeping the newest max_len on every insert = the top max_len of all by (ts, arrival);
    # a stable sort by ts keeps arrival order among equal ts
    newest = sorted(range(len(applied)), key=lambda n: applied[n][2])[-config.max_len:]
    state.seq = [(applied[n][2], n + 1, applied[n][1], applied[n][3], applied[n][4])
                 for n in newest]
    state.events = len(applied)
    state.quantity = reduce(add, (r[3] for r in applied), 0.0)  # in order, as applied
    state.last_event_id, state.last_event_ts = applied[-1][0], applied[-1][2]
    state.max_ts = max(r[2] for r in applied)
    state.region = next((r[5] for r in reversed(applied) if r[5]), "")
    state.seen = {r[1] for r in applied}
    state.ids.order = [(now, event_id) for event_id in sorted(seen_ids)]  # all at `now`
    state.ids.at = dict.fromkeys(seen_ids, now)
    return state


def fold_users(
    log: Interactions, *, config: StateConfig, now: float, event_ids: Sequence[str] | None = None,
) -> tuple[dict[str, UserState], int]:
    """Each user's state after applying the rows in order, and the number of duplicates."""
    ids = list(event_ids) if event_ids is not None else [f"bulk:{r}" for r in range(len(log))]
    assert len(ids) == len(log), "one event id per row"
    codes: dict[str, int] = {}
    user_code = np.fromiter((codes.setdefault(u, len(codes)) for u in log.user.tolist()),
                            dtype=np.int64, count=len(log))
    order = np.argsort(user_code, kind="stable")  # each user's rows, in log order
    bounds = [0, *np.cumsum(np.bincount(user_code, minlength=len(codes))).tolist()]
    columns = [np.asarray(ids, dtype=object)[order].tolist()] + [
        getattr(log, c)[order].tolist() for c in ("item", "ts", "quantity", "kind", "region")]
    rows = list(zip(*columns, strict=True))
    states = {user: _fold_user(rows[start:end], now=now, config=config)
              for user, start, end in zip(codes, bounds[:-1], bounds[1:], strict=True)}
    return states, len(log) - sum(s.events for s in states.values())


def _bulk(value: bytes) -> bytes:
    return b"$%d\r\n%b\r\n" % (len(value), value)


def _pack(out: list[bytes], *args: bytes) -> None:
    out.append(b"*%d\r\n" % len(args))
    out.extend([_bulk(a) for a in args])


def _user_commands(out: list[bytes], keys: StateKeys, user_id: str, s: UserState,
                   ttl_ms: int) -> int:
    """RESP of the commands that write one user's state; returns how many."""
    ids, seq, feat, seen = (k.encode() for k in keys.events(user_id))
    _pack(out, b"DEL", ids, seq, feat, seen)
    # newest first: a small zset is a listpack scanned from its head on every insert
    out.append(b"*%d\r\n%b%b" % (2 + 2 * len(s.seq), _bulk(b"ZADD"), _bulk(seq)))
    out.extend([_bulk(repr(ts).encode()) + _bulk(encode_member(arrival, ts, item, q, kind))
                for ts, arrival, item, q, kind in reversed(s.seq)])
    # the same strings the Lua script writes, so both paths read back bit-identical
    fields = [b"events", b"%d" % s.events, b"quantity", f"{s.quantity:.17g}".encode(),
              b"last_event_id", s.last_event_id.encode(),
              b"last_event_ts", repr(s.last_event_ts).encode(), b"max_ts", repr(s.max_ts).encode()]
    if s.region:
        fields += [b"region", s.region.encode()]
    _pack(out, b"HSET", feat, *fields)
    _pack(out, b"SADD", seen, *(i.encode() for i in s.seen))
    out.append(b"*%d\r\n%b%b" % (2 + 2 * len(s.ids.order), _bulk(b"ZADD"), _bulk(ids)))
    scores = {at: _bulk(repr(at).encode()) for at in {at for at, _ in s.ids.order}}
    out.extend([scores[at] + _bulk(eid.encode()) for at, eid in reversed(s.ids.order)])
    _pack(out, b"PEXPIRE", ids, b"%d" % ttl_ms)
    return 6


def _write(client: redis.Redis, states: dict[str, UserState], config: StateConfig,
           chunk_users: int = 500) -> None:
    """Send a chunk, build the next while Redis works on it, then read the replies."""
    keys, ttl_ms = StateKeys(config.prefix), max(1, int(config.event_ttl_s * 1000))
    users = list(states.items())
    conn = client.connection_pool.get_connection()
    try:
        unread = 0
        for start in range(0, len(users), chunk_users):
            payload: list[bytes] = []
            n = sum(_user_commands(payload, keys, user_id, state, ttl_ms)
                    for user_id, state in users[start:start + chunk_users])
            for _ in range(unread):
                conn.read_response()  # raises the first error reply
            conn.send_packed_command([b"".join(payload)])  # one sendall, not one per part
            unread = n
        for _ in range(unread):
            conn.read_response()
    except BaseException:
        conn.disconnect()  # replies may be left unread on it
        raise
    finally:
        client.connection_pool.release(conn)


def bulk_load(
    client: redis.Redis, log: Interactions, *, config: StateConfig | None = None,
    event_ids: Sequence[str] | None = None, now: float | None = None,
) -> dict[str, int]:
    """Replace the state of every user in `log` by the result of applying its rows in order.

    The result equals what `apply_interactions` at clock `now` would leave on a store
    without those users (embeddings and recall lists of the users are left as they are).
    Rows without `event_ids` get the ids `bulk:<row>`, recorded like any other. Needs a
    standalone Redis (not a Cluster client); rerunning it is safe but counts again.
    """
    config = config or StateConfig()
    now = time.time() if now is None else float(now)
    started = time.perf_counter()
    collecting = gc.isenabled()
    gc.disable()  # millions of tuples, no cycles: collections would cost a third of the time
    try:
        states, duplicates = fold_users(log, config=config, now=now, event_ids=event_ids)
        _write(client, states, config)
        keys = StateKeys(config.prefix)
        client.hincrby(keys.counters, "applied", len(log) - duplicates)
        client.hincrby(keys.counters, "duplicates", duplicates)
    except redis.RedisError as exc:
        raise StateStoreError(f"bulk load into Redis failed ({exc}); it can be rerun") from exc
    finally:
        if collecting:
            gc.enable()
    logger.info("bulk-loaded %s events of %s users in %.1fs", len(log), len(states),
                time.perf_counter() - started)
    return {"users": len(states), "applied": len(log) - duplicates, "duplicates": duplicates}

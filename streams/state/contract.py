"""Per-user streaming state: the contract shared by the Redis and the in-memory store.

A worker keeps, per user, the bounded time-ordered sequence of interactions, a few
features, the set of items the user ever had, the processed event ids (idempotence),
the embedding cache and the latest recall list; and globally the per-region context,
item availability, the live model version and counters. Every read of a sequence gives a
`towers.sequence.UserHistory`; recency weights are computed at read time
(`UserHistory.weights(now, half_life_s)`), nothing time-dependent is stored.

Semantics both stores share (the contract tests in tests/streams/test_state.py):
- one event is one atomic step: its id is checked and recorded together with its
  effect, so a redelivered event changes nothing except the `duplicates` counter;
- the sequence is ordered by (ts, arrival): a late event is inserted in place, events
  with equal ts keep arrival order, and only the newest `max_len` are kept. Features,
  the seen set and the counts include events that were trimmed (or trimmed at once
  because they were older than the whole window);
- processed ids are kept per user (an event id names one event of one user): an id is
  forgotten `event_ttl_s` after it was applied (clock of the store) or once
  `max_event_ids` newer ids of the same user exist;
- context and stock reports apply only when not older than what is stored (equal ts:
  the later arrival wins);
- an embedding is cached under (user, version): a version swap never serves another
  version's vector.

- the embedding cache is not invalidated by new events: whoever applies an event and
  needs a fresh vector recomputes and puts it (the interactions agent does, per batch).

Redis key layout (`P` = `StateConfig.prefix`; one hash tag per user keeps all of a user's
keys in one Redis Cluster slot, so the Lua scripts are cluster-safe; user ids are escaped
inside the tag, `{` -> `%7B`, `}` -> `%7D`, `%` -> `%25`):

    P:{u:USER}:seq      zset   score ts, member ["<arrival hex>",ts,item,quantity,kind]
    P:{u:USER}:feat     hash   events, quantity, region, last_event_id, last_event_ts, max_ts
    P:{u:USER}:seen     set    items the user ever had
    P:{u:USER}:ids      zset   processed event ids, score = store clock at apply (PEXPIRE ttl)
    P:{u:USER}:emb:VER  string float32 vector bytes (PX embedding_ttl_s)
    P:{u:USER}:recall   string JSON of the latest recall list
    P:{ctx}:regions     hash   region -> JSON {ts, weather, temperature, holiday}
    P:{ctx}:stock_ts    hash   item -> ts of its newest stock report
    P:{ctx}:unavailable set    items whose newest stock report says out of stock
    P:{ctx}:ids         zset   processed context event ids
    P:live_version      string
    P:counters          hash   applied, duplicates

Errors: every Redis failure (connection refused or lost, timeout, a refused command) is
raised as `StateStoreError` (a `streams.errors.ServiceError`). Nothing of the failed call
may be assumed applied, and parts of a batch may be: retry the whole batch (idempotent)
and commit no offset before it succeeds. The counters are metrics, exact unless such a
failure interrupts the pipeline that carries them.

Warming Redis from a historical log: `streams.state.bulk.bulk_load` (no script per event).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import orjson

from streams.errors import ServiceError
from towers.sequence import UserHistory

__all__ = [
    "InteractionUpdate",
    "StateConfig",
    "StateKeys",
    "StateStoreError",
    "UserFeatures",
    "UserStateStore",
]

DAY = 86_400.0


@dataclass(frozen=True)
class StateConfig:
    prefix: str = "nl"  # every Redis key starts with "<prefix>:"; no braces allowed
    max_len: int = 200  # events kept per user: the newest by (ts, arrival)
    event_ttl_s: float = 7 * DAY  # a processed event id is remembered this long ...
    max_event_ids: int = 5_000  # ... and only among the newest this many ids of its user
    max_context_ids: int = 100_000  # processed context / stock event ids kept (one set)
    embedding_ttl_s: float = DAY  # cached user embeddings expire after this
    recall_ttl_s: float = 0.0  # latest recall lists expire after this; 0 = never
    script_batch: int = 64  # events (users, for reads) per Lua call: fewer commands to
    # encode per batch, but Redis serves nobody else while one call runs

    def __post_init__(self) -> None:
        if not self.prefix or "{" in self.prefix or "}" in self.prefix:
            raise ValueError(f"state prefix {self.prefix!r} must be non-empty without braces")
        assert min(self.max_len, self.max_event_ids, self.max_context_ids, self.script_batch) >= 1
        assert self.event_ttl_s > 0 and self.embedding_ttl_s > 0 and self.recall_ttl_s >= 0


@dataclass(frozen=True)
class InteractionUpdate:
    """One interaction as the state sees it (validated upstream by the records layer)."""

    event_id: str
    user_id: str
    item_id: str
    ts: float
    quantity: float = 1.0
    kind: str = "purchase"
    region: str = ""

    def __post_init__(self) -> None:
        assert math.isfinite(self.ts) and self.quantity > 0, "validated by the records layer"


@dataclass(frozen=True)
class UserFeatures:
    """Counts over every applied event of a user (trimmed ones included)."""

    region: str  # region of the latest event that named one, "" if none did
    events: int
    quantity: float  # total quantity
    last_event_id: str  # the last event applied (arrival order)
    last_event_ts: float  # its ts
    max_ts: float  # newest event ts seen


class StateStoreError(ServiceError):
    """Redis could not be reached or refused a command; retry the batch, commit nothing."""


class UserStateStore(Protocol):
    """What agents, the recall code and the replay tool need from per-user state."""

    async def apply_interaction(
        self, *, event_id: str, user_id: str, item_id: str, ts: float,
        quantity: float = 1.0, kind: str = "purchase", region: str = "",
    ) -> bool: ...  # False: a duplicate, nothing changed

    async def apply_interactions(self, events: Sequence[InteractionUpdate]) -> list[bool]: ...
    async def histories(  # `last`: only the newest events (what the user tower reads)
        self, user_ids: Sequence[str], *, last: int | None = None,
    ) -> list[UserHistory | None]: ...
    async def features(self, user_ids: Sequence[str]) -> list[UserFeatures | None]: ...
    async def seen_items(self, user_ids: Sequence[str]) -> list[set[str]]: ...

    async def apply_context(
        self, *, event_id: str, ts: float, region: str = "", weather: str = "",
        temperature: float | None = None, holiday: bool = False,
        stock: Mapping[str, bool] | None = None,
    ) -> bool: ...

    async def apply_stock(self, *, event_id: str, ts: float, stock: Mapping[str, bool]) -> bool: ...
    async def context(self, region: str) -> dict[str, Any] | None: ...
    async def unavailable_items(self) -> set[str]: ...

    async def get_embeddings(
        self, user_ids: Sequence[str], *, version: str) -> list[np.ndarray | None]: ...
    async def put_embeddings(
        self, user_ids: Sequence[str], vectors: np.ndarray, *, version: str) -> None: ...

    async def put_recalls(self, results: Mapping[str, Mapping[str, Any]]) -> None: ...
    async def put_recall(self, user_id: str, result: Mapping[str, Any]) -> None: ...
    async def get_recalls(self, user_ids: Sequence[str]) -> list[dict[str, Any] | None]: ...
    async def get_recall(self, user_id: str) -> dict[str, Any] | None: ...

    async def live_version(self) -> str | None: ...
    async def set_live_version(self, version: str) -> None: ...
    async def counters(self) -> dict[str, int]: ...
    async def snapshot(self) -> dict[str, Any]: ...  # all state but counters, for tests
    async def close(self) -> None: ...


# --- encodings shared by both stores (so their snapshots compare equal) -----------------

_UNESCAPE = {"25": "%", "7B": "{", "7D": "}"}


def user_tag(user_id: str) -> str:
    """The user's hash tag body, with braces escaped so the tag cannot end early."""
    return user_id.replace("%", "%25").replace("{", "%7B").replace("}", "%7D")


def user_from_tag(tag: str) -> str:
    return re.sub(r"%(25|7B|7D)", lambda m: _UNESCAPE[m.group(1)], tag)


def reply_text(reply: bytes | str) -> str:
    """A Redis string reply as text: bytes from the stores' clients, str from a client
    opened with decode_responses."""
    return reply.decode() if isinstance(reply, bytes) else reply


class StateKeys:
    """Key names of the layout in the module docstring."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.live_version = f"{prefix}:live_version"
        self.counters = f"{prefix}:counters"

    def user(self, user_id: str, kind: str) -> str:
        return f"{self.prefix}:{{u:{user_tag(user_id)}}}:{kind}"

    def events(self, user_id: str) -> list[str]:
        """KEYS of the interaction script: ids, seq, feat, seen."""
        return [self.user(user_id, k) for k in ("ids", "seq", "feat", "seen")]

    def ctx(self, kind: str) -> str:
        return f"{self.prefix}:{{ctx}}:{kind}"


def member_payload(ts: float, item: str, quantity: float, kind: str) -> bytes:
    """The tail of a sequence member; the Lua script puts `["<arrival hex>",` before it."""
    return orjson.dumps([ts, item, quantity, kind])[1:]


def encode_member(arrival: int, ts: float, item: str, quantity: float, kind: str) -> bytes:
    """The whole member: the same bytes as the script's '["<hex>",' .. payload."""
    return orjson.dumps([f"{arrival:012x}", ts, item, quantity, kind])


def encode_recall(result: Mapping[str, Any]) -> bytes:
    return orjson.dumps(result, option=orjson.OPT_SERIALIZE_NUMPY)


def context_blob(ts: float, weather: str, temperature: float | None, holiday: bool) -> bytes:
    if temperature is not None and not np.isfinite(temperature):
        temperature = None
    return orjson.dumps({"ts": float(ts), "weather": weather, "temperature": temperature,
                         "holiday": bool(holiday)})

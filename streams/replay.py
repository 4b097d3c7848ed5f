"""Replaying history through the real path: Kafka in, workers, Redis, recall topic out.

The state before the replay window is bulk-loaded into Redis (and the popularity board),
the window's events are produced in timestamp order at a chosen pace, and the recall
topic is read back. Scoring follows the streaming protocol of EVALUATION.md: each event
is judged against the newest list of its user computed from events strictly earlier
than it (a `RecallResult` names the last event its state held). Before a user's first
list from the stream, the boundary list counts: the one the same engine computes from
the warmed state, which is also the frozen (nightly batch) variant. The end of a replay
is detected from what was produced: every user's last produced event named by a list.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import orjson
from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from streams.settings import Settings
from streams.topics import admin_options, default_partition
from towers.data import Dataset, Interactions, temporal_split
from towers.datasets.events import INTERACTION_TYPES

__all__ = ["Envelopes", "ListLog", "ReplayWindow", "Score", "interaction_messages",
           "one_per_batch", "paced", "score_stream", "split_window"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ReplayWindow:
    """The history (bulk-loaded state) and the window (produced) of one replay."""

    dataset: Dataset
    history: Interactions  # time order
    window: Interactions  # time order
    event_ids: list[str]  # one per window row
    history_ids: list[str]

    def users(self) -> list[str]:
        return list(dict.fromkeys(self.window.user.tolist()))

    def last_event_of(self) -> dict[str, str]:
        """user -> id of its last window event (the one that ends the replay for it)."""
        return dict(zip(self.window.user.tolist(), self.event_ids, strict=True))


def split_window(dataset: Dataset, *, start: str = "test", limit: int | None = None,
                 days: float | None = None) -> ReplayWindow:
    """EVALUATION.md split: history = before the window, window = valid (+test) or test.

    `limit` keeps the window's first N events, `days` its first D days of event time.
    """
    if start not in ("valid", "test"):
        raise ValueError(f"replay window {start!r}: use 'valid' or 'test'")
    split = temporal_split(dataset.interactions)
    cut = len(split.train) + (len(split.valid) if start == "test" else 0)
    end = cut + len(split.valid) if start == "valid" else len(split.order)
    rows_h, rows_w = split.order[:cut], split.order[cut:end]
    log = dataset.interactions
    if days is not None and len(rows_w):
        ts = log.ts[rows_w]
        rows_w = rows_w[ts < ts[0] + days * 86_400.0]
    if limit is not None:
        rows_w = rows_w[:limit]
    name = dataset.name
    return ReplayWindow(dataset, log.take(rows_h), log.take(rows_w),
                        [f"{name}-{r}" for r in rows_w.tolist()],
                        [f"{name}-{r}" for r in rows_h.tolist()])


def interaction_messages(window: ReplayWindow, *, passes: int | None = 1
                         ) -> Iterator[tuple[bytes, bytes, float]]:
    """(key, value, event ts) of every window event, in time order.

    With `passes` > 1 (None: endless) the window runs again and again as new events, the
    load a soak test needs: pass p gets event ids suffixed `~p` and timestamps shifted past
    the end of pass p - 1, so workers apply every event of every pass.
    """
    w = window.window
    if not len(w):
        return
    span = float(w.ts[-1] - w.ts[0]) + 1.0
    n = 0
    while passes is None or n < passes:
        shift, suffix = n * span, f"~{n}" if n else ""
        for j, event_id in enumerate(window.event_ids):
            kind = str(w.kind[j])
            price = float(w.price[j])
            ts = float(w.ts[j]) + shift
            yield (str(w.user[j]).encode(), orjson.dumps({
                "event_id": event_id + suffix, "user_id": str(w.user[j]),
                "item_id": str(w.item[j]), "type": kind if kind in INTERACTION_TYPES else
                "purchase", "quantity": float(w.quantity[j]),
                "price": price if np.isfinite(price) else None, "ts": ts,
                "region": str(w.region[j])}), ts)
        n += 1


def paced(messages: Iterable[tuple[bytes, bytes, float]], *, speed: float | None,
          max_rate: float | None) -> Iterator[tuple[bytes, bytes]]:
    """Yield messages at event-time `speed` (x real time) and/or at most `max_rate`/s."""
    start = time.monotonic()
    t0: float | None = None
    for n, (key, value, ts) in enumerate(messages):
        t0 = ts if t0 is None else t0
        due = 0.0
        if speed:
            due = (ts - t0) / speed
        if max_rate:
            due = max(due, n / max_rate)
        wait = start + due - time.monotonic()
        if wait > 0:
            time.sleep(wait)
        yield key, value


class Envelopes:
    """Consecutive events of one partition grouped into JSON-array envelopes of `size`.

    An event's partition is the one the producer's default partitioner gives its key
    (murmur2 of the user id, as the Java and kafka-python clients), and an envelope is
    keyed by its first event, so it lands where each of its events would have: a user's
    events stay on one partition, in order. A partial envelope leaves once the next event
    finds it older than `linger_s`, and at the end. `events` counts the events sent.
    """

    def __init__(self, messages: Iterable[tuple[bytes, bytes]], *, size: int,
                 partitions: int, linger_s: float = 0.05) -> None:
        assert size >= 1 and partitions >= 1
        self.messages = messages
        self.size = size
        self.partitions = partitions
        self.linger_s = linger_s
        self.events = 0

    def __iter__(self) -> Iterator[tuple[bytes, bytes]]:
        open_: dict[int, tuple[float, bytes, list[bytes]]] = {}  # partition -> since, key, events

        def close(p: int) -> tuple[bytes, bytes]:
            _, key, values = open_.pop(p)
            self.events += len(values)
            return key, b"[" + b",".join(values) + b"]"

        for key, value in self.messages:
            now = time.monotonic()
            for p in [p for p, (since, _, _) in open_.items() if now - since > self.linger_s]:
                yield close(p)
            p = default_partition(key, self.partitions)
            values = open_.setdefault(p, (now, key, []))[2]
            values.append(value)
            if len(values) >= self.size:
                yield close(p)
        for p in list(open_):
            yield close(p)


def one_per_batch(messages: Iterable[tuple[bytes, bytes, float]], event_ids: Sequence[str],
                  log: ListLog, *, timeout_s: float = 30.0
                  ) -> Iterator[tuple[bytes, bytes, float]]:
    """Hold each event until the previous one is named by a published list.

    Every micro-batch then holds one event, and every list is computed from the state
    just after its event, global popularity included: what the in-process reference
    computes. The pace is one worker round trip per event.
    """
    before: str | None = None
    for (key, value, ts), event_id in zip(messages, event_ids, strict=True):
        deadline = time.monotonic() + timeout_s
        while before is not None and before not in log.named:
            if time.monotonic() > deadline:
                logger.warning("no list named %s after %.0f s; going on", before, timeout_s)
                break
            time.sleep(0.0002)
        before = event_id
        yield key, value, ts


@dataclass
class ListLog:
    """Every list read back from the recall topic, per user, in arrival order."""

    lists: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    named: set[str] = field(default_factory=set)  # last_event_id of every list
    count: int = 0

    def add(self, result: dict[str, Any]) -> None:
        result["received_ts"] = time.time()
        self.lists.setdefault(result["user_id"], []).append(result)
        self.named.add(result["last_event_id"])
        self.count += 1

    def frontier(self, index_of: dict[str, int]) -> list[tuple[float, int]]:
        """(wall time, window events covered): the newest event index named so far."""
        named = sorted((r["received_ts"], index_of.get(r["last_event_id"], -1))
                       for lists in self.lists.values() for r in lists)
        out, best = [], -1
        for t, j in named:
            if j > best:
                best = j
                out.append((t, best + 1))
        return out


def collect(settings: Settings, *, until: Callable[[ListLog], bool], timeout_s: float,
            stop: threading.Event | None = None, out: ListLog | None = None) -> ListLog:
    """Read the recall topic from its start until `until(log)`, or until no new list has
    arrived for `timeout_s` (a slow replay may take longer than that in all)."""
    # short long-polls: the embedded broker holds each fetch for its full wait, and a
    # replay that gates every event on the previous one's list waits on each fetch
    consumer = KafkaConsumer(auto_offset_reset="earliest", enable_auto_commit=False,
                             fetch_max_wait_ms=settings.fetch_max_wait_ms,
                             **admin_options(settings))  # type: ignore[arg-type]
    parts = consumer.partitions_for_topic(settings.topics.recalls) or {0}
    consumer.assign([TopicPartition(settings.topics.recalls, p) for p in sorted(parts)])
    out = out if out is not None else ListLog()
    deadline = time.monotonic() + timeout_s
    try:
        while time.monotonic() < deadline and not until(out):
            if stop is not None and stop.is_set():
                break
            for batch in consumer.poll(100, max_records=5000).values():
                for record in batch:
                    out.add(orjson.loads(record.value))
                deadline = time.monotonic() + timeout_s
    finally:
        consumer.close()
    return out


def produce(settings: Settings, messages: Iterator[tuple[bytes, bytes]], *,
            on_sent: Callable[[int], None] | None = None) -> int:
    producer = KafkaProducer(linger_ms=2, acks=1, **admin_options(settings))  # type: ignore[arg-type]
    n = 0
    try:
        for key, value in messages:
            producer.send(settings.topics.interactions, key=key, value=value)
            n += 1
            if on_sent is not None:
                on_sent(n)
        producer.flush()
    finally:
        producer.close()
    return n


@dataclass
class Score:
    """Streaming-protocol tallies for one list source."""

    ks: Sequence[int]
    events: int = 0
    covered: int = 0
    hits: dict[int, int] = field(default_factory=dict)
    channel_hits: dict[str, int] = field(default_factory=dict)  # credited at max(ks)
    trace: list[bool] = field(default_factory=list)  # hit at K=50 (or the largest K) per event

    def judge(self, ranked: dict[str, Any] | None, item: str) -> None:
        self.events += 1
        k_trace = 50 if 50 in self.ks else max(self.ks)
        self.trace.append(ranked is not None and item in ranked["items"][:k_trace])
        if ranked is None:
            return
        self.covered += 1
        items = ranked["items"]
        if item in items:
            pos = items.index(item)
            for k in self.ks:
                self.hits[k] = self.hits.get(k, 0) + (pos < k)
            if pos < max(self.ks):
                channel = ranked["channels"][pos] if ranked.get("channels") else ""
                self.channel_hits[channel] = self.channel_hits.get(channel, 0) + 1

    def result(self) -> dict[str, Any]:
        out: dict[str, Any] = {f"HitRate@{k}": self.hits.get(k, 0) / max(self.events, 1)
                               for k in self.ks}
        out["events"] = self.events
        out["coverage"] = self.covered / max(self.events, 1)
        for k in self.ks:
            out[f"HitRate@{k}_with_list"] = self.hits.get(k, 0) / max(self.covered, 1)
        out["hits_by_channel"] = dict(sorted(self.channel_hits.items()))
        return out


def score_stream(window: ReplayWindow, streamed: dict[str, list[dict[str, Any]]],
                 boundary: dict[str, dict[str, Any]], *, ks: Sequence[int],
                 seen_filter: bool) -> tuple[Score, Score]:
    """(stream, frozen) metrics of EVALUATION.md from the lists read back."""
    w = window.window
    seen: dict[str, set[str]] = {}
    if seen_filter:
        for u, i in zip(window.history.user.tolist(), window.history.item.tolist(), strict=True):
            seen.setdefault(u, set()).add(i)
    by_user = {u: sorted(lists, key=lambda r: (r["last_event_ts"], r["emitted_ts"]))
               for u, lists in streamed.items()}
    cursor: dict[str, int] = {}
    stream, frozen = Score(ks), Score(ks)
    ts = w.ts
    users, items = w.user.tolist(), w.item.tolist()
    starts = np.flatnonzero(np.r_[True, ts[1:] != ts[:-1]]) if len(w) else np.zeros(0, int)
    for a, b in zip(starts.tolist(), np.r_[starts[1:], len(w)].tolist(), strict=True):
        t = float(ts[a])
        for user, item in dict.fromkeys(zip(users[a:b], items[a:b], strict=True)):
            if seen_filter and item in seen.get(user, ()):
                continue
            stream.judge(_latest_before(by_user.get(user, []), cursor, user, t)
                         or boundary.get(user), item)
            frozen.judge(boundary.get(user), item)
        if seen_filter:
            for user, item in zip(users[a:b], items[a:b], strict=True):
                seen.setdefault(user, set()).add(item)
    return stream, frozen


def _latest_before(lists: list[dict[str, Any]], cursor: dict[str, int], user: str,
                   t: float) -> dict[str, Any] | None:
    """Newest list whose state held only events earlier than t (lists sorted by that ts)."""
    j = cursor.get(user, 0)
    while j < len(lists) and lists[j]["last_event_ts"] < t:
        j += 1
    cursor[user] = j
    return lists[j - 1] if j > 0 else None

"""A replay's Kafka traffic: its events produced to the interactions topic, its lists read
back from the recall topic."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson
from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from streams.settings import Settings
from streams.topics import admin_options

logger = logging.getLogger(__name__)

__all__ = ["ListLog", "collect", "one_per_batch", "produce"]


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
                             **admin_options(settings))
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
    producer = KafkaProducer(linger_ms=2, acks=1, **admin_options(settings))
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

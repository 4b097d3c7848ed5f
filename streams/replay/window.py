"""The events a replay sends: the window of a data set, as messages, paced or enveloped.

A replay (`streams.replay.run`) bulk-loads the state before the window into Redis,
produces the window's events in timestamp order at a chosen pace (`interaction_messages`,
`paced`, `Envelopes`), reads the recall topic back (`streams.replay.kafka_io`) and scores
what it read (`streams.replay.score`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import numpy as np
import orjson

from streams.topics import default_partition
from towers.data import Dataset, Interactions, temporal_split
from towers.datasets.events import INTERACTION_TYPES

__all__ = ["Envelopes", "ReplayWindow", "interaction_messages", "paced", "split_window"]

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
    """docs/evaluation.md split: history = before the window, window = valid (+test) or test.

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

"""What a worker does with one micro-batch of messages, independent of Faust.

Every message ends applied or dead-lettered. State writes are retried with backoff until
they succeed (a Redis outage stalls the batch; its offsets are committed only after it
returns), and they are idempotent, so a retried or redelivered batch changes nothing
twice. Users are coalesced: each gets one fresh list per batch, however many of its
events the batch held.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Protocol, TypeVar

import numpy as np

from streams.errors import EventError, ServiceError
from streams.worker.engine import RecallEngine, RecallInput, UserRecall
from streams.worker.metrics import WorkerMetrics
from streams.worker.records import (
    ContextEvent,
    DeadLetter,
    Interaction,
    ItemUpdate,
    RecallResult,
    Record,
    dead_letter,
    decode_message,
)

__all__ = ["Incoming", "Pipeline", "Sink", "retry"]

logger = logging.getLogger(__name__)
T = TypeVar("T")
R = TypeVar("R", bound=Record)


@dataclass(frozen=True)
class Incoming:
    """One consumed message: its bytes and where it came from."""

    value: bytes | None
    topic: str
    partition: int
    offset: int
    arrival: float  # broker / producer timestamp of the message, unix seconds


class Sink(Protocol):
    async def recalls(self, results: Sequence[RecallResult]) -> None: ...
    async def dead_letters(self, letters: Sequence[DeadLetter]) -> None: ...


async def retry(call: Callable[[], Awaitable[T]], *, what: str, base_s: float = 0.05,
                cap_s: float = 5.0, on_error: Callable[[], None] | None = None) -> T:
    """Await `call()` until it succeeds, backing off on ServiceError (Redis down)."""
    delay, attempt = base_s, 0
    while True:
        try:
            return await call()
        except ServiceError as exc:
            attempt += 1
            if on_error is not None:
                on_error()
            logger.warning("%s failed (attempt %s, retry in %.2f s): %s", what, attempt,
                           delay, exc)
            await asyncio.sleep(delay)
            delay = min(cap_s, delay * 2)


class Pipeline:
    """Decode, apply, recall, publish: one call per micro-batch and topic."""

    def __init__(self, engine: RecallEngine, sink: Sink, *, max_event_bytes: int,
                 max_future_s: float, metrics: WorkerMetrics | None = None,
                 clock: Callable[[], float] = time.time, depth: int = 2,
                 cache_embeddings: bool = True, max_envelope_events: int = 1000,
                 max_envelope_bytes: int = 1 << 20, batch_events: int = 4096) -> None:
        assert depth >= 1, "at least the batch being computed"
        assert batch_events >= 1, "a step holds at least one event"
        self.engine = engine
        self.sink = sink
        self.max_event_bytes = max_event_bytes
        self.max_future_s = max_future_s
        self.max_envelope_events = max_envelope_events  # 0: arrays are refused (not_object)
        self.max_envelope_bytes = max_envelope_bytes
        self.metrics = metrics or WorkerMetrics()
        self.clock = clock
        self.depth = depth
        # envelopes make a batch of messages any number of events: apply and recall at most
        # this many at a time, so a step's time and memory stay bounded
        self.batch_events = batch_events
        self.cache_embeddings = cache_embeddings  # put each list's user embedding in the state
        self._inflight: deque[asyncio.Task[list[RecallResult]]] = deque()

    def _decode(self, messages: Sequence[Incoming], kind: str, record_type: type[R]
                ) -> tuple[list[tuple[Incoming, R]], list[DeadLetter]]:
        """Records of `kind` (all of class `record_type`) and the dead letters."""
        now = self.clock()
        good: list[tuple[Incoming, R]] = []
        bad: list[DeadLetter] = []
        for m in messages:
            for element, record, raw in decode_message(
                    m.value, kind=kind, now=now, max_bytes=self.max_event_bytes,
                    max_future_s=self.max_future_s,
                    max_envelope_events=self.max_envelope_events,
                    max_envelope_bytes=self.max_envelope_bytes):
                self.metrics.events_in.labels(topic=m.topic).inc()
                if isinstance(record, EventError):
                    self.metrics.dead_lettered.labels(reason=record.reason).inc()
                    bad.append(dead_letter(raw, topic=m.topic, partition=m.partition,
                                           offset=m.offset, error=record, now=now,
                                           element=element))
                elif isinstance(record, record_type):
                    good.append((m, record))
                else:  # decode_message gives `kind`'s class only (records._RECORD_OF)
                    raise TypeError(f"a {kind} decoded as {type(record).__name__}")
        if bad:
            logger.info("%s %s event(s) dead-lettered (first: %s)", len(bad), kind,
                        bad[0].reason)
        return good, bad

    def _retry(self, call: Callable[[], Awaitable[T]], what: str) -> Awaitable[T]:
        return retry(call, what=what, on_error=self.metrics.redis_errors.inc)

    async def on_interactions(self, messages: Sequence[Incoming]) -> None:
        """Apply a batch and publish its users' lists; returns once they are out."""
        await (await self.begin_interactions(messages))

    async def begin_interactions(self, messages: Sequence[Incoming]) -> Awaitable[object]:
        """Apply a batch and start its lists; the returned awaitable ends once published.

        The state the lists are computed from is read before this returns, so the next
        batches are applied and read while this one's lists are computed and published:
        up to `depth` batches are in flight (computing in worker threads, which torch and
        faiss let run beside the event loop), and each batch publishes only after the one
        before it, so a user's lists go out in order. A batch of more than `batch_events`
        events (envelopes) goes through as consecutive steps of that many, each a batch
        of its own here; the awaitable ends once the last is published.
        """
        good, bad = self._decode(messages, "interaction", Interaction)
        await self.sink.dead_letters(bad)
        if not good:
            return _done()
        size = self.batch_events
        steps = [await self._begin_step(good[a:a + size]) for a in range(0, len(good), size)]
        return steps[0] if len(steps) == 1 else asyncio.gather(*steps)

    async def _begin_step(self, good: list[tuple[Incoming, Interaction]]
                          ) -> asyncio.Task[list[RecallResult]]:
        events = [r for _, r in good]
        applied = await self._retry(lambda: self.engine.apply(events), "apply interactions")
        self.metrics.applied.labels(topic=good[0][0].topic).inc(sum(applied))
        self.metrics.duplicates.inc(len(applied) - sum(applied))
        arrivals: dict[str, float] = {}
        for m, e in zip((m for m, _ in good), events, strict=True):
            arrivals[e.user_id] = max(arrivals.get(e.user_id, 0.0), m.arrival)
        while len(self._inflight) >= self.depth:
            await self._inflight.popleft()
        task = await self._begin_refresh(list(arrivals), now=max(e.ts for e in events),
                                         arrivals=arrivals,
                                         after=self._inflight[-1] if self._inflight else None)
        self._inflight.append(task)
        return task

    async def on_context(self, messages: Sequence[Incoming]) -> None:
        good, bad = self._decode(messages, "context", ContextEvent)
        await self.sink.dead_letters(bad)
        arrivals: dict[str, float] = {}
        store = self.engine.store
        for m, e in good:
            fresh = await self._retry(partial(
                store.apply_context, event_id=e.event_id, ts=e.ts, region=e.region,
                weather=e.weather, temperature=e.temperature, holiday=e.holiday,
                stock=e.stock or None), "apply context")
            self._count(fresh, m.topic)
            if e.user_id:  # conditions of one user (a store): its list may change
                arrivals[e.user_id] = max(arrivals.get(e.user_id, 0.0), m.arrival)
        if arrivals:
            now = max(r.ts for _, r in good)
            await self.refresh(list(arrivals), now=now, arrivals=arrivals)

    async def on_items(self, messages: Sequence[Incoming]) -> None:
        good, bad = self._decode(messages, "item", ItemUpdate)
        await self.sink.dead_letters(bad)
        store = self.engine.store
        for m, e in good:
            fresh = await self._retry(partial(
                store.apply_stock, event_id=e.event_id, ts=e.ts, stock={e.item_id: e.available}),
                "apply item availability")
            self._count(fresh, m.topic)

    def _count(self, fresh: bool, topic: str) -> None:
        if fresh:
            self.metrics.applied.labels(topic=topic).inc()
        else:  # a redelivered event: nothing changed
            self.metrics.duplicates.inc()

    async def refresh(self, users: list[str], *, now: float,
                      arrivals: dict[str, float] | None = None) -> list[RecallResult]:
        """Compute, store and publish fresh lists for `users` (distinct)."""
        return await (await self._begin_refresh(users, now=now, arrivals=arrivals))

    async def _begin_refresh(self, users: list[str], *, now: float,
                             arrivals: dict[str, float] | None,
                             after: asyncio.Task[list[RecallResult]] | None = None
                             ) -> asyncio.Task[list[RecallResult]]:
        started = time.perf_counter()
        snapshot = await self._retry(lambda: self.engine.read(users, now=now), "read state")
        return asyncio.create_task(self._finish(snapshot, started, arrivals or {}, after))

    async def _finish(self, snapshot: RecallInput, started: float,
                      arrivals: dict[str, float],
                      after: asyncio.Task[list[RecallResult]] | None) -> list[RecallResult]:
        recalls = await asyncio.to_thread(snapshot.compute)
        if after is not None:  # the batch before publishes first; its failure is its own
            await asyncio.wait([after])
        emitted = self.clock()
        results = [to_result(r, emitted=emitted, arrival=arrivals.get(r.recall.user_id))
                   for r in recalls]
        await self._retry(lambda: self._store(results, recalls, snapshot.version),
                          "store recall lists")
        await self.sink.recalls(results)
        self.metrics.batch_users.observe(len(snapshot.users))
        self.metrics.recall_seconds.observe(time.perf_counter() - started)
        for r in results:
            self.metrics.latency_seconds.observe(r.latency_ms / 1000.0)
        return results

    async def _store(self, results: list[RecallResult], recalls: list[UserRecall],
                     version: str) -> None:
        """The latest lists and, keyed by version, the embeddings they were searched with."""
        store = self.engine.store
        writes = [store.put_recalls({r.user_id: r.asdict() for r in results})]
        cached = ([(r.recall.user_id, r.embedding) for r in recalls if r.embedding is not None]
                  if self.cache_embeddings else [])
        if cached:
            writes.append(store.put_embeddings(
                [user for user, _ in cached], np.stack([vector for _, vector in cached]),
                version=version))
        await asyncio.gather(*writes)


def _done() -> asyncio.Future[object]:
    future: asyncio.Future[object] = asyncio.get_running_loop().create_future()
    future.set_result(None)
    return future


def to_result(r: UserRecall, *, emitted: float, arrival: float | None) -> RecallResult:
    f = r.features
    return RecallResult(
        user_id=r.recall.user_id, items=r.recall.items,
        scores=np.round(np.asarray(r.recall.scores, dtype=np.float64), 6).tolist(),
        channels=r.recall.channels,
        version=r.version, last_event_id=f.last_event_id if f else "",
        last_event_ts=f.last_event_ts if f else 0.0, emitted_ts=emitted,
        latency_ms=max(0.0, (emitted - arrival) * 1000.0) if arrival else 0.0)

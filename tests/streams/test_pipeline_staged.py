"""The staged pipeline: the next batch is applied while this batch's lists are computed.

Lists of a batch are computed from the state read before `begin_interactions` returns
(never from a later batch's events), go out in batch order, and a failure surfaces.
"""

from __future__ import annotations

import asyncio
import threading
import uuid

import orjson
import pytest
import redis.asyncio as aioredis

from streams.state.memory_store import InMemoryUserStateStore
from streams.state.popularity import PopularityBoard
from streams.worker.engine import RecallEngine, RecallInput
from streams.worker.pipeline import Incoming, Pipeline
from streams.worker.records import RecallResult
from tests.streams.harness import CollectingSink


def _batch(events: list[tuple[str, str, str, float]], offset: int) -> list[Incoming]:
    return [Incoming(orjson.dumps({"event_id": eid, "user_id": u, "item_id": i, "ts": ts,
                                   "type": "purchase", "quantity": 1.0}),
                     topic="interactions", partition=0, offset=offset + j, arrival=0.0)
            for j, (eid, u, i, ts) in enumerate(events)]


async def _staged(redis_url: str, depth: int) -> tuple[list[RecallResult], bool]:
    client = aioredis.Redis.from_url(redis_url)
    store, sink = InMemoryUserStateStore(), CollectingSink()
    engine = RecallEngine(store, PopularityBoard(client, prefix=f"st{uuid.uuid4().hex[:6]}"))
    pipeline = Pipeline(engine, sink, max_event_bytes=64 * 1024, max_future_s=86_400.0,
                        depth=depth)
    gate = threading.Event()  # holds the first batch's computation until released
    compute = RecallInput.compute

    def held(self: RecallInput) -> list:  # type: ignore[type-arg]
        if "e1" in (f.last_event_id for f in self.features if f is not None):
            gate.wait(10)
        return compute(self)

    RecallInput.compute = held  # type: ignore[method-assign]
    try:
        first = await pipeline.begin_interactions(_batch([("e1", "u", "a", 1.0)], 0))
        # the first batch's lists are still being computed: the next batch gets applied
        second = asyncio.create_task(
            pipeline.begin_interactions(_batch([("e2", "u", "b", 2.0)], 1)))
        while (await store.counters())["applied"] < 2:
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.1)
        # depth 1: the second batch waits for the first's lists; depth 2: it is read and
        # computing, but publishes only after the first
        overlapped = not sink.lists and second.done() == (depth > 1)
        gate.set()
        await first
        await (await second)
    finally:
        RecallInput.compute = compute  # type: ignore[method-assign]
        await client.aclose()
    assert not sink.letters
    return sink.lists, overlapped


@pytest.mark.parametrize("depth", [1, 2])
def test_next_batch_applies_while_lists_compute(redis_server, depth: int) -> None:  # type: ignore[no-untyped-def]
    lists, overlapped = asyncio.run(_staged(redis_server.url, depth))
    assert overlapped  # e2 applied while e1's lists were held; nothing published yet
    # in batch order, each from the state it names: e2 (applied meanwhile) not in the first
    assert [r.last_event_id for r in lists] == ["e1", "e2"]
    assert lists[0].items == ["a"] and "b" in lists[1].items  # b came with e2, after the read
    assert all(r.user_id == "u" for r in lists)


async def _failing(redis_url: str) -> None:
    client = aioredis.Redis.from_url(redis_url)
    store = InMemoryUserStateStore()
    engine = RecallEngine(store, PopularityBoard(client, prefix=f"sf{uuid.uuid4().hex[:6]}"))
    sink = CollectingSink()
    pipeline = Pipeline(engine, sink, max_event_bytes=64 * 1024, max_future_s=86_400.0,
                        depth=2)
    compute = RecallInput.compute

    def broken(self: RecallInput) -> list:  # type: ignore[type-arg]
        raise RuntimeError("tower failed")

    RecallInput.compute = broken  # type: ignore[method-assign]
    try:
        first = await pipeline.begin_interactions(_batch([("e1", "u", "a", 1.0)], 0))
        second = await pipeline.begin_interactions(_batch([("e2", "u", "b", 2.0)], 1))
        for done in (first, second):  # what acks each batch sees the failure: none acked
            with pytest.raises(RuntimeError):
                await done
        with pytest.raises(RuntimeError):  # and the agent, once `depth` batches are out
            await pipeline.begin_interactions(_batch([("e3", "u", "c", 3.0)], 2))
        assert not sink.lists and not sink.letters
    finally:
        RecallInput.compute = compute  # type: ignore[method-assign]
        await client.aclose()


def test_a_failed_batch_surfaces(redis_server) -> None:  # type: ignore[no-untyped-def]
    asyncio.run(_failing(redis_server.url))


async def _stepped(redis_url: str) -> list[RecallResult]:
    client = aioredis.Redis.from_url(redis_url)
    store, sink = InMemoryUserStateStore(), CollectingSink()
    engine = RecallEngine(store, PopularityBoard(client, prefix=f"sb{uuid.uuid4().hex[:6]}"))
    pipeline = Pipeline(engine, sink, max_event_bytes=64 * 1024, max_future_s=86_400.0,
                        batch_events=2)
    envelope = [{"event_id": eid, "user_id": u, "item_id": i, "ts": ts, "type": "purchase",
                 "quantity": 1.0}
                for eid, u, i, ts in [("e1", "u1", "a", 1.0), ("e2", "u1", "b", 2.0),
                                      ("e3", "u2", "a", 3.0), ("e4", "u1", "c", 4.0),
                                      ("e5", "u3", "b", 5.0)]]
    try:
        done = await pipeline.begin_interactions(
            [Incoming(orjson.dumps(envelope), topic="interactions", partition=0, offset=0,
                      arrival=0.0)])
        await done
        assert len(sink.lists) == 4  # every step's lists are out when the batch's are
    finally:
        await client.aclose()
    assert not sink.letters
    return sink.lists


def test_a_batch_of_more_events_than_a_step_holds_goes_in_steps(redis_server) -> None:  # type: ignore[no-untyped-def]
    lists = asyncio.run(_stepped(redis_server.url))
    # steps of two events: (e1 e2) (e3 e4) (e5), one list per user and step, in order
    assert [(r.user_id, r.last_event_id) for r in lists] == [
        ("u1", "e2"), ("u2", "e3"), ("u1", "e4"), ("u3", "e5")]
    assert "c" in lists[2].items and "c" not in lists[0].items

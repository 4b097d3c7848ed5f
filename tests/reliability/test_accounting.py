"""Accounting in one process: a batch delivered twice is counted once as applied, once as
duplicates, by the state's counters and by the worker's metrics, on every input topic."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest
import redis.asyncio as aioredis

from streams.state.memory_store import InMemoryUserStateStore
from streams.state.popularity import PopularityBoard
from streams.worker.engine import RecallEngine
from streams.worker.pipeline import Incoming, Pipeline
from tests.reliability.conftest import STREAM, parse_metrics
from tests.streams.harness import CollectingSink


async def _deliver_twice(redis_url: str, kind: str) -> tuple[dict[str, Any], ...]:
    good = [m for m in STREAM.good if m.kind == kind][:12]
    bad = [m for m in STREAM.bad if m.kind == kind][:3]
    batch = [Incoming(m.value, topic=kind, partition=0, offset=i, arrival=0.0)
             for i, m in enumerate(good + bad)]
    client = aioredis.Redis.from_url(redis_url)
    store, sink = InMemoryUserStateStore(), CollectingSink()
    engine = RecallEngine(store, PopularityBoard(client, prefix=f"acc{uuid.uuid4().hex[:6]}"))
    pipeline = Pipeline(engine, sink, max_event_bytes=64 * 1024, max_future_s=86_400.0)
    handle = {"interactions": pipeline.on_interactions, "context": pipeline.on_context,
              "items": pipeline.on_items}[kind]
    try:
        await handle(batch)
        await handle(batch)  # redelivered: a crash before the commit, a rebalance
    finally:
        await client.aclose()
    expected = {"good": len(good), "bad": len(bad), "letters": len(sink.letters)}
    return expected, await store.counters(), parse_metrics(pipeline.metrics.render().decode())


@pytest.mark.parametrize("kind", ["interactions", "context", "items"])
def test_a_redelivered_batch_counts_once(redis_server, kind: str) -> None:  # type: ignore[no-untyped-def]
    expected, counters, metrics = asyncio.run(_deliver_twice(redis_server.url, kind))
    n, bad = expected["good"], expected["bad"]
    assert counters == {"applied": n, "duplicates": n}  # the state's own counters
    assert expected["letters"] == 2 * bad  # dead letters are at-least-once too
    assert metrics["nearline_events_in_total"] == 2 * (n + bad)
    assert metrics["nearline_events_dead_lettered_total"] == 2 * bad
    assert metrics.get("nearline_events_duplicate_total", 0.0) == n
    assert metrics["nearline_events_applied_total"] == n

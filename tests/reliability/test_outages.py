"""Outages: Redis stopped for ~10 s mid-stream, and a broker restart, with a worker running."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from bench._harness import wait_for
from streams.errors import ServiceError
from streams.services.embedded import EmbeddedBroker, EmbeddedRedis
from streams.topics import ensure_topics
from tests.reliability.conftest import (
    STREAM,
    Worker,
    account,
    check_metrics,
    differences,
    normal_form,
)
from tests.streams.harness import get_json

pytestmark = pytest.mark.services

OUTAGE_S = 10.0
RETRY = re.compile(r"failed \(attempt (\d+), retry in ([\d.]+) s\)")


@pytest.fixture()
def own_redis(tmp_path: Path) -> Iterator[EmbeddedRedis]:
    """A Redis of this test alone (AOF on): stopping it disturbs no other test."""
    (tmp_path / "redis").mkdir()
    server = EmbeddedRedis().start(workdir=tmp_path / "redis")
    yield server
    server.stop()


@pytest.fixture()
def own_broker(tmp_path: Path) -> Iterator[EmbeddedBroker]:
    (tmp_path / "tansu").mkdir()
    server = EmbeddedBroker().start(workdir=tmp_path / "tansu")
    yield server
    server.stop()


def _start_again(server: EmbeddedBroker | EmbeddedRedis, timeout: float = 20.0) -> None:
    """Start on the same port and directory (a stopped broker frees its port slowly)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            server.start(workdir=server.workdir, port=server.port)
            return
        except ServiceError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.3)


def _assignments(worker: Worker) -> int:
    """How many partition assignments the worker has logged so far."""
    return worker.log.read_text(errors="replace").count("_on_partitions_assigned")


def test_redis_outage_stalls_the_worker_which_then_catches_up(deploy, own_redis, reference  # type: ignore[no-untyped-def]
                                                              ) -> None:
    msgs = STREAM.messages
    d = deploy(redis_url=own_redis.url)
    w = d.worker("w1", assigned=d.settings.partitions)
    pacer = d.pace(msgs, rate=40.0, hold_at=int(len(msgs) * 0.85))
    pacer.wait_sent(120)
    own_redis.stop()
    down = time.monotonic()
    sent_at_outage = pacer.sent
    while time.monotonic() - down < OUTAGE_S:
        assert w.alive(), w.logs()
        time.sleep(0.5)
    status, body = get_json(w.web + "/healthz")
    assert status == 503 and body["ok"] is False, body  # the probe tells, the worker waits
    _start_again(own_redis)
    assert pacer.sent > sent_at_outage, "the stream must go on during the outage"
    pacer.release()
    pacer.finish()

    snap = d.wait_applied(STREAM.messages)
    letters = d.dead_letters(STREAM.bad)
    counters = d.counters()
    account(f"Redis stopped {OUTAGE_S:.0f} s mid-stream", STREAM, snap, letters, counters,
            produced=len(msgs))
    assert not differences(normal_form(snap, d.board()), reference.state)
    # a reply lost with the connection turns its events into duplicates on the retry
    assert counters["applied"] + counters["duplicates"] >= len(STREAM.good)
    metrics = w.metrics()
    assert metrics["nearline_redis_errors_total"] > 0  # it did retry ...
    check_metrics(metrics)
    retries = [(int(n), float(s)) for n, s in RETRY.findall(w.log.read_text())]
    assert max(n for n, _ in retries) >= 5  # ... again and again through the outage ...
    assert all(s == round(min(5.0, 0.05 * 2 ** (n - 1)), 2) for n, s in retries)  # backing off
    assert w.stop() == 0, w.logs()


def test_worker_survives_a_broker_restart_and_consumes_after_it(deploy, own_broker, reference  # type: ignore[no-untyped-def]
                                                                ) -> None:
    """The memory broker forgets every topic, message and offset when it restarts: what
    was consumed before stays applied, the topics are created again, and the worker
    consumes what is produced after."""
    msgs = STREAM.messages
    half = len(msgs) // 2
    first, second = msgs[:half], msgs[half:]
    d = deploy(broker_url=own_broker.url)
    w = d.worker("w1", assigned=d.settings.partitions)
    d.produce(first)
    d.wait_applied(first)
    letters = d.dead_letters([m for m in first if m.event_id is None])
    joins = _assignments(w)
    own_broker.stop()
    time.sleep(2.0)  # the worker runs on without a broker for a while
    assert w.alive(), w.logs()
    _start_again(own_broker)
    assert ensure_topics(d.settings)  # all gone with the broker: created again
    # until the worker rejoins the group it fetches at its old positions, which on the
    # emptied topics point past messages produced meanwhile; after the rejoin it finds no
    # committed offsets and starts from the earliest
    wait_for(lambda: _assignments(w) > joins, timeout=60, what="rejoined")
    d.produce(second)

    snap = d.wait_applied(STREAM.messages)
    letters += d.dead_letters([m for m in second if m.event_id is None])
    counters = d.counters()
    account("broker restart between two halves", STREAM, snap, letters, counters,
            produced=len(msgs))
    assert not differences(normal_form(snap, d.board()), reference.state)
    assert counters == {"applied": len(STREAM.good), "duplicates": 0}
    check_metrics(w.metrics())
    assert w.stop() == 0, w.logs()

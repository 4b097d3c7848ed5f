"""`nearline replay --envelope N`: the window produced N events to a message."""

from __future__ import annotations

import time
from collections.abc import Iterator

import orjson
import pytest
from click.testing import CliRunner
from kafka import KafkaConsumer, TopicPartition

from streams.cli.main import main
from streams.replay.run import ReplayOptions, isolated, run_replay
from streams.replay.window import Envelopes, interaction_messages, split_window
from streams.services.embedded import free_port
from streams.settings import Settings
from streams.topics import default_partition
from towers.datasets import MarketConfig, market_dataset


def _events(n: int, users: int) -> list[tuple[bytes, bytes]]:
    return [(f"u{j % users}".encode(),
             orjson.dumps({"event_id": f"e{j}", "user_id": f"u{j % users}"}))
            for j in range(n)]


def test_envelopes_keep_each_partitions_events_in_order() -> None:
    events = _events(103, users=7)
    envelopes = Envelopes(iter(events), size=10, partitions=3, linger_s=60.0)
    sent = list(envelopes)
    assert envelopes.events == 103
    per_partition: dict[int, list[str]] = {}
    for key, value in sent:
        body = orjson.loads(value)
        assert 1 <= len(body) <= 10
        p = default_partition(key, 3)  # where the producer's default partitioner sends it
        assert {default_partition(e["user_id"].encode(), 3) for e in body} == {p}
        per_partition.setdefault(p, []).extend(e["event_id"] for e in body)
    for p, ids in per_partition.items():
        assert ids == [orjson.loads(v)["event_id"] for k, v in events
                       if default_partition(k, 3) == p]
    assert sum(len(orjson.loads(v)) == 10 for _, v in sent) >= 103 // 10 - 3  # mostly full


def test_a_partial_envelope_leaves_after_the_linger() -> None:
    def slow() -> Iterator[tuple[bytes, bytes]]:
        yield from _events(3, users=1)
        time.sleep(0.05)
        yield (b"u0", orjson.dumps({"event_id": "late", "user_id": "u0"}))

    sent = [orjson.loads(v) for _, v in Envelopes(slow(), size=10, partitions=2,
                                                   linger_s=0.02)]
    assert [[e["event_id"] for e in body] for body in sent] == [["e0", "e1", "e2"], ["late"]]


def test_envelopes_exclude_one_event_per_batch() -> None:
    with pytest.raises(ValueError, match="one-per-batch"):
        ReplayOptions(one_per_batch=True, envelope=5)


@pytest.mark.services
def test_an_enveloped_replay_reaches_every_users_last_event(broker, redis_server,  # type: ignore[no-untyped-def]
                                                            tmp_path) -> None:
    data = market_dataset(MarketConfig(seed=4, n_stores=30, n_skus=60, days=30))
    window = split_window(data, start="test", limit=300)
    assert len(list(interaction_messages(window))) == 300
    base = Settings(kafka_url=broker.url, redis_url=redis_server.url, home=str(tmp_path),
                    partitions=2, rebalance_timeout_s=2.0, web_port=free_port())
    settings = isolated(base)
    outcome = run_replay(settings, window, ReplayOptions(envelope=25, workers=1, timeout_s=120),
                         logdir=tmp_path / "logs")
    named = {r["last_event_id"] for lists in outcome.lists.values() for r in lists}
    assert set(window.last_event_of().values()) <= named  # every user applied to its end
    report = outcome.report
    assert report["timeline"]["produced"][-1][1] == 300  # counted in events, not messages

    topic = settings.topics.interactions
    consumer = KafkaConsumer(bootstrap_servers=broker.url, auto_offset_reset="earliest",
                             enable_auto_commit=False, consumer_timeout_ms=3000)
    consumer.assign([TopicPartition(topic, p) for p in range(settings.partitions)])
    records = [(r.partition, orjson.loads(r.value)) for r in consumer]
    consumer.close()
    messages = [m for _, m in records]
    assert all(isinstance(m, list) and 1 <= len(m) <= 25 for m in messages)
    # the producer sent each envelope where each of its events would have gone alone
    assert all(default_partition(e["user_id"].encode(), settings.partitions) == p
               for p, m in records for e in m)
    assert len(messages) < 300 // 5  # grouped: a message holds many events
    assert sorted(e["event_id"] for m in messages for e in m) == sorted(window.event_ids)
    stream = report["systems"]["nearline"]["stream"]
    assert stream["events"] > 0 and 0 < stream["HitRate@50"] <= 1


def test_the_cli_refuses_envelopes_with_one_event_per_batch() -> None:
    result = CliRunner().invoke(main, ["replay", "--dataset", "market", "--envelope", "10",
                                       "--one-per-batch"],
                                env={"NEARLINE_KAFKA_URL": "127.0.0.1:1",
                                     "NEARLINE_REDIS_URL": "redis://127.0.0.1:1"})
    assert result.exit_code == 2 and "--envelope" in result.output, result.output

"""`nearline load` (formerly `replay --loop`): the window as endless new events for running
workers."""

from __future__ import annotations

import uuid

import orjson
import pytest
from click.testing import CliRunner
from kafka import KafkaConsumer, TopicPartition

from streams.cli.main import main
from streams.replay.window import interaction_messages, split_window
from towers.datasets import MarketConfig, market_dataset


@pytest.fixture(scope="module")
def window():  # type: ignore[no-untyped-def]
    data = market_dataset(MarketConfig(seed=5, n_stores=10, n_skus=30, days=20))
    return split_window(data, start="test", limit=40)


def test_each_pass_is_new_events_later_in_time(window) -> None:  # type: ignore[no-untyped-def]
    three = [orjson.loads(v) for _, v, _ in interaction_messages(window, passes=3)]
    assert len(three) == 3 * 40
    assert len({e["event_id"] for e in three}) == len(three)  # nothing is a redelivery
    first, second = three[:40], three[40:80]
    assert [e["event_id"] for e in first] == window.event_ids
    assert all(e["event_id"].endswith("~1") for e in second)
    assert min(e["ts"] for e in second) > max(e["ts"] for e in first)
    assert [e["item_id"] for e in second] == [e["item_id"] for e in first]


@pytest.mark.services
def test_loop_produces_at_the_rate_for_the_duration(broker, redis_server, tmp_path) -> None:  # type: ignore[no-untyped-def]
    topic = f"load-{uuid.uuid4().hex[:8]}"
    env = {"NEARLINE_KAFKA_URL": broker.url, "NEARLINE_REDIS_URL": redis_server.url,
           "NEARLINE_HOME": str(tmp_path), "NEARLINE_TOPIC_INTERACTIONS": topic}
    result = CliRunner().invoke(main, ["load", "--dataset", "market", "--limit", "50",
                                       "--max-rate", "300", "--duration", "2"], env=env)
    assert result.exit_code == 0, result.output
    produced = int(result.output.split("produced ")[1].split()[0])
    assert 300 <= produced <= 700  # about 2 s at 300/s, more than one pass of 50

    consumer = KafkaConsumer(bootstrap_servers=broker.url, auto_offset_reset="earliest",
                             enable_auto_commit=False, consumer_timeout_ms=3000)
    parts = consumer.partitions_for_topic(topic) or {0}
    consumer.assign([TopicPartition(topic, p) for p in parts])
    ids = [orjson.loads(r.value)["event_id"] for r in consumer]
    consumer.close()
    assert len(ids) == produced and len(set(ids)) == produced
    assert any(i.endswith("~2") for i in ids)


def test_a_load_needs_a_rate_and_is_not_scored() -> None:
    env = {"NEARLINE_KAFKA_URL": "127.0.0.1:1", "NEARLINE_REDIS_URL": "redis://127.0.0.1:1"}
    for args in (["load", "--dataset", "market"], ["replay", "--dataset", "market", "--loop"]):
        result = CliRunner().invoke(main, args, env=env)
        assert result.exit_code == 2 and "--max-rate" in result.output, result.output
    result = CliRunner().invoke(main, ["replay", "--dataset", "market", "--loop", "--max-rate",
                                       "10", "--checkpoint", ".", "--json", "x.json"], env=env)
    assert result.exit_code == 2, result.output
    assert "--checkpoint, --json: a load" in result.output


@pytest.mark.services
def test_loop_with_envelopes_through_the_previous_spelling(broker, redis_server, tmp_path) -> None:  # type: ignore[no-untyped-def]
    topic = f"load-env-{uuid.uuid4().hex[:8]}"
    env = {"NEARLINE_KAFKA_URL": broker.url, "NEARLINE_REDIS_URL": redis_server.url,
           "NEARLINE_HOME": str(tmp_path), "NEARLINE_TOPIC_INTERACTIONS": topic,
           "NEARLINE_PARTITIONS": "3"}
    result = CliRunner().invoke(main, ["replay", "--dataset", "market", "--limit", "50",
                                       "--loop", "--max-rate", "300", "--duration", "2",
                                       "--envelope", "10"], env=env)
    assert result.exit_code == 0, result.output
    produced = int(result.output.split("produced ")[1].split()[0])
    assert 300 <= produced <= 700

    consumer = KafkaConsumer(bootstrap_servers=broker.url, auto_offset_reset="earliest",
                             enable_auto_commit=False, consumer_timeout_ms=3000)
    parts = consumer.partitions_for_topic(topic) or {0}
    assert len(parts) == 3
    consumer.assign([TopicPartition(topic, p) for p in parts])
    messages = [orjson.loads(r.value) for r in consumer]
    consumer.close()
    assert all(isinstance(m, list) and 1 <= len(m) <= 10 for m in messages)
    ids = [e["event_id"] for m in messages for e in m]
    assert len(ids) == produced and len(set(ids)) == produced
    assert len(messages) < produced / 3  # most envelopes hold several events

"""The harness itself: the real broker and Redis answer on loopback."""

from __future__ import annotations

import uuid

import pytest
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import KafkaAdminClient, NewTopic

pytestmark = pytest.mark.services


def test_broker_produce_and_consume_round_trip(broker) -> None:  # type: ignore[no-untyped-def]
    topic = f"smoke-{uuid.uuid4().hex[:8]}"
    admin = KafkaAdminClient(bootstrap_servers=broker.url)
    admin.create_topics([NewTopic(topic, num_partitions=2, replication_factor=1)])
    admin.close()

    producer = KafkaProducer(bootstrap_servers=broker.url)
    sent = {f"user-{i}".encode(): f"event-{i}".encode() for i in range(20)}
    for key, value in sent.items():
        producer.send(topic, key=key, value=value)
    producer.flush()
    producer.close()

    consumer = KafkaConsumer(bootstrap_servers=broker.url, auto_offset_reset="earliest",
                             enable_auto_commit=False, consumer_timeout_ms=10_000)
    consumer.assign([TopicPartition(topic, p) for p in (0, 1)])
    got = {}
    for message in consumer:
        got[message.key] = message.value
        if len(got) == len(sent):
            break
    consumer.close()
    assert got == sent


def test_broker_consumer_group_joins_quickly(broker) -> None:  # type: ignore[no-untyped-def]
    topic = f"smoke-group-{uuid.uuid4().hex[:8]}"
    producer = KafkaProducer(bootstrap_servers=broker.url)
    for i in range(5):
        producer.send(topic, key=b"k", value=str(i).encode())
    producer.flush()
    producer.close()
    # A small max_poll_interval keeps the group join (which waits the whole rebalance
    # timeout on this broker) short.
    consumer = KafkaConsumer(topic, bootstrap_servers=broker.url, group_id=topic,
                             auto_offset_reset="earliest", max_poll_interval_ms=2000,
                             session_timeout_ms=6000, heartbeat_interval_ms=500,
                             consumer_timeout_ms=15_000)
    values = [m.value for _, m in zip(range(5), consumer, strict=False)]
    consumer.close()
    assert values == [b"0", b"1", b"2", b"3", b"4"]


def test_redis_round_trip(redis_client) -> None:  # type: ignore[no-untyped-def]
    redis_client.hset("user:1", mapping={"a": "1", "b": "2"})
    assert redis_client.hgetall("user:1") == {b"a": b"1", b"b": b"2"}
    assert redis_client.ping()

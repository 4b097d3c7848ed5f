"""Creating the topics a deployment uses, with the configured partition count.

Topics are created explicitly before any worker starts: the embedded broker would
auto-create unknown topics with its own default partition count, and a topic's
partition count decides how far the workers can scale out.
"""

from __future__ import annotations

import logging
import socket
from typing import Any

from kafka import KafkaConsumer
from kafka.admin import KafkaAdminClient, NewTopic
from kafka.errors import KafkaError, TopicAlreadyExistsError
from kafka.partitioner.default import murmur2

from streams.errors import ServiceError
from streams.settings import Settings

__all__ = ["admin_options", "check_reachable", "default_partition", "ensure_topics",
           "partition_count"]

logger = logging.getLogger(__name__)


def default_partition(key: bytes, partitions: int) -> int:
    """The partition a keyed message goes to with the default partitioner of the Java and
    kafka-python clients (murmur2 of the key; librdkafka defaults to CRC32)."""
    return (murmur2(key) & 0x7FFFFFFF) % partitions


def admin_options(settings: Settings) -> dict[str, Any]:
    """kafka-python connection options (security settings passed through)."""
    options: dict[str, Any] = {"bootstrap_servers": settings.kafka_url.split(","),
                                  "security_protocol": settings.kafka_security_protocol}
    if settings.kafka_sasl_mechanism:
        options.update(sasl_mechanism=settings.kafka_sasl_mechanism,
                       sasl_plain_username=settings.kafka_sasl_username,
                       sasl_plain_password=settings.kafka_sasl_password)
    if settings.kafka_ssl_cafile:
        options["ssl_cafile"] = settings.kafka_ssl_cafile
    return options


def check_reachable(settings: Settings, *, timeout_s: float = 3.0) -> None:
    """Raise ServiceError at once when no bootstrap server accepts a TCP connection.

    kafka-python retries an unreachable bootstrap list for about 30 s before it gives
    up; a plain connect answers "refused" in milliseconds, so a command whose broker is
    down says so now. Anything that accepts the connection is left to the client.
    """
    errors = []
    for server in settings.kafka_url.split(","):
        host, _, port = server.strip().rpartition(":")
        try:
            socket.create_connection((host.strip("[]") or "localhost", int(port)),
                                     timeout=timeout_s).close()
            return
        except (OSError, ValueError) as exc:
            errors.append(f"{server.strip()}: {exc}")
    raise ServiceError(f"cannot reach Kafka at {settings.kafka_url} ({'; '.join(errors)})")


def partition_count(settings: Settings, topic: str) -> int:
    """How many partitions `topic` has: what a producer's partitioner divides by."""
    check_reachable(settings)
    try:
        consumer = KafkaConsumer(**admin_options(settings))
    except KafkaError as exc:
        raise ServiceError(f"cannot reach Kafka at {settings.kafka_url}: {exc}") from exc
    try:
        parts = consumer.partitions_for_topic(topic)
    finally:
        consumer.close()
    if not parts:
        raise ServiceError(f"topic {topic} does not exist at {settings.kafka_url}")
    return len(parts)


def ensure_topics(settings: Settings, *, timeout_s: float = 30.0) -> list[str]:
    """Create every topic of `settings.topics` that is missing; returns the created ones."""
    check_reachable(settings)
    try:
        admin = KafkaAdminClient(client_id=f"{settings.app_id}-admin",
                                 request_timeout_ms=int(timeout_s * 1000),
                                 **admin_options(settings))
    except KafkaError as exc:
        raise ServiceError(f"cannot reach Kafka at {settings.kafka_url}: {exc}") from exc
    try:
        existing = set(admin.list_topics())
        wanted = [t for t in settings.topics.all() if t not in existing]
        created = []
        for name in wanted:
            # announcements are rare and ordered: one partition, one index agent owns it
            n = 1 if name == settings.topics.checkpoints else settings.partitions
            try:
                admin.create_topics([NewTopic(name, n, 1)])
                created.append(name)
            except TopicAlreadyExistsError:  # another worker won the race
                pass
        if created:
            logger.info("created topics %s with %s partitions", created, settings.partitions)
        return created
    except KafkaError as exc:
        raise ServiceError(f"cannot create topics on {settings.kafka_url}: {exc}") from exc
    finally:
        admin.close()

"""Shared fixtures: a real Kafka-protocol broker and a real redis-server on free loopback ports."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from streams.services.embedded import EmbeddedBroker, EmbeddedRedis

REPO = Path(__file__).resolve().parent.parent


def data_root() -> Path | None:
    """The public data sets: $NEARLINE_DATA, else ../shared/data when it exists."""
    env = os.environ.get("NEARLINE_DATA")
    if env:
        return Path(env)
    default = REPO.parent / "shared" / "data"
    return default if default.is_dir() else None


@pytest.fixture(scope="session")
def shared_data() -> Path:
    root = data_root()
    if root is None or not root.is_dir():
        pytest.skip("public data sets not found: set NEARLINE_DATA to the folder holding "
                    "movielens/ml-100k and retail/ta_feng")
    return root


@pytest.fixture(scope="session")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedBroker]:
    server = EmbeddedBroker().start(workdir=tmp_path_factory.mktemp("tansu"))
    yield server
    server.stop()


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedRedis]:
    server = EmbeddedRedis().start(workdir=tmp_path_factory.mktemp("redis"))
    yield server
    server.stop()


@pytest.fixture()
def redis_client(redis_server: EmbeddedRedis):  # type: ignore[no-untyped-def]
    import redis

    client = redis.Redis.from_url(redis_server.url)
    client.flushdb()
    yield client
    client.close()

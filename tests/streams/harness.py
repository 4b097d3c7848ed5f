"""Running real worker processes against the test broker and Redis."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import orjson
from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from streams.services.embedded import free_port
from streams.worker.records import DeadLetter, RecallResult

REPO = Path(__file__).resolve().parents[2]
TOPICS = ("interactions", "context", "items", "checkpoints", "recalls", "dead_letter")


def deployment_env(broker_url: str, redis_url: str, home: Path, **extra: object
                   ) -> dict[str, str]:
    """NEARLINE_* variables of one isolated deployment (own topics, group, key prefix)."""
    tag = uuid.uuid4().hex[:8]
    env = {"NEARLINE_KAFKA_URL": broker_url, "NEARLINE_REDIS_URL": redis_url,
           "NEARLINE_HOME": str(home), "NEARLINE_APP_ID": f"nl-{tag}",
           "NEARLINE_STATE_PREFIX": f"t{tag}", "NEARLINE_PARTITIONS": "2",
           "NEARLINE_WEB_PORT": str(free_port()), "NEARLINE_REBALANCE_TIMEOUT_S": "2"}
    env.update({f"NEARLINE_TOPIC_{t.upper()}": f"{t}-{tag}" for t in TOPICS})
    env.update({f"NEARLINE_{k.upper()}": str(v) for k, v in extra.items()})
    return env


class WorkerProcess:
    """`nearline worker` in a subprocess, logs in a file."""

    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.env = env
        self.log = log
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def web(self) -> str:
        return f"http://127.0.0.1:{self.env['NEARLINE_WEB_PORT']}"

    def start(self, timeout: float = 60.0) -> WorkerProcess:
        code = "from streams.cli.worker import worker; worker()"
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen([sys.executable, "-c", code], cwd=REPO,
                                         env={**os.environ, **self.env}, stdout=out,
                                         stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"worker exited {self.proc.returncode}:\n{self.logs()}")
            try:
                if get_json(self.web + "/healthz")[0] == 200:
                    return self
            except OSError:
                pass
            time.sleep(0.2)
        raise TimeoutError(f"worker not healthy after {timeout} s:\n{self.logs()}")

    def logs(self) -> str:
        return self.log.read_text(errors="replace")[-5000:]

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30.0) -> int | None:
        if self.proc is None or self.proc.poll() is not None:
            return None if self.proc is None else self.proc.returncode
        self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait(10)


def get_json(url: str) -> tuple[int, Any]:
    try:
        with urllib.request.urlopen(url, timeout=10) as r:
            return r.status, orjson.loads(r.read())
    except urllib.error.HTTPError as exc:
        return exc.code, orjson.loads(exc.read() or b"null")


def produce(broker_url: str, topic: str, values: Iterable[tuple[bytes | None, bytes]]) -> int:
    producer = KafkaProducer(bootstrap_servers=broker_url, linger_ms=5)
    n = 0
    for key, value in values:
        producer.send(topic, key=key, value=value)
        n += 1
    producer.flush()
    producer.close()
    return n


def consume(broker_url: str, topic: str, *, partitions: int, done: Callable[[list[Any]], bool],
            timeout: float = 60.0) -> list[Any]:
    """Read `topic` from the start (no group) until `done(records)` or the timeout."""
    consumer = KafkaConsumer(bootstrap_servers=broker_url, auto_offset_reset="earliest",
                             enable_auto_commit=False)
    consumer.assign([TopicPartition(topic, p) for p in range(partitions)])
    records: list[Any] = []
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline and not done(records):
            for batch in consumer.poll(200).values():
                records.extend(batch)
    finally:
        consumer.close()
    return records


class CollectingSink:
    """A pipeline sink that keeps what it is given (lists and dead letters) in memory."""

    def __init__(self) -> None:
        self.lists: list[RecallResult] = []
        self.letters: list[DeadLetter] = []

    async def recalls(self, results: Sequence[RecallResult]) -> None:
        self.lists.extend(results)

    async def dead_letters(self, letters: Sequence[DeadLetter]) -> None:
        self.letters.extend(letters)

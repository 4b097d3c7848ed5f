"""Reliability suite: a fixed event stream, isolated deployments of real workers, accounting.

Every scenario runs real `nearline worker` processes against the real broker and Redis,
each deployment with its own topics, consumer group and key prefix, and compares the
Redis state it ends with to the state of one uninterrupted single-delivery run of the
same stream (the session fixture `reference`). Each scenario records an accounting row;
the table is printed at the end of the session.
"""

from __future__ import annotations

import asyncio
import base64
import math
import os
import random
import subprocess
import sys
import threading
import time
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import pytest
import redis
from kafka import KafkaProducer

from streams.services.embedded import free_port
from streams.settings import Settings, load_settings
from streams.state.connect import open_state_store
from streams.state.contract import StateConfig
from tests.streams.harness import WorkerProcess, consume, deployment_env, get_json

T0 = 1_700_000_000.0
ACCOUNTS: list[Accounting] = []


@dataclass(frozen=True)
class Message:
    kind: str  # interactions | context | items
    key: bytes | None
    value: bytes | None
    event_id: str | None = None  # None: must be dead-lettered ...
    reason: str = ""  # ... with this reason
    user: str | None = None


@dataclass
class Stream:
    messages: list[Message]

    @property
    def good(self) -> list[Message]:
        return [m for m in self.messages if m.event_id is not None]

    @property
    def bad(self) -> list[Message]:
        return [m for m in self.messages if m.event_id is None]


def _bad(kind: str, j: int) -> tuple[bytes, str]:
    """The j-th malformed message of a topic, distinct bytes, and its dead-letter reason."""
    if kind == "interactions":
        base = {"event_id": f"bad{j}", "user_id": "r00", "item_id": "sku00",
                "type": "purchase", "ts": T0}
        cases = [(b"{not json %d" % j, "not_json"),
                 (orjson.dumps({k: v for k, v in base.items() if k != "user_id"}),
                  "missing_field"),
                 (orjson.dumps({**base, "quantity": -1}), "bad_value"),
                 (orjson.dumps({**base, "colour": "red"}), "unknown_field"),
                 (orjson.dumps({**base, "ts": 9e10}), "future_ts"),
                 (orjson.dumps({**base, "user_id": "r\x0000"}), "bad_value"),
                 (b'{"event_id":"bad%d","quantity":NaN}' % j, "not_json"),
                 (orjson.dumps(f"bad{j}"), "not_object")]  # an array is an envelope
    elif kind == "context":
        base = {"event_id": f"badc{j}", "ts": T0, "region": "north"}
        cases = [(orjson.dumps({**base, "temperature": "warm"}), "bad_value"),
                 (orjson.dumps({**base, "stock": ["sku01"]}), "bad_value"),
                 (orjson.dumps({"event_id": f"badc{j}"}), "missing_field")]
    else:
        base = {"event_id": f"badt{j}", "ts": T0, "item_id": "sku01"}
        cases = [(orjson.dumps({**base, "available": "yes"}), "bad_value"),
                 (orjson.dumps({k: v for k, v in base.items() if k != "item_id"}),
                  "missing_field"),
                 (orjson.dumps({**base, "ts": float("nan")}), "bad_value")]
    return cases[j % len(cases)]


def build_stream(*, users: int = 30, interactions: int = 540, seed: int = 11) -> Stream:
    """Interactions (10% late by an hour), region context, item updates, malformed input.

    Timestamps never tie across topics, so the state does not depend on how the agents
    of different topics interleave.
    """
    rng = random.Random(seed)
    region = {f"r{u:02d}": ("north", "south", "")[u % 3] for u in range(users)}
    out: list[Message] = []
    for i in range(interactions):
        user = f"r{rng.randrange(users):02d}"
        event = {"event_id": f"i{i:05d}", "user_id": user, "item_id": f"sku{rng.randrange(40):02d}",
                 "type": rng.choice(("purchase", "purchase", "cart", "view")),
                 "quantity": rng.choice((1.0, 2.0, 0.5, 3.0)),
                 "ts": T0 + i * 7.0 - (3600.0 if rng.random() < 0.1 else 0.0)}
        if region[user]:
            event["region"] = region[user]
        out.append(Message("interactions", user.encode(), orjson.dumps(event),
                           event["event_id"], user=user))
        for kind, every, at in (("interactions", 45, 20), ("context", 90, 33), ("items", 90, 77)):
            if i % every == at:
                value, reason = _bad(kind, i // every)
                out.append(Message(kind, b"bad", value, reason=reason))
        if i % 40 == 5:
            j = i // 40
            ctx = {"event_id": f"c{j:03d}", "ts": T0 + i * 7.0 + 0.5,
                   "region": ("north", "south")[j % 2], "weather": rng.choice(("rain", "sun")),
                   "temperature": round(rng.uniform(-5, 30), 1), "holiday": j % 5 == 0}
            if j % 3 == 0:
                ctx["stock"] = {f"sku{rng.randrange(40):02d}": rng.random() < 0.5}
            out.append(Message("context", None, orjson.dumps(ctx), ctx["event_id"]))
        if i % 40 == 25:
            item = {"event_id": f"t{i // 40:03d}", "ts": T0 + i * 7.0 + 0.25,
                    "item_id": f"sku{rng.randrange(40):02d}", "available": rng.random() < 0.5}
            out.append(Message("items", item["item_id"].encode(), orjson.dumps(item),
                               item["event_id"]))
    return Stream(out)


STREAM = build_stream()


# --- worker processes ---------------------------------------------------------------

def parse_metrics(text: str) -> dict[str, float]:
    """Prometheus text format: each sample name -> sum over its label sets."""
    out: dict[str, float] = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        name_labels, _, value = line.rpartition(" ")
        name = name_labels.split("{", 1)[0].strip()
        out[name] = out.get(name, 0.0) + float(value)
    return out


class Worker(WorkerProcess):
    """`nearline worker [args]` in a subprocess, with the probes the scenarios need."""

    def __init__(self, env: dict[str, str], log: Path, *, args: Sequence[str] = ()) -> None:
        super().__init__(env, log)
        self.args = list(args)

    def start(self, timeout: float = 60.0) -> Worker:
        code = "from streams.cli.worker import worker; worker()"
        with open(self.log, "ab") as out:  # cwd: Faust puts its <app_id>-data directory there
            self.proc = subprocess.Popen([sys.executable, "-c", code, *self.args],
                                         cwd=self.log.parent,
                                         env={**os.environ, **self.env}, stdout=out,
                                         stderr=subprocess.STDOUT)
        self.wait(lambda h: h is not None, timeout, "healthy")
        return self

    def health(self) -> dict[str, Any] | None:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise RuntimeError(f"worker exited {self.proc.returncode}:\n{self.logs()}")
        try:
            status, body = get_json(self.web + "/healthz")
        except OSError:
            return None
        return body if status == 200 else None

    def wait(self, ready: Callable[[dict[str, Any] | None], bool], timeout: float, what: str
             ) -> None:
        deadline = time.monotonic() + timeout
        while not ready(self.health()):
            if time.monotonic() > deadline:
                raise TimeoutError(f"worker not {what} after {timeout} s:\n{self.logs()}")
            time.sleep(0.1)

    def wait_assigned(self, n: int, timeout: float = 60.0) -> None:
        """Until this worker consumes at least `n` interaction partitions."""
        self.wait(lambda h: h is not None and h["interaction_partitions"] >= n, timeout,
                  f"assigned {n} partition(s)")

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def metrics(self) -> dict[str, float]:
        with urllib.request.urlopen(self.web + "/metrics", timeout=10) as r:
            return parse_metrics(r.read().decode())


# --- producing ----------------------------------------------------------------------

class Pacer(threading.Thread):
    """Produces messages at a fixed rate in the background; counts the acknowledged ones.

    With `hold_at`, it stops before that message until `release()`: the stream is then
    sure to go on after whatever the test does meanwhile.
    """

    def __init__(self, deployment: Deployment, messages: Sequence[Message], rate: float,
                 hold_at: int | None = None) -> None:
        super().__init__(daemon=True)
        self.deployment, self.messages, self.rate = deployment, list(messages), rate
        self.hold_at = hold_at
        self.released = threading.Event()
        self.sent = 0
        self.acked = 0
        self.error: BaseException | None = None

    def _ack(self, _: object) -> None:
        self.acked += 1

    def run(self) -> None:
        try:
            producer = KafkaProducer(bootstrap_servers=self.deployment.settings.kafka_url,
                                     linger_ms=2)
            started = time.monotonic()
            for i, m in enumerate(self.messages):
                if i == self.hold_at:
                    self.released.wait(120)
                    started = time.monotonic() - i / self.rate
                delay = started + i / self.rate - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                producer.send(self.deployment.topic(m.kind), key=m.key,
                              value=m.value).add_callback(self._ack)
                self.sent += 1
            producer.flush()
            producer.close()
        except BaseException as exc:  # reported by finish()
            self.error = exc

    def release(self) -> None:
        assert self.sent < len(self.messages), "the stream ended before the release"
        self.released.set()

    def wait_sent(self, n: int, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while self.sent < n and time.monotonic() < deadline:
            time.sleep(0.02)
        assert self.sent >= n, f"only {self.sent} of {n} messages produced"

    def finish(self, timeout: float = 120.0) -> None:
        self.join(timeout)
        assert not self.is_alive() and self.error is None, self.error
        assert self.acked == len(self.messages)


# --- deployments and their state ----------------------------------------------------

class Deployment:
    """One isolated deployment (own topics, group, key prefix) on a broker and a Redis."""

    def __init__(self, broker_url: str, redis_url: str, home: Path, **extra: object) -> None:
        self.home = home
        self.env = deployment_env(broker_url, redis_url, home, **extra)
        self.settings: Settings = load_settings(self.env)
        self.workers: list[Worker] = []

    @property
    def prefix(self) -> str:
        return self.settings.state_prefix

    def topic(self, kind: str) -> str:
        return getattr(self.settings.topics, kind)

    def worker(self, name: str = "w1", *, args: Sequence[str] = (), assigned: int = 0,
               **env: object) -> Worker:
        """A started worker; `assigned`: wait until it consumes that many partitions."""
        extra = {f"NEARLINE_{k.upper()}": str(v) for k, v in env.items()}
        if self.workers:  # every worker of a deployment needs its own HTTP port
            extra.setdefault("NEARLINE_WEB_PORT", str(free_port()))
        w = Worker({**self.env, **extra}, self.home / f"{name}.log", args=args)
        self.workers.append(w)
        w.start()
        if assigned:
            w.wait_assigned(assigned)
        return w

    def produce(self, messages: Sequence[Message]) -> None:
        producer = KafkaProducer(bootstrap_servers=self.settings.kafka_url, linger_ms=5)
        for m in messages:
            producer.send(self.topic(m.kind), key=m.key, value=m.value)
        producer.flush()
        producer.close()

    def pace(self, messages: Sequence[Message], rate: float, *, hold_at: int | None = None
             ) -> Pacer:
        pacer = Pacer(self, messages, rate, hold_at)
        pacer.start()
        return pacer

    def redis(self) -> redis.Redis:
        return redis.Redis.from_url(self.settings.redis_url)

    def snapshot(self) -> dict[str, Any]:
        """The Redis store's snapshot of this prefix (all state but counters)."""
        async def read() -> dict[str, Any]:
            store = open_state_store(self.settings.redis_url,
                                     config=StateConfig(prefix=self.prefix))
            try:
                return await store.snapshot()
            finally:
                await store.close()
        return asyncio.run(read())

    def board(self) -> dict[str, Any]:
        """The popularity board as shares of each ranking's total (anchor-free)."""
        client = self.redis()
        try:
            key = f"{self.prefix}:{{pop}}:"
            totals = {k.decode(): float(v) for k, v in client.hgetall(key + "totals").items()}
            regions = sorted(r.decode() for r in client.smembers(key + "regions"))
            out: dict[str, Any] = {"regions": regions, "ids": sorted(
                (i.decode(), ts) for i, ts in client.zrange(key + "ids", 0, -1, withscores=True))}
            for region in ["", *regions]:
                name = key + (f"r:{region}" if region else "g")
                out[f"share:{region}"] = {i.decode(): s / totals[region] for i, s in
                                          client.zrange(name, 0, -1, withscores=True)}
            return out
        finally:
            client.close()

    def counters(self) -> dict[str, int]:
        client = self.redis()
        try:
            raw = client.hgetall(f"{self.prefix}:counters")
        finally:
            client.close()
        return {"applied": 0, "duplicates": 0} | {k.decode(): int(v) for k, v in raw.items()}

    def dead_letters(self, expected: Sequence[Message] = (), timeout: float = 60.0
                     ) -> list[dict[str, Any]]:
        """The dead-letter topic from the start, read until it holds every `expected`."""
        want = Counter(m.value or b"" for m in expected)

        def done(records: list[Any]) -> bool:
            got = Counter(base64.b64decode(orjson.loads(r.value)["original_b64"])
                          for r in records)
            return all(got[v] >= n for v, n in want.items())
        records = consume(self.settings.kafka_url, self.topic("dead_letter"),
                          partitions=self.settings.partitions, done=done, timeout=timeout)
        assert done(records), f"dead letters missing after {timeout} s"
        return [orjson.loads(r.value) for r in records]

    def wait_applied(self, messages: Sequence[Message], timeout: float = 90.0
                     ) -> dict[str, Any]:
        """Until every good event of `messages` is in the state and every user's list
        names its last event; returns the snapshot."""
        good = [m for m in messages if m.event_id is not None]
        want = {m.event_id for m in good}
        last = {m.user: m.event_id for m in good if m.kind == "interactions"}
        deadline = time.monotonic() + timeout
        while True:
            snap = self.snapshot()
            have = applied_ids(snap)
            lists = {u: (s.get("recall") or {}).get("last_event_id")
                     for u, s in snap["users"].items()}
            if want <= have and all(lists.get(u) == e for u, e in last.items()):
                return snap
            if time.monotonic() > deadline:
                logs = "\n".join(w.logs()[-2000:] for w in self.workers)
                raise AssertionError(f"{len(want - have)} events not applied after {timeout} "
                                     f"s, e.g. {sorted(want - have)[:5]}\n{logs}")
            time.sleep(0.3)

    def close(self) -> None:
        for w in self.workers:
            w.stop()


def applied_ids(snapshot: dict[str, Any]) -> set[str]:
    """Every event id the state recorded as processed (users' and context ids)."""
    ids = {i for s in snapshot["users"].values() for _, i in s.get("ids", [])}
    return ids | {i for _, i in snapshot["context_ids"]}


def normal_form(snapshot: dict[str, Any], board: dict[str, Any]) -> dict[str, Any]:
    """State with the clocks left out: when an id was processed, when and how (against
    the popularity of that moment) a list was computed. What a list was computed from
    (its last event) stays."""
    users = {}
    for user, s in snapshot["users"].items():
        recall = s.get("recall")
        users[user] = {
            "seq": s.get("seq"), "features": s.get("features"), "seen": s.get("seen"),
            "ids": sorted(i for _, i in s.get("ids", [])),
            "recall": None if recall is None else {
                "last_event_id": recall["last_event_id"],
                "last_event_ts": recall["last_event_ts"], "version": recall["version"],
                "has_items": bool(recall["items"])},
            "embeddings": sorted(s.get("embeddings", {}))}
    return {"users": users, "regions": snapshot["regions"], "stock_ts": snapshot["stock_ts"],
            "unavailable": snapshot["unavailable"], "live_version": snapshot["live_version"],
            "context_ids": sorted(i for _, i in snapshot["context_ids"]), "board": board}


def differences(a: Any, b: Any, path: str = "") -> list[str]:
    """Where two normal forms differ (floats within 1e-12 relative: board shares)."""
    if isinstance(a, dict) and isinstance(b, dict):
        out = [f"{path}/{k}: only in {'first' if k in a else 'second'}"
               for k in sorted(set(a) ^ set(b), key=str)]
        for k in sorted(set(a) & set(b), key=str):
            out += differences(a[k], b[k], f"{path}/{k}")
        return out
    if isinstance(a, list | tuple) and isinstance(b, list | tuple) and len(a) == len(b):
        return [d for i, (x, y) in enumerate(zip(a, b, strict=True))
                for d in differences(x, y, f"{path}[{i}]")]
    if isinstance(a, float) and isinstance(b, float):
        return [] if math.isclose(a, b, rel_tol=1e-12) else [f"{path}: {a!r} != {b!r}"]
    return [] if a == b else [f"{path}: {a!r:.200} != {b!r:.200}"]


# --- accounting ---------------------------------------------------------------------

@dataclass
class Accounting:
    scenario: str
    events: int  # distinct events produced, good and bad
    produced: int  # messages produced, redelivered copies included
    applied: int  # distinct good events recorded in the Redis state
    dead_lettered: int  # distinct bad messages found in the dead-letter topic
    lost: int  # events neither applied nor dead-lettered
    duplicated: int  # deliveries that changed nothing: duplicates counter + repeated letters
    counters: dict[str, int] = field(default_factory=dict)


def account(scenario: str, stream: Stream, snapshot: dict[str, Any],
            letters: Sequence[dict[str, Any]], counters: dict[str, int], *, produced: int
            ) -> Accounting:
    """Check every event ended applied once or dead-lettered with its reason; record a row."""
    good = stream.good
    have = applied_ids(snapshot)
    assert have <= {m.event_id for m in good}, f"unexpected ids applied: {have}"
    per_user = Counter(m.user for m in good if m.kind == "interactions")
    for user, n in per_user.items():  # once: one id, one sequence entry, one count each
        s = snapshot["users"].get(user, {})
        assert len(s.get("ids", [])) == len(s.get("seq", [])) == n, user
        assert s["features"]["events"] == n, user
    reason_of = {m.value or b"": m.reason for m in stream.bad}
    got = Counter(base64.b64decode(d["original_b64"]) for d in letters)
    assert set(got) <= set(reason_of), "a valid event reached the dead-letter topic"
    for d in letters:
        assert d["reason"] == reason_of[base64.b64decode(d["original_b64"])], d
    dead = sum(1 for v in reason_of if got[v])
    applied = len(have)
    row = Accounting(scenario, len(stream.messages), produced, applied, dead,
                     len(stream.messages) - applied - dead,
                     counters["duplicates"] + sum(got.values()) - dead, counters)
    ACCOUNTS.append(row)
    print(row)
    assert row.lost == 0, row
    return row


def check_metrics(metrics: dict[str, float]) -> None:
    """A quiescent worker: every message it consumed was applied, a duplicate or dead."""
    consumed = metrics.get("nearline_events_in_total", 0.0)
    assert consumed == (metrics.get("nearline_events_applied_total", 0.0)
                        + metrics.get("nearline_events_duplicate_total", 0.0)
                        + metrics.get("nearline_events_dead_lettered_total", 0.0)), metrics


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not ACCOUNTS:
        return
    tr = terminalreporter
    tr.section("reliability accounting")
    head = ("scenario", "events", "produced", "applied", "dead-lettered", "lost", "duplicated")
    tr.write_line(f"{head[0]:<44}" + "".join(f"{h:>14}" for h in head[1:]))
    for a in ACCOUNTS:
        tr.write_line(f"{a.scenario:<44}" + "".join(
            f"{v:>14}" for v in (a.events, a.produced, a.applied, a.dead_lettered, a.lost,
                                 a.duplicated)))


# --- fixtures -----------------------------------------------------------------------

@dataclass(frozen=True)
class Reference:
    state: dict[str, Any]  # normal form of one uninterrupted single delivery
    users_with_lists: frozenset[str]


@pytest.fixture(scope="session")
def reference(broker: Any, redis_server: Any,
              tmp_path_factory: pytest.TempPathFactory) -> Reference:
    """STREAM delivered once to one worker, uninterrupted."""
    d = Deployment(broker.url, redis_server.url, tmp_path_factory.mktemp("reference"))
    try:
        w = d.worker("reference", assigned=d.settings.partitions)
        d.produce(STREAM.messages)
        snap = d.wait_applied(STREAM.messages)
        letters = d.dead_letters(STREAM.bad)
        metrics = w.metrics()
        counters = d.counters()
        assert w.stop() == 0, w.logs()
    finally:
        d.close()
    account("single delivery (reference)", STREAM, snap, letters, counters,
            produced=len(STREAM.messages))
    check_metrics(metrics)
    assert counters == {"applied": len(STREAM.good), "duplicates": 0}
    assert metrics["nearline_events_in_total"] == len(STREAM.messages)
    assert metrics["nearline_events_dead_lettered_total"] == len(STREAM.bad) == len(letters)
    users = frozenset(u for u, s in snap["users"].items() if s.get("recall"))
    return Reference(normal_form(snap, d.board()), users)


@pytest.fixture()
def deploy(broker: Any, redis_server: Any, tmp_path: Path) -> Iterator[Any]:
    """Factory of isolated deployments (defaults: the session broker and Redis)."""
    made: list[Deployment] = []

    def make(*, broker_url: str | None = None, redis_url: str | None = None,
             name: str = "d", **extra: object) -> Deployment:
        home = tmp_path / f"{name}{len(made)}"
        home.mkdir()
        made.append(Deployment(broker_url or broker.url, redis_url or redis_server.url,
                               home, **extra))
        return made[-1]
    yield make
    for d in made:
        d.close()

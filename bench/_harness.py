"""Shared pieces of the streaming benchmarks: services, events, producing, child processes.

The bench process starts its own broker and Redis, builds deployments (settings with their
own topics, consumer group and key prefix), produces interaction events and spawns the
consumers as child processes: the real worker, a raw aiokafka consumer and a no-op Faust
agent. Children report through a JSON file (`BENCH_RESULT`); `BENCH_PROFILE=path` makes a
child sample its stacks (all threads) while it consumes and write a summary there.
`BENCH_FAST_DRAIN=1` and `BENCH_SWITCH_INTERVAL=s` change a child's Faust fetch loop and
GIL hand-over interval, to measure them without touching `streams/`.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, cast

import numpy as np
import orjson
import redis
from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from streams.services.embedded import EmbeddedBroker, EmbeddedRedis
from streams.settings import Settings, TopicNames
from streams.state.contract import StateKeys
from streams.topics import default_partition

__all__ = ["Events", "Services", "StackSampler", "applied_count", "consume_until",
           "deployment", "drop_topics", "env_of", "fast_drain", "make_events", "produce_all",
           "produce_at_rate", "spawn"]

REPO = Path(__file__).resolve().parents[1]
_TYPES = np.array(["view", "click", "cart", "purchase"], dtype=object)


@dataclass
class Services:
    """An embedded broker and Redis under one work directory."""

    work: Path
    broker: EmbeddedBroker = field(default_factory=EmbeddedBroker)
    redis: EmbeddedRedis = field(default_factory=EmbeddedRedis)

    @classmethod
    def start(cls, work: Path | None = None) -> Services:
        work = work or Path(tempfile.mkdtemp(prefix="nearline-throughput-"))
        s = cls(work)
        s.broker.start(workdir=work)
        s.redis.start(workdir=work)
        return s

    def stop(self) -> None:
        self.broker.stop()
        self.redis.stop()


def deployment(services: Services, *, name: str, interactions: str | None = None,
               **overrides: Any) -> Settings:
    """Settings of one isolated deployment: own group, key prefix and topics."""
    tag = f"{name}-{uuid.uuid4().hex[:6]}"
    topics = TopicNames(**{f.name: f"bench.{f.name}.{tag}" for f in fields(TopicNames)})
    if interactions:  # several consumer groups may read one pre-filled topic
        topics = replace(topics, interactions=interactions)
    return replace(Settings(kafka_url=services.broker.url, redis_url=services.redis.url,
                            home=str(services.work), app_id=f"bench-{tag}",
                            state_prefix=f"b{tag}", topics=topics, web_port=0), **overrides)


def env_of(settings: Settings, **extra: object) -> dict[str, str]:
    """NEARLINE_* variables that make a child process use exactly `settings`."""
    env = {f"NEARLINE_{f.name.upper()}": str(getattr(settings, f.name))
           for f in fields(Settings) if f.name != "topics"}
    env.update({f"NEARLINE_TOPIC_{f.name.upper()}": getattr(settings.topics, f.name)
                for f in fields(TopicNames)})
    env.update({k: str(v) for k, v in extra.items()})
    return env


def drop_topics(settings: Settings, names: Sequence[str]) -> None:
    """Delete a finished run's topics: the in-memory broker keeps every message."""
    from kafka.admin import KafkaAdminClient

    from streams.topics import admin_options

    admin = KafkaAdminClient(**admin_options(settings))
    try:
        admin.delete_topics(list(names))
    finally:
        admin.close()


def applied_count(settings: Settings) -> int:
    """Events the workers of `settings` applied (Redis counters, duplicates included)."""
    client = redis.Redis.from_url(settings.redis_url)
    try:
        raw = client.hgetall(StateKeys(settings.state_prefix).counters)
    finally:
        client.close()
    return sum(int(v) for v in raw.values())


@dataclass(frozen=True)
class Events:
    """Interaction messages in production order, with where each one lands."""

    keys: list[bytes]
    values: list[bytes]
    partition: np.ndarray  # (n,) partition of each message (murmur2 of the key)
    position: np.ndarray  # (n,) index of the message within its partition
    users: np.ndarray  # (n,) user index
    ids: dict[str, int]  # event id -> index

    def __len__(self) -> int:
        return len(self.keys)

    def partition_sizes(self) -> np.ndarray:
        return np.bincount(self.partition, minlength=int(self.partition.max()) + 1)


def zipf_choice(rng: np.random.Generator, n: int, size: int, s: float) -> np.ndarray:
    """`n` draws from ranks 0..size-1 with P(r) ~ 1/(r+1)^s, ranks shuffled onto ids."""
    p = 1.0 / np.arange(1, size + 1) ** s
    ranks = rng.choice(size, n, p=p / p.sum())
    return rng.permutation(size)[ranks]  # hot ids spread over the id space (and partitions)


def make_events(n: int, *, users: int, items: int, partitions: int, zipf: float = 1.0,
                seed: int = 0, t0: float | None = None, span_s: float | None = None,
                prefix: str = "e") -> Events:
    """`n` interactions with Zipf users and items, keyed by user, spread over `span_s`."""
    rng = np.random.default_rng(seed)
    u = zipf_choice(rng, n, users, zipf)
    it = zipf_choice(rng, n, items, zipf)
    kinds = _TYPES[rng.choice(4, n, p=[0.6, 0.25, 0.1, 0.05])]
    start = (t0 if t0 is not None else time.time() - 3600.0)
    ts = start + np.sort(rng.uniform(0, span_s or min(3000.0, n / 10), n))
    keys, values = [], []
    for j in range(n):
        user = f"u{u[j]}"
        keys.append(user.encode())
        values.append(orjson.dumps({
            "event_id": f"{prefix}{j}", "user_id": user, "item_id": f"i{it[j]}",
            "type": kinds[j], "quantity": 1.0, "ts": round(float(ts[j]), 3),
            "region": f"r{u[j] % 4}"}))
    part = np.array([default_partition(k, partitions) for k in keys], dtype=np.int64)
    pos = np.zeros(n, dtype=np.int64)
    for p in range(partitions):
        mask = part == p
        pos[mask] = np.arange(int(mask.sum()))
    return Events(keys, values, part, pos, u, {f"{prefix}{j}": j for j in range(n)})


def producer(url: str) -> KafkaProducer:
    return KafkaProducer(bootstrap_servers=url, linger_ms=20, batch_size=1 << 19,
                         max_request_size=1 << 22, acks=1)


def produce_all(url: str, topic: str, events: Events, *, envelope: int = 0) -> float:
    """Send every event as fast as possible; returns events per second.

    envelope > 0: up to that many events per message (a JSON array), each partition's
    events grouped in order, so every user's events stay on its partition and in order.
    """
    prod = producer(url)
    start = time.perf_counter()
    if envelope > 0:
        for p in range(int(events.partition.max()) + 1):
            rows = np.flatnonzero(events.partition == p)
            for a in range(0, len(rows), envelope):
                chunk = rows[a:a + envelope]
                value = b"[" + b",".join(events.values[j] for j in chunk) + b"]"
                prod.send(topic, key=events.keys[chunk[0]], value=value, partition=p)
    else:
        for k, v, p in zip(events.keys, events.values, events.partition, strict=True):
            prod.send(topic, key=k, value=v, partition=int(p))
    prod.flush()
    elapsed = time.perf_counter() - start
    prod.close()
    return len(events) / elapsed


def produce_at_rate(url: str, topic: str, events: Events, *, rate: float) -> np.ndarray:
    """Send events at `rate` per second; returns each event's send time (unix seconds)."""
    prod = KafkaProducer(bootstrap_servers=url, linger_ms=0, acks=1)
    sent = np.zeros(len(events))
    start = time.monotonic()
    for j, (k, v, p) in enumerate(zip(events.keys, events.values, events.partition,
                                      strict=True)):
        wait = start + j / rate - time.monotonic()
        if wait > 0:
            time.sleep(wait)
        sent[j] = time.time()
        prod.send(topic, key=k, value=v, partition=int(p))
    prod.flush()
    prod.close()
    return sent


def consume_until(url: str, topic: str, *, partitions: int, done: Callable[[], bool],
                  on_value: Callable[[bytes], None], timeout: float = 120.0) -> None:
    """Read `topic` from the start (no group), feeding values, until `done()` or timeout."""
    consumer = KafkaConsumer(bootstrap_servers=url, auto_offset_reset="earliest",
                             enable_auto_commit=False, fetch_max_wait_ms=50,
                             max_partition_fetch_bytes=1 << 22)
    consumer.assign([TopicPartition(topic, p) for p in range(partitions)])
    deadline = time.monotonic() + timeout
    try:
        while not done():
            if time.monotonic() > deadline:
                raise TimeoutError(f"{topic}: not complete after {timeout:.0f} s")
            for batch in consumer.poll(200, max_records=5000).values():
                for record in batch:
                    on_value(record.value)
    finally:
        consumer.close()


def spawn(entry: str, env: dict[str, str], log: Path, args: Sequence[str] = ()
          ) -> subprocess.Popen[bytes]:
    """`python -c "from bench._harness import <entry>; <entry>()" args...`, logs in `log`."""
    code = f"from bench._harness import {entry}; {entry}()"
    with open(log, "ab") as out:
        return subprocess.Popen([sys.executable, "-c", code, *args], cwd=REPO,
                                env={**os.environ, **env}, stdout=out,
                                stderr=subprocess.STDOUT)


def stop(procs: Sequence[subprocess.Popen[bytes]], timeout: float = 20.0) -> None:
    for p in procs:
        if p.poll() is None:
            p.terminate()
    for p in procs:
        try:
            p.wait(timeout)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait(10)


def wait_for(check: Callable[[], bool], *, timeout: float, what: str,
             procs: Sequence[subprocess.Popen[bytes]] = (), every: float = 0.2) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        dead = [p for p in procs if p.poll() is not None]
        if dead:
            raise RuntimeError(f"{what}: a child exited with {dead[0].returncode}")
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not reached after {timeout:.0f} s")
        time.sleep(every)


def read_result(path: Path) -> dict[str, Any]:
    return orjson.loads(path.read_bytes())


# -- child processes ------------------------------------------------------------------------

_IDLE = {"select", "wait", "_worker", "sleep", "get", "poll", "_run_once_idle"}


class StackSampler:
    """Samples every thread's Python stack every few ms while active (a small py-spy).

    A wall-clock timer signal (SIGALRM) interrupts the main thread wherever it is, so its
    samples are not biased towards the points where it releases the GIL (a sampling
    thread only ever sees an event loop in `select`); the other threads are read from
    the handler too. Active between start() and stop(), or while the file `<path>.start`
    exists and `<path>.stop` does not (how the bench controls an unchanged worker).
    stop() writes a summary to `path`: per thread, samples, busy share, and the functions
    seen most, by self time (leaf) and by inclusive time (anywhere in the stack).
    """

    def __init__(self, path: Path, *, interval: float = 0.005) -> None:
        import signal
        import threading
        from collections import Counter

        self.path = path
        self.interval = interval
        self.stacks: Counter[tuple[str, tuple[str, ...]]] = Counter()
        self.active = False
        self.done = False
        self.started = 0.0
        self.main = threading.get_ident()
        signal.signal(signal.SIGALRM, self._sample)
        signal.setitimer(signal.ITIMER_REAL, interval, interval)
        threading.Thread(target=self._watch, name="bench-sampler", daemon=True).start()

    def start(self) -> None:
        if not self.active and not self.done:
            self.started, self.active = time.time(), True

    def stop(self) -> None:
        import signal

        if self.active:
            self.active, self.done = False, True
            signal.setitimer(signal.ITIMER_REAL, 0, 0)
            self.path.write_bytes(orjson.dumps(self.summary(time.time() - self.started)))

    def _sample(self, signum: int, frame: Any) -> None:
        import threading

        if not self.active:
            return
        self.stacks[("MainThread", _stack(frame))] += 1
        names = {t.ident: t.name for t in threading.enumerate()}
        for tid, f in sys._current_frames().items():
            if tid != self.main and names.get(tid) != "bench-sampler":
                self.stacks[(_thread_kind(names.get(tid, "?")), _stack(f))] += 1

    def _watch(self) -> None:
        start_file, stop_file = self.path.with_suffix(".start"), self.path.with_suffix(".stop")
        while not self.done:
            if start_file.exists():
                self.start()
            if stop_file.exists():
                self.stop()
            time.sleep(0.1)

    def summary(self, seconds: float, top: int = 60) -> dict[str, Any]:
        from collections import Counter, defaultdict

        threads: dict[str, dict[str, Counter[str]]] = defaultdict(
            lambda: {"self": Counter(), "incl": Counter(), "pkg": Counter()})
        totals: Counter[str] = Counter()
        busy: Counter[str] = Counter()
        for (thread, stack), n in self.stacks.items():
            totals[thread] += n
            leaf = stack[-1] if stack else "?"
            if leaf.rsplit(":", 1)[-1] not in _IDLE:
                busy[thread] += n
            c = threads[thread]
            c["self"][leaf] += n
            for fn in set(stack):
                c["incl"][fn] += n
            for pkg in {_package(fn) for fn in stack[1:]}:  # below the entry point
                c["pkg"][pkg] += n
        return {"seconds": seconds, "interval": self.interval, "threads": {
            t: {"samples": totals[t], "busy_share": busy[t] / max(totals[t], 1),
                "packages": c["pkg"].most_common(), "self": c["self"].most_common(top),
                "inclusive": c["incl"].most_common(top)}
            for t, c in threads.items()}}


def _package(fn: str) -> str:
    path = fn.split(":", 1)[0]
    return path.rsplit("/", 1)[-1] if path.startswith("/") else path.split("/", 1)[0]


def _thread_kind(name: str) -> str:
    # thread-pool threads are numbered: pool them so the summary has one row per kind
    return name.split("_")[0] if name.startswith("asyncio_") else name


def _stack(frame: Any) -> tuple[str, ...]:
    out = []
    while frame is not None:
        code = frame.f_code
        where = code.co_filename.rsplit("site-packages/", 1)[-1].rsplit("/main/", 1)[-1]
        out.append(f"{where}:{code.co_firstlineno}:{code.co_name}")
        frame = frame.f_back
    return tuple(reversed(out))


class Progress:
    """Counts consumed events in a child; at `n` writes the result file (and profile)."""

    def __init__(self, n: int, result: Path, sampler: StackSampler | None) -> None:
        self.n, self.result, self.sampler = n, result, sampler
        self.count = 0
        self.curve: list[tuple[float, int]] = []

    def add(self, k: int) -> None:
        if self.count == 0 and self.sampler is not None:
            self.sampler.start()
        self.count += k
        self.curve.append((time.time(), self.count))
        if self.count >= self.n and not self.result.exists():
            if self.sampler is not None:
                self.sampler.stop()
            self.result.write_bytes(orjson.dumps({"curve": self.curve}))


class _Resumed:
    """Awaitable that goes on driving a coroutine already stepped once by hand."""

    def __init__(self, coro: Any, pending: Any) -> None:
        self.coro, self.pending = coro, pending

    def __await__(self) -> Any:
        coro, pending = self.coro, self.pending
        while True:
            try:
                value = yield pending
            except GeneratorExit:
                coro.close()
                raise
            except BaseException as exc:  # cancellation and errors go to the coroutine
                step = coro.throw
                value = exc
            else:
                step = coro.send
            try:
                pending = step(value)
            except StopIteration as done:
                return done.value


def fast_drain() -> None:
    """Faust's fetch loop runs `wait_first(callback(message), suspend_flow.wait())` for
    every message: four tasks and an asyncio.wait each. Step the callback inline first;
    only when it suspends (buffer full, flow stopped) hand it to the original."""
    from faust.transport.consumer import Consumer
    from mode.services import Service, WaitResults

    async def wait_first(self: Any, *coros: Any, timeout: Any = None) -> Any:
        if timeout is not None or len(coros) != 2 or not asyncio.iscoroutine(coros[0]):
            return await Service.wait_first(self, *coros, timeout=timeout)
        first, other = coros
        try:
            pending = first.send(None)
        except StopIteration as done:
            if asyncio.iscoroutine(other):
                other.close()
            return WaitResults([first], [done.value], False)
        return await Service.wait_first(self, _Resumed(first, pending), other)

    # a run-time patch of the class every Faust consumer derives from
    setattr(Consumer, "wait_first", wait_first)  # noqa: B010


def _child_setup() -> tuple[Settings, Progress | None, StackSampler | None]:
    from streams.settings import load_settings

    if os.environ.get("BENCH_FAST_DRAIN"):
        fast_drain()
    if os.environ.get("BENCH_SWITCH_INTERVAL"):  # GIL hand-over between threads (s)
        sys.setswitchinterval(float(os.environ["BENCH_SWITCH_INTERVAL"]))
    profile = os.environ.get("BENCH_PROFILE")
    sampler = StackSampler(Path(profile)) if profile else None
    result = os.environ.get("BENCH_RESULT")
    progress = (Progress(int(os.environ["BENCH_EVENTS"]), Path(result), sampler)
                if result else None)
    return load_settings(), progress, sampler


def raw_consumer_main() -> None:
    """aiokafka consumer group over the interactions topic, decoding every value."""
    import asyncio

    from aiokafka import AIOKafkaConsumer

    settings, progress, _ = _child_setup()
    assert progress is not None
    # one pass over a pre-filled topic is over in a few fetches: read it several times
    per_pass = progress.n
    progress.n *= int(os.environ.get("BENCH_PASSES", "1"))

    async def run() -> None:
        consumer = AIOKafkaConsumer(
            settings.topics.interactions, bootstrap_servers=settings.kafka_url,
            group_id=settings.app_id, auto_offset_reset="earliest", enable_auto_commit=False,
            fetch_max_wait_ms=settings.fetch_max_wait_ms)
        await consumer.start()
        try:
            while progress.count < progress.n:
                batches = await consumer.getmany(timeout_ms=200)
                for records in batches.values():
                    for r in records:
                        orjson.loads(r.value)
                    progress.add(len(records))
                if progress.count and progress.count % per_pass == 0:  # again from the start
                    await consumer.seek_to_beginning()
        finally:
            await consumer.stop()

    asyncio.run(run())


def faust_noop_main() -> None:
    """A Faust app from `faust_app(settings)` whose agent only counts (and acks) events."""
    import faust

    from streams.worker.app import faust_app

    settings, progress, _ = _child_setup()
    assert progress is not None
    app = faust_app(settings)
    topic = app.topic(settings.topics.interactions, key_type=bytes, value_type=bytes,
                      key_serializer="raw", value_serializer="raw")
    n, within = settings.batch_size, settings.batch_within_s

    async def batched(stream: faust.StreamT) -> None:  # the shape of streams.worker.app's agents
        # Faust passes a faust.Stream; its agent signature says StreamT, which lacks noack_take
        async for events in cast(faust.Stream, stream).noack_take(n, within=within):
            progress.add(len(events))
            for e in events:
                await stream.ack(e)

    async def plain(stream: faust.StreamT) -> None:
        async for _ in stream.events():
            progress.add(1)

    mode = os.environ.get("BENCH_NOOP_MODE", "batched")
    app.agent(topic, name="bench.noop")(batched if mode == "batched" else plain)
    faust.Worker(app, loglevel="warning", redirect_stdouts=False).execute_from_commandline()


def worker_main() -> None:
    """`nearline worker` (argv as for the command), sampled when BENCH_PROFILE is set."""
    from streams.cli.worker import worker

    _, _, sampler = _child_setup()
    try:
        worker()
    finally:
        if sampler is not None:
            sampler.stop()

"""Soak: one worker at a fixed event rate for a while; memory, lag and errors over time.

    python bench/soak.py --duration S [--rate N] [--json PATH] [--users U] [--items I]
                     [--no-model] [--kafka-url HOST:PORT --redis-url URL] [--workdir D]

Starts an embedded broker and Redis (unless URLs are given), makes an untrained two-tower
model over `--items` items live (unless --no-model), starts `nearline worker --agents
recall`, and first measures a quick maximum: a burst of events produced at once, timed
until the published lists cover them all. Then it produces at `--rate` (default: half
that maximum) for `--duration` seconds and samples every second:

- worker RSS (VmRSS of /proc/PID/status) and Redis used memory;
- lag: events produced minus events covered by published lists (an event is covered once
  a list of its user names it, or a later event of that user, as its last event);
- recall latency of the lists published in the interval (event produced -> list out);
- errors: Redis errors and dead letters counted by the worker, ERROR lines in its log.

After the last event it waits for the lag to drain. Prints the samples as a table and a
summary as JSON (everything with --json); exits 1 if the worker died, logged errors or
did not drain.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

if __name__ == "__main__" and not __package__:  # run as a path: bench/ must not shadow index/
    sys.path[0] = str(Path(__file__).resolve().parents[1])

import numpy as np
import orjson
import redis
from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from streams.replay.run import worker_env
from streams.services.embedded import EmbeddedBroker, EmbeddedRedis, free_port
from streams.settings import Settings, TopicNames
from streams.topics import ensure_topics

__all__ = ["SoakOptions", "main", "run_soak"]


@dataclass(frozen=True)
class SoakOptions:
    duration_s: float = 60.0  # producing at the fixed rate
    rate: float | None = None  # events per second; None: half the measured maximum
    burst: int = 2000  # events of the quick maximum measurement
    users: int = 2000
    items: int = 500
    model: bool = True  # an untrained two-tower model live (user tower + index search)
    every_s: float = 1.0  # sampling period
    drain_timeout_s: float = 60.0
    seed: int = 0


@dataclass
class Coverage:
    """Follows the recall topic: events covered per user, latencies of the lists."""

    covered_by_user: dict[str, int] = field(default_factory=dict)
    latencies_ms: list[float] = field(default_factory=list)
    lists: int = 0

    def covered(self) -> int:
        return sum(self.covered_by_user.values())

    def add(self, value: bytes) -> None:
        r = orjson.loads(value)
        k = int(r["last_event_id"].rsplit("-", 1)[1])  # ids are s<n>-<k-th of the user>
        if k > self.covered_by_user.get(r["user_id"], 0):
            self.covered_by_user[r["user_id"]] = k
        self.latencies_ms.append(float(r["latency_ms"]))
        self.lists += 1


class Follower(threading.Thread):
    def __init__(self, settings: Settings) -> None:
        super().__init__(daemon=True, name="soak-follower")
        self.settings, self.coverage, self.stop = settings, Coverage(), threading.Event()

    def run(self) -> None:
        consumer = KafkaConsumer(bootstrap_servers=self.settings.kafka_url,
                                 auto_offset_reset="earliest", enable_auto_commit=False,
                                 fetch_max_wait_ms=50)
        consumer.assign([TopicPartition(self.settings.topics.recalls, p)
                         for p in range(self.settings.partitions)])
        try:
            while not self.stop.is_set():
                for batch in consumer.poll(100, max_records=5000).values():
                    for record in batch:
                        self.coverage.add(record.value)
        finally:
            consumer.close()


class Events:
    """Interactions of `users` users over `items` items; ids carry the user's count."""

    def __init__(self, options: SoakOptions) -> None:
        self.rng = np.random.default_rng(options.seed)
        self.users, self.items = options.users, options.items
        self.count = np.zeros(options.users, dtype=np.int64)
        self.n = 0

    def next(self) -> tuple[bytes, bytes]:
        u, item = int(self.rng.integers(self.users)), int(self.rng.zipf(1.3)) % self.items
        self.count[u] += 1
        self.n += 1
        user = f"u{u}"
        return user.encode(), orjson.dumps({
            "event_id": f"s{self.n}-{self.count[u]}", "user_id": user, "item_id": f"i{item}",
            "type": "purchase", "quantity": 1.0 + self.n % 3, "ts": time.time(),
            "region": f"r{u % 4}"})


def produce(settings: Settings, events: Events, n: int, rate: float | None,
            sent: list[int]) -> None:
    """`n` events, at `rate` per second (None: as fast as possible); sent[0] counts."""
    producer = KafkaProducer(bootstrap_servers=settings.kafka_url, linger_ms=2 if rate else 20)
    started = time.monotonic()
    for i in range(n):
        if rate:
            delay = started + i / rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)
        key, value = events.next()
        producer.send(settings.topics.interactions, key=key, value=value)
        sent[0] += 1
    producer.flush()
    producer.close()


# --- the worker -----------------------------------------------------------------------

@dataclass
class WorkerProc:
    proc: subprocess.Popen[bytes]
    port: int
    log: Path

    def get(self, path: str) -> bytes:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=5) as r:
            return r.read()

    def metrics(self) -> dict[str, float]:
        out: dict[str, float] = {}
        for line in self.get("/metrics").decode().splitlines():
            if line and not line.startswith("#"):
                name, _, value = line.rpartition(" ")
                key = name.split("{", 1)[0]
                out[key] = out.get(key, 0.0) + float(value)
        return out

    def rss_mb(self) -> float:
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        return float("nan")

    def log_errors(self) -> int:
        text = self.log.read_text(errors="replace")
        return text.count(" ERROR ") + text.count('"level":"error"')


def start_worker(settings: Settings, log: Path, timeout: float = 120.0) -> WorkerProc:
    port = free_port()
    code = "from streams.cli.worker import worker; worker()"
    with open(log, "ab") as out:  # cwd: Faust puts its <app_id>-data directory there
        proc = subprocess.Popen([sys.executable, "-c", code, "--agents", "recall"],
                                cwd=log.parent,
                                env={**os.environ, **worker_env(settings, web_port=port)},
                                stdout=out, stderr=subprocess.STDOUT)
    w = WorkerProc(proc, port, log)
    deadline = time.monotonic() + timeout
    while True:  # healthy and consuming every interactions partition
        if proc.poll() is not None:
            raise RuntimeError(f"worker exited {proc.returncode}; see {log}")
        try:
            if orjson.loads(w.get("/healthz"))["interaction_partitions"] >= settings.partitions:
                return w
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise TimeoutError(f"worker not assigned after {timeout:.0f} s; see {log}")
        time.sleep(0.2)


def make_model_live(settings: Settings, options: SoakOptions, work: Path) -> str:
    from bench.synthetic_model import synthetic_dataset, untrained_checkpoint
    from streams.models.lifecycle import IndexBuilder
    from streams.models.store import CheckpointStore
    from streams.state.connect import open_state_store
    from streams.state.contract import StateConfig

    data = synthetic_dataset(n_items=options.items, n_users=options.users,
                             n_events=20 * options.items, seed=options.seed)
    version = f"soak-{uuid.uuid4().hex[:6]}"
    store = CheckpointStore(settings.checkpoint_dir())
    store.publish(untrained_checkpoint(work / "runs", data, seed=options.seed, version=version,
                                       dim=32))

    async def build() -> bool:
        state = open_state_store(settings.redis_url,
                                 config=StateConfig(prefix=settings.state_prefix))
        try:
            return await IndexBuilder(store, state).build(version)
        finally:
            await state.close()
    if not asyncio.run(build()):
        raise RuntimeError(f"checkpoint {version} rejected: {store.rejection(version)}")
    return version


# --- the run --------------------------------------------------------------------------

def soak_settings(kafka_url: str, redis_url: str, work: Path) -> Settings:
    tag = uuid.uuid4().hex[:6]
    topics = TopicNames(**{f.name: f"soak.{f.name}.{tag}" for f in fields(TopicNames)})
    return Settings(kafka_url=kafka_url, redis_url=redis_url, home=str(work), partitions=2,
                    app_id=f"soak-{tag}", state_prefix=f"soak{tag}", topics=topics,
                    checkpoint_store=str(work / "store"), rebalance_timeout_s=2.0)


def wait_covered(follower: Follower, n: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while follower.coverage.covered() < n:
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def measure_max(settings: Settings, events: Events, follower: Follower, burst: int) -> float:
    """Events per second from the first send of a burst until lists cover all of it."""
    base, started = events.n, time.monotonic()
    produce(settings, events, burst, None, [0])
    if not wait_covered(follower, base + burst, 300):
        raise TimeoutError("the burst was not covered within 300 s")
    return burst / (time.monotonic() - started)


def sample(t: float, sent: int, follower: Follower, worker: WorkerProc, client: redis.Redis,
           seen_lists: int) -> dict[str, Any]:
    cov = follower.coverage
    recent = np.array(cov.latencies_ms[seen_lists:]) if cov.lists > seen_lists else None
    m = worker.metrics()
    covered = cov.covered()
    return {"t": round(t, 1), "produced": sent, "covered": covered, "lag": sent - covered,
            "rss_mb": round(worker.rss_mb(), 1),
            "redis_mb": round(client.info("memory")["used_memory"] / 2**20, 1),
            "p50_ms": round(float(np.percentile(recent, 50)), 1) if recent is not None else None,
            "p99_ms": round(float(np.percentile(recent, 99)), 1) if recent is not None else None,
            "redis_errors": int(m.get("nearline_redis_errors_total", 0)),
            "dead_letters": int(m.get("nearline_events_dead_lettered_total", 0)),
            "log_errors": worker.log_errors(), "lists": cov.lists}


def soak_phase(settings: Settings, options: SoakOptions, rate: float, events: Events,
               follower: Follower, worker: WorkerProc) -> list[dict[str, Any]]:
    n, base = int(options.duration_s * rate), events.n
    sent = [base]
    producer = threading.Thread(target=produce, args=(settings, events, n, rate, sent),
                                daemon=True)
    client = redis.Redis.from_url(settings.redis_url)
    samples: list[dict[str, Any]] = []
    started = time.monotonic()
    producer.start()
    try:
        while producer.is_alive() or follower.coverage.covered() < base + n:
            time.sleep(max(0.0, started + (len(samples) + 1) * options.every_s
                           - time.monotonic()))
            if worker.proc.poll() is not None:
                break
            seen = samples[-1]["lists"] if samples else follower.coverage.lists
            samples.append(sample(time.monotonic() - started, sent[0], follower, worker,
                                  client, seen))
            if time.monotonic() - started > options.duration_s + options.drain_timeout_s:
                break
    finally:
        producer.join(10)
        client.close()
    return samples


def summarise(samples: list[dict[str, Any]], *, rate: float, max_eps: float | None, base: int,
              options: SoakOptions, worker: WorkerProc, drained: bool) -> dict[str, Any]:
    """`base`: events produced before the fixed-rate phase (the burst)."""
    during = [s for s in samples if s["t"] <= options.duration_s] or samples
    warm = during[min(len(during) - 1, max(1, len(during) // 10))]  # after warm-up
    lag = np.array([s["lag"] for s in during])
    last = samples[-1]
    errors = last["redis_errors"] + last["dead_letters"] + last["log_errors"]
    alive = worker.proc.poll() is None
    return {
        "options": asdict(options), "rate_target": round(rate, 1),
        "max_eps": round(max_eps, 1) if max_eps else None,
        "rate_achieved": round((during[-1]["produced"] - base) / max(during[-1]["t"], 1e-9), 1),
        "rss_mb": {"warm": warm["rss_mb"], "end": last["rss_mb"],
                   "max": max(s["rss_mb"] for s in samples),
                   "growth_after_warmup": round(last["rss_mb"] - warm["rss_mb"], 1)},
        "redis_mb": {"warm": warm["redis_mb"], "end": last["redis_mb"]},
        "lag": {"p50": round(float(np.percentile(lag, 50)), 1),
                "p99": round(float(np.percentile(lag, 99)), 1),
                "max": int(lag.max()), "end": last["lag"]},
        "errors": errors, "worker_alive": alive, "drained": drained,
        "ok": alive and drained and errors == 0,
    }


def run_soak(options: SoakOptions, *, kafka_url: str | None = None,
             redis_url: str | None = None, work: Path | None = None) -> dict[str, Any]:
    """The soak run; returns {"summary": ..., "samples": [...]}."""
    work = work or Path(tempfile.mkdtemp(prefix="nearline-soak-"))
    services: list[EmbeddedBroker | EmbeddedRedis] = []
    if kafka_url is None:
        services.append(EmbeddedBroker().start(workdir=work))
        kafka_url = services[-1].url
    if redis_url is None:
        services.append(EmbeddedRedis().start(workdir=work))
        redis_url = services[-1].url
    settings = soak_settings(kafka_url, redis_url, work)
    follower, worker = Follower(settings), None
    try:
        ensure_topics(settings)
        version = make_model_live(settings, options, work) if options.model else None
        worker = start_worker(settings, work / "worker.log")
        follower.start()
        events = Events(options)
        max_eps: float | None = None
        if options.rate is None:
            max_eps = measure_max(settings, events, follower, options.burst)
            rate = 0.5 * max_eps
        else:
            rate = options.rate
        base, first_list = events.n, follower.coverage.lists
        samples = soak_phase(settings, options, rate, events, follower, worker)
        drained = follower.coverage.covered() >= events.n
        summary = summarise(samples, rate=rate, max_eps=max_eps, base=base, options=options,
                            worker=worker, drained=drained)
        latency = np.array(follower.coverage.latencies_ms[first_list:] or [np.nan])
        summary.update(model=version, events=events.n, lists=follower.coverage.lists,
                       latency_ms={f"p{q}": round(float(np.percentile(latency, q)), 1)
                                   for q in (50, 99)}, worker_log=str(worker.log))
        return {"summary": summary, "samples": samples}
    finally:
        follower.stop.set()
        if follower.is_alive():
            follower.join(5)
        if worker is not None and worker.proc.poll() is None:
            worker.proc.terminate()
            try:
                worker.proc.wait(30)
            except subprocess.TimeoutExpired:
                worker.proc.kill()
        for s in services:
            s.stop()


COLUMNS = ("t", "produced", "covered", "lag", "rss_mb", "redis_mb", "p50_ms", "p99_ms",
           "redis_errors", "dead_letters", "log_errors")


def table(samples: list[dict[str, Any]], rows: int = 40) -> str:
    step = max(1, len(samples) // rows)
    shown = samples[::step] + ([samples[-1]] if samples and (len(samples) - 1) % step else [])
    lines = ["".join(f"{c:>13}" for c in COLUMNS)]
    lines += ["".join(f"{'-' if s[c] is None else s[c]!s:>13}" for c in COLUMNS) for s in shown]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--duration", type=float, default=60.0, help="seconds at the fixed rate")
    ap.add_argument("--rate", type=float, default=None,
                    help="events per second (default: half the measured maximum)")
    ap.add_argument("--burst", type=int, default=2000, help="events of the maximum measurement")
    ap.add_argument("--users", type=int, default=2000)
    ap.add_argument("--items", type=int, default=500)
    ap.add_argument("--no-model", action="store_true", help="repeat + popularity only")
    ap.add_argument("--kafka-url", default=None, help="use this broker (default: embedded)")
    ap.add_argument("--redis-url", default=None, help="use this Redis (default: embedded)")
    ap.add_argument("--json", type=Path, default=None, help="write summary and samples here")
    ap.add_argument("--workdir", type=Path, default=None,
                    help="logs, checkpoints, embedded services (default: a new temp dir)")
    args = ap.parse_args(argv)
    options = replace(SoakOptions(), duration_s=args.duration, rate=args.rate,
                      burst=args.burst, users=args.users, items=args.items,
                      model=not args.no_model)
    out = run_soak(options, kafka_url=args.kafka_url, redis_url=args.redis_url,
                   work=args.workdir)
    print(table(out["samples"]))
    print(orjson.dumps(out["summary"], option=orjson.OPT_INDENT_2).decode())
    if args.json:
        args.json.write_bytes(orjson.dumps(out, option=orjson.OPT_INDENT_2))
    return 0 if out["summary"]["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())

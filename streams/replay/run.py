"""Running one replay end to end: isolate, warm, start workers, produce, collect, score."""

from __future__ import annotations

import asyncio
import logging
import os
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import redis

from streams.models.lifecycle import IndexBuilder, load_live_model
from streams.models.store import CheckpointStore
from streams.replay.kafka_io import ListLog, collect, one_per_batch, produce
from streams.replay.score import score_stream
from streams.replay.window import (
    Envelopes,
    ReplayWindow,
    interaction_messages,
    paced,
)
from streams.settings import Settings, TopicNames
from streams.state.bulk import bulk_load
from streams.state.connect import live_version_now, open_state_store
from streams.state.contract import StateConfig
from streams.topics import ensure_topics, partition_count
from streams.worker.pipeline import to_result
from streams.worker.run import build_engine

__all__ = ["ReplayOptions", "ReplayOutcome", "isolated", "prepare", "run_replay", "worker_env"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ReplayOptions:
    ks: tuple[int, ...] = (10, 50, 100)
    speed: float | None = None  # event time runs this many times faster than real time
    max_rate: float | None = None  # events per second at most
    workers: int = 1  # worker processes started for the replay (0: use running ones)
    timeout_s: float = 900.0  # give up when no list has arrived for this long
    checkpoint: Path | None = None  # published and made live before the replay
    one_per_batch: bool = False  # hold each event until the previous one has its list
    envelope: int = 1  # events per message: above 1, JSON-array envelopes of that many

    def __post_init__(self) -> None:
        if self.envelope < 1:
            raise ValueError("a message holds at least one event")
        if self.envelope > 1 and self.one_per_batch:
            raise ValueError("--one-per-batch holds each event alone: no --envelope with it")


def isolated(settings: Settings, tag: str | None = None) -> Settings:
    """The same broker and Redis, but own topics, consumer group and key prefix."""
    tag = tag or uuid.uuid4().hex[:8]
    topics = TopicNames(**{name: f"{value}.replay-{tag}"
                           for name, value in vars(settings.topics).items()})
    return replace(settings, topics=topics, app_id=f"{settings.app_id}-replay-{tag}",
                   state_prefix=f"{settings.state_prefix}r{tag}")


def worker_env(settings: Settings, *, web_port: int) -> dict[str, str]:
    """NEARLINE_* variables that make a worker process use exactly `settings`."""
    env = {f"NEARLINE_{k.upper()}": str(v) for k, v in vars(settings).items()
           if k != "topics" and not isinstance(v, TopicNames)}
    env.update({f"NEARLINE_TOPIC_{k.upper()}": v for k, v in vars(settings.topics).items()})
    env["NEARLINE_WEB_PORT"] = str(web_port)
    return env


def _start_workers(settings: Settings, n: int, logdir: Path) -> list[subprocess.Popen[bytes]]:
    from streams.services.embedded import free_port

    procs, ports = [], []
    code = "from streams.cli.worker import worker; worker()"
    for j in range(n):
        port = free_port()
        with open(logdir / f"worker-{j}.log", "ab") as log:
            procs.append(subprocess.Popen(
                [sys.executable, "-c", code, "--agents", "recall"],
                env={**os.environ, **worker_env(settings, web_port=port)},
                stdout=log, stderr=subprocess.STDOUT))
        ports.append(port)
    deadline = time.monotonic() + 120
    while True:  # every interactions partition assigned: the group has settled
        assigned = sum(_assigned(proc, port, logdir) for proc, port in
                       zip(procs, ports, strict=True))
        if assigned >= settings.partitions:
            break
        if time.monotonic() > deadline:
            raise TimeoutError(f"replay workers not assigned after 120 s; see {logdir}")
        time.sleep(0.2)
    return procs


def _assigned(proc: subprocess.Popen[bytes], port: int, logdir: Path) -> int:
    if proc.poll() is not None:
        raise RuntimeError(f"replay worker exited {proc.returncode}; see {logdir}")
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as r:
            return int(orjson.loads(r.read()).get("interaction_partitions", 0))
    except OSError:
        return 0


async def _warm(settings: Settings, window: ReplayWindow) -> dict[str, Any]:
    """Bulk-load the history into the state and the popularity board."""
    client = redis.Redis.from_url(settings.redis_url)
    try:
        loaded = bulk_load(client, window.history, event_ids=window.history_ids,
                           config=StateConfig(prefix=settings.state_prefix))
    finally:
        client.close()
    engine = build_engine(settings)
    h = window.history
    step = 5000
    for a in range(0, len(h), step):
        await engine.board.add(window.history_ids[a:a + step], h.item[a:a + step].tolist(),
                               h.region[a:a + step].tolist(), h.ts[a:a + step].tolist(),
                               h.quantity[a:a + step].tolist())
    await engine.board.redis.aclose()
    await engine.store.close()
    return loaded


async def _boundary_lists(settings: Settings, window: ReplayWindow
                          ) -> dict[str, dict[str, Any]]:
    """The lists of every warm window user at the boundary (the same engine code)."""
    store = CheckpointStore(settings.checkpoint_dir())
    live = live_version_now(settings.redis_url, prefix=settings.state_prefix)
    model = load_live_model(store, live)
    engine = build_engine(settings, model=model)
    known = set(window.history.user.tolist())
    users = [u for u in window.users() if u in known]
    now = float(window.history.ts.max()) if len(window.history) else 0.0
    out: dict[str, dict[str, Any]] = {}
    for a in range(0, len(users), 256):
        for r in await engine.recall(users[a:a + 256], now=now):
            out[r.recall.user_id] = to_result(r, emitted=time.time(), arrival=None).asdict()
    await engine.board.redis.aclose()
    await engine.store.close()
    return out


async def _make_live(settings: Settings, checkpoint: Path) -> str:
    store = CheckpointStore(settings.checkpoint_dir())
    version = store.publish(checkpoint)
    state = open_state_store(settings.redis_url, config=StateConfig(prefix=settings.state_prefix))
    try:
        if not await IndexBuilder(store, state).build(version):
            raise RuntimeError(f"checkpoint {version} rejected: {store.rejection(version)}")
    finally:
        await state.close()
    return version


@dataclass
class ReplayOutcome:
    report: dict[str, Any]
    lists: dict[str, list[dict[str, Any]]]  # what the recall topic carried, per user
    boundary: dict[str, dict[str, Any]]  # the lists at the boundary (frozen variant)


def prepare(settings: Settings, window: ReplayWindow, checkpoint: Path | None
            ) -> tuple[str, dict[str, Any], float]:
    """Make the checkpoint live and warm the state: (version, bulk-load counts, seconds)."""
    version = asyncio.run(_make_live(settings, checkpoint)) if checkpoint \
        else (live_version_now(settings.redis_url, prefix=settings.state_prefix) or "")
    started = time.perf_counter()
    loaded = asyncio.run(_warm(settings, window))
    return version, loaded, time.perf_counter() - started


def run_replay(settings: Settings, window: ReplayWindow, options: ReplayOptions, *,
               logdir: Path) -> ReplayOutcome:
    """Replay `window` through Kafka and the workers; the report of docs/evaluation.md + timings."""
    started = time.perf_counter()
    logdir.mkdir(parents=True, exist_ok=True)
    ensure_topics(settings)
    version, loaded, warm_s = prepare(settings, window, options.checkpoint)
    boundary = asyncio.run(_boundary_lists(settings, window))
    procs = _start_workers(settings, options.workers, logdir) if options.workers else []
    try:
        log, timeline = _produce_and_collect(settings, window, options)
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
    stream, frozen = score_stream(window, log.lists, boundary, ks=options.ks,
                                  seen_filter=window.dataset.seen_filter)
    report = _report(window, log, timeline, stream.result(), frozen.result(), options)
    report["trace"] = stream.trace
    report.update(checkpoint=version, warm={"events": loaded.get("applied", 0),
                                            "seconds": round(warm_s, 2)},
                  wall_s=round(time.perf_counter() - started, 2))
    return ReplayOutcome(report, log.lists, boundary)


def _produce_and_collect(settings: Settings, window: ReplayWindow, options: ReplayOptions
                         ) -> tuple[ListLog, list[tuple[float, int]]]:
    last = window.last_event_of()
    log = ListLog()

    def done(log: ListLog) -> bool:
        return all(e in log.named for e in last.values())

    stop = threading.Event()
    reader = threading.Thread(target=collect, args=(settings,), daemon=True, kwargs={
        "until": done, "timeout_s": options.timeout_s, "stop": stop, "out": log})
    reader.start()
    timeline: list[tuple[float, int]] = []
    messages: Any = interaction_messages(window)
    if options.one_per_batch:
        messages = one_per_batch(messages, window.event_ids, log)
    outgoing: Any = paced(messages, speed=options.speed, max_rate=options.max_rate)
    if options.envelope > 1:
        envelopes = Envelopes(outgoing, size=options.envelope,
                              partitions=partition_count(settings, settings.topics.interactions))
        produce(settings, iter(envelopes),
                on_sent=lambda n: timeline.append((time.time(), envelopes.events)))
    else:
        produce(settings, outgoing,
                on_sent=lambda n: timeline.append((time.time(), n)) if n % 50 == 0 else None)
    timeline.append((time.time(), len(window.event_ids)))
    reader.join()  # it ends once every user has its last list, or when lists stop coming
    stop.set()
    reader.join(10)
    if not done(log):
        logger.warning("replay ended before every user's last event was named by a list")
    return log, timeline


def _thin(points: list[tuple[float, int]], n: int) -> list[tuple[float, int]]:
    step = max(1, len(points) // n)
    return points[::step] + points[-1:]


def _report(window: ReplayWindow, log: ListLog, produced: list[tuple[float, int]],
            stream: dict[str, Any], frozen: dict[str, Any], options: ReplayOptions
            ) -> dict[str, Any]:
    latencies = np.array([r["latency_ms"] for lists in log.lists.values() for r in lists
                          if r["latency_ms"] > 0])
    pct = {f"p{q}": round(float(np.percentile(latencies, q)), 2) if len(latencies) else None
           for q in (50, 95, 99)}
    t_first = produced[0][0] if produced else time.time()
    index_of = {e: j for j, e in enumerate(window.event_ids)}
    covered = _thin(log.frontier(index_of), 400)
    emitted = [r["emitted_ts"] for lists in log.lists.values() for r in lists]
    t_last = max(emitted) if emitted else t_first
    n = len(window.window)
    ratio = {f"HitRate@{k}": (stream[f"HitRate@{k}"] / frozen[f"HitRate@{k}"]
                              if frozen[f"HitRate@{k}"] else None) for k in options.ks}
    return {
        "dataset": window.dataset.name,
        "split": {"history": len(window.history), "window": n},
        "systems": {"nearline": {"stream": stream, "frozen": frozen,
                                 "stream_over_frozen": ratio}},
        "latency_ms": pct, "lists": log.count,
        "throughput_eps": round(n / max(t_last - t_first, 1e-9), 1),
        "timeline": {"produced": [(round(t - t_first, 3), c) for t, c in produced],
                     "applied": [(round(t - t_first, 3), c) for t, c in covered]},
        "latencies_ms": latencies.round(2).tolist(),
    }

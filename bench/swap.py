"""Model swap under load: announcement -> live on every worker, with recall flowing.

    python -m bench.swap [--items 100000] [--workers 2] [--rate 200] [--index-backend auto]
                         [--prebuilt] [--json PATH]

Starts an embedded broker and Redis, an index agent and N recall workers on version A,
streams interactions at a steady rate, announces version B (built by the index agent then,
or with --prebuilt before the load, as `nearline publish` builds it), and measures: seconds from
the announcement until every worker serves B, errors, results that mix versions (a list
of A after B for the same user, or A after every worker switched), and the recall
latency p99 during the swap against the steady p99 of the same run.
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
from pathlib import Path
from typing import Any

import numpy as np
import orjson
from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from bench._harness import wait_for
from bench.synthetic_model import synthetic_dataset, untrained_checkpoint
from index import IndexConfig
from index.config import BACKENDS
from streams.cli.models import announce
from streams.logs import configure_logging
from streams.models.lifecycle import IndexBuilder
from streams.models.store import CheckpointStore
from streams.replay.run import worker_env
from streams.services.embedded import EmbeddedBroker, EmbeddedRedis, free_port
from streams.settings import Settings
from streams.state.connect import open_state_store
from streams.state.contract import StateConfig
from streams.topics import ensure_topics


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--items", type=int, default=100_000)
    ap.add_argument("--users", type=int, default=10_000)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--rate", type=float, default=200.0, help="events per second")
    ap.add_argument("--steady-s", type=float, default=15.0)
    ap.add_argument("--after-s", type=float, default=10.0)
    ap.add_argument("--prebuilt", action="store_true",
                    help="publish and build B before the load starts, as `nearline publish` "
                         "does by default (measures the workers' load and swap alone)")
    ap.add_argument("--index-backend", default="auto", choices=BACKENDS,
                    help="the index both versions are built with (NEARLINE_INDEX_BACKEND)")
    ap.add_argument("--loglevel", default="warning", help="the workers' log level")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    configure_logging("warning")
    work = Path(tempfile.mkdtemp(prefix="nearline-swap-"))
    broker = EmbeddedBroker().start(workdir=work)
    redis_server = EmbeddedRedis().start(workdir=work)
    procs: list[subprocess.Popen[bytes]] = []
    try:
        settings = Settings(kafka_url=broker.url, redis_url=redis_server.url, home=str(work),
                            partitions=4, checkpoint_store=str(work / "store"),
                            index_backend=args.index_backend)
        out = run(settings, args, work, procs)
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(20)
            except subprocess.TimeoutExpired:
                p.kill()
        broker.stop()
        redis_server.stop()
    print_table(out)
    if args.json:
        args.json.write_bytes(orjson.dumps(out, option=orjson.OPT_INDENT_2))


def run(settings: Settings, args: argparse.Namespace, work: Path,
        procs: list[subprocess.Popen[bytes]]) -> dict[str, Any]:
    data = synthetic_dataset(n_items=args.items, n_users=args.users, n_events=100_000)
    tag = str(os.getpid())
    ckpt_a = untrained_checkpoint(work / "runs", data, seed=1, version=f"swap-A-{tag}")
    ckpt_b = untrained_checkpoint(work / "runs", data, seed=2, version=f"swap-B-{tag}")
    ensure_topics(settings)
    store = CheckpointStore(settings.checkpoint_dir())
    version_a = store.publish(ckpt_a)
    asyncio.run(_build(settings, store, version_a))
    # B is copied into the store (validated) before the load starts: publishing is the
    # trainer's step, and its CPU must not fall into the steady window measured below
    version_b = store.publish(ckpt_b)
    if args.prebuilt:  # as `nearline publish` builds it, on the machine that publishes
        asyncio.run(_build(settings, store, version_b, make_live=False))
    ports = [free_port() for _ in range(args.workers + 1)]
    roles = ["index"] + ["recall"] * args.workers
    code = "from streams.cli.worker import worker; worker()"
    for j, (role, port) in enumerate(zip(roles, ports, strict=True)):
        with open(work / f"worker-{j}.log", "ab") as log:
            procs.append(subprocess.Popen(
                [sys.executable, "-c", code, "--agents", role, "--loglevel", args.loglevel],
                env={**os.environ, **worker_env(settings, web_port=port)}, stdout=log,
                stderr=subprocess.STDOUT))
    recall_ports = ports[1:]
    wait_for(lambda: all(_version(p) == version_a for p in recall_ports), timeout=180,
             what="workers on A", every=0.1)
    wait_for(lambda: sum(_assigned(p) for p in recall_ports) >= settings.partitions,
             timeout=60, what="partitions assigned", every=0.1)

    results: list[dict[str, Any]] = []
    stop = threading.Event()
    threads = [threading.Thread(target=_produce, args=(settings, args, stop), daemon=True),
               threading.Thread(target=_collect, args=(settings, results, stop), daemon=True)]
    for t in threads:
        t.start()
    time.sleep(args.steady_s)
    t_announce = time.time()
    announce(settings, {"kind": "published", "version": version_b,
                        "path": str(store.checkpoint_dir(version_b)), "ts": t_announce})
    switched: dict[int, float] = {}

    def all_on_b() -> bool:
        for p in recall_ports:
            if p not in switched and _version(p) == version_b:
                switched[p] = time.time()
        return len(switched) == len(recall_ports)

    wait_for(all_on_b, timeout=120, what="workers on B", every=0.1)
    t_live = max(switched.values())
    time.sleep(args.after_s)
    stop.set()
    for t in threads:
        t.join(15)
    (work / "results.json").write_bytes(orjson.dumps(
        {"t_announce": t_announce, "t_live": t_live, "switched": switched, "results": results},
        option=orjson.OPT_NON_STR_KEYS))
    return summarise(results, version_a, version_b, t_announce, t_live, args, work)


def summarise(results: list[dict[str, Any]], version_a: str, version_b: str,
              t_announce: float, t_live: float, args: argparse.Namespace,
              work: Path) -> dict[str, Any]:
    steady = [r["latency_ms"] for r in results if r["emitted_ts"] < t_announce]
    during = [r["latency_ms"] for r in results if t_announce <= r["emitted_ts"] <= t_live + 2]
    last: dict[str, str] = {}
    mixed = 0
    for r in sorted(results, key=lambda r: r["emitted_ts"]):
        if r["version"] not in (version_a, version_b):
            mixed += 1
        elif r["version"] == version_a and (last.get(r["user_id"]) == version_b
                                            or r["emitted_ts"] > t_live + 1.0):
            mixed += 1
        last[r["user_id"]] = r["version"]
    errors = sum(log.read_text(errors="replace").count(" ERROR ")
                 for log in work.glob("worker-*.log"))
    p99_steady = float(np.percentile(steady, 99)) if steady else float("nan")
    p99_during = float(np.percentile(during, 99)) if during else float("nan")
    return {"swap_s": round(t_live - t_announce, 2), "errors": errors,
            "mixed_version_results": mixed, "p99_ratio": round(p99_during / p99_steady, 3),
            "workers": args.workers, "items": args.items, "prebuilt": args.prebuilt,
            "index_backend": args.index_backend,
            "rate_eps": args.rate,
            "results": len(results), "results_a": sum(r["version"] == version_a
                                                      for r in results),
            "results_b": sum(r["version"] == version_b for r in results),
            "p99_steady_ms": round(p99_steady, 2), "p99_during_ms": round(p99_during, 2)}


def print_table(out: dict[str, Any]) -> None:
    width = max(len(k) for k in out)
    for key, value in out.items():
        print(f"{key:<{width}}  {value}")


async def _build(settings: Settings, store: CheckpointStore, version: str, *,
                 make_live: bool = True) -> None:
    state = open_state_store(settings.redis_url, config=StateConfig(prefix=settings.state_prefix))
    try:
        builder = IndexBuilder(store, state, config=IndexConfig(backend=settings.index_backend))
        assert await builder.build(version, make_live=make_live), store.rejection(version)
    finally:
        await state.close()


def _produce(settings: Settings, args: argparse.Namespace, stop: threading.Event) -> None:
    producer = KafkaProducer(bootstrap_servers=settings.kafka_url, linger_ms=1)
    rng = np.random.default_rng(0)
    n, start = 0, time.monotonic()
    while not stop.is_set():
        user = f"u{(rng.zipf(1.3) - 1) % args.users}"
        item = f"i{(rng.zipf(1.2) - 1) % args.items}"
        producer.send(settings.topics.interactions, key=user.encode(), value=orjson.dumps(
            {"event_id": f"s{n}", "user_id": user, "item_id": item, "type": "purchase",
             "quantity": 1, "ts": time.time()}))
        n += 1
        wait = start + n / args.rate - time.monotonic()
        if wait > 0:
            time.sleep(wait)
    producer.flush()
    producer.close()


def _collect(settings: Settings, out: list[dict[str, Any]], stop: threading.Event) -> None:
    consumer = KafkaConsumer(bootstrap_servers=settings.kafka_url, auto_offset_reset="latest",
                             enable_auto_commit=False)
    consumer.assign([TopicPartition(settings.topics.recalls, p)
                     for p in range(settings.partitions)])
    while not stop.is_set():
        for batch in consumer.poll(100).values():
            out.extend(orjson.loads(r.value) for r in batch)
    for batch in consumer.poll(1000).values():
        out.extend(orjson.loads(r.value) for r in batch)
    consumer.close()


def _get(port: int, path: str) -> dict[str, Any]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=2) as r:
            return orjson.loads(r.read())
    except OSError:
        return {}


def _version(port: int) -> str:
    return str(_get(port, "/version").get("model_version", ""))


def _assigned(port: int) -> int:
    return int(_get(port, "/healthz").get("interaction_partitions", 0))


if __name__ == "__main__":
    main()

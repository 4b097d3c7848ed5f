"""Benchmark of the user-state stores: apply throughput, history-read latency, bulk load.

Starts its own redis-server (streams.services.embedded.EmbeddedRedis, AOF everysec as in local
runs) on a free loopback port. Usage:

    python bench/state.py [--users 10000] [--events-per-user 100] [--json out.json]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import numpy as np
import orjson
import redis
from redis.utils import HIREDIS_AVAILABLE

from streams.services.embedded import EmbeddedRedis
from streams.state.bulk import bulk_load
from streams.state.contract import InteractionUpdate, StateConfig, UserStateStore
from streams.state.memory_store import InMemoryUserStateStore
from streams.state.redis_store import RedisUserStateStore
from towers.data import Interactions


def synthetic_events(n: int, *, users: int, seed: int, start: int = 0) -> list[InteractionUpdate]:
    """Events over `users` users, time mostly increasing with 5% late arrivals."""
    rng = np.random.default_rng(seed)
    ts = 1.7e9 + np.arange(n) * 10.0 - (rng.random(n) < 0.05) * rng.uniform(0, 3600, n)
    user, item = rng.integers(0, users, n), rng.integers(0, 2_000, n)
    quantity = rng.integers(1, 6, n).astype(float)
    return [InteractionUpdate(f"b{start + i}", f"u{user[i]}", f"i{item[i]}", float(ts[i]),
                              float(quantity[i]), "purchase", "r1") for i in range(n)]


async def apply_rate(store: UserStateStore, events: list[InteractionUpdate], batch: int,
                     concurrency: int = 1) -> dict[str, float]:
    async def lane(part: list[InteractionUpdate]) -> None:
        for i in range(0, len(part), batch):
            if batch == 1:
                await store.apply_interaction(**vars(part[i]))
            else:
                await store.apply_interactions(part[i:i + batch])
    started = time.perf_counter()
    await asyncio.gather(*(lane(events[k::concurrency]) for k in range(concurrency)))
    seconds = time.perf_counter() - started
    return {"n": len(events), "seconds": seconds, "per_s": len(events) / seconds}


async def latency(call: Callable[[], Awaitable[object]], repeats: int) -> dict[str, float]:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        await call()
        times.append(time.perf_counter() - started)
    ms = np.array(times) * 1000
    return {"n": repeats, "seconds": float(ms.sum() / 1000), "p50_ms": float(np.median(ms)),
            "p95_ms": float(np.percentile(ms, 95))}


def bulk(client: redis.Redis, users: int, per_user: int, config: StateConfig) -> dict[str, float]:
    events = synthetic_events(users * per_user, users=users, seed=1, start=10**9)
    log = Interactions.from_columns(user=[e.user_id for e in events],
                                    item=[e.item_id for e in events],
                                    ts=[e.ts for e in events],
                                    quantity=[e.quantity for e in events])
    started = time.perf_counter()
    bulk_load(client, log, config=config, event_ids=[e.event_id for e in events])
    seconds = time.perf_counter() - started
    return {"n": len(log), "seconds": seconds, "per_s": len(log) / seconds}


async def run(args: argparse.Namespace, url: str) -> dict[str, dict[str, float]]:
    config = StateConfig(prefix="bench", max_len=args.max_len)
    results: dict[str, dict[str, float]] = {}
    client = redis.Redis.from_url(url)
    results["bulk_load"] = bulk(client, args.users, args.events_per_user, config)
    args.redis_server = client.info("server")["redis_version"]
    client.close()
    store = RedisUserStateStore.from_url(url, config=config)
    events = synthetic_events(args.events, users=args.users, seed=2)
    results["redis apply single"] = await apply_rate(store, events[: args.single], 1)
    rest = events[args.single:]
    results[f"redis apply batch {args.batch}"] = await apply_rate(store, rest, args.batch)
    results[f"redis apply batch {args.batch} x4 lanes"] = await apply_rate(
        store, synthetic_events(args.events, users=args.users, seed=3, start=10**8),
        args.batch, concurrency=4)
    results["redis redelivered batch"] = await apply_rate(store, rest, args.batch)
    rng = np.random.default_rng(4)
    ids = [f"u{u}" for u in range(args.users)]
    results["redis histories 1 user"] = await latency(
        lambda: store.histories([ids[rng.integers(args.users)]]), args.repeats)
    results[f"redis histories {args.batch} users"] = await latency(
        lambda: store.histories(list(rng.choice(ids, args.batch, replace=False))), args.repeats)
    results[f"redis histories {args.batch} users last {args.last}"] = await latency(
        lambda: store.histories(list(rng.choice(ids, args.batch, replace=False)),
                                last=args.last), args.repeats)
    await store.close()
    memory = InMemoryUserStateStore(config=config)
    results[f"memory apply batch {args.batch}"] = await apply_rate(memory, events, args.batch)
    results[f"memory histories {args.batch} users"] = await latency(
        lambda: memory.histories(list(rng.choice(ids, args.batch, replace=False))), args.repeats)
    return results


def table(results: dict[str, dict[str, float]]) -> str:
    lines = [f"{'measure':<40}{'n':>10}{'seconds':>10}{'events/s':>12}{'p50 ms':>9}{'p95 ms':>9}"]
    for name, r in results.items():
        rate = f"{r['per_s']:,.0f}" if "per_s" in r else "-"
        p50 = f"{r['p50_ms']:.2f}" if "p50_ms" in r else "-"
        p95 = f"{r['p95_ms']:.2f}" if "p95_ms" in r else "-"
        lines.append(f"{name:<40}{r['n']:>10,}{r['seconds']:>10.2f}{rate:>12}{p50:>9}{p95:>9}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=10_000, help="users in the state")
    parser.add_argument("--events-per-user", type=int, default=100, help="bulk-loaded per user")
    parser.add_argument("--events", type=int, default=50_000, help="events applied per run")
    parser.add_argument("--single", type=int, default=5_000, help="of which applied one by one")
    parser.add_argument("--batch", type=int, default=256, help="micro-batch size")
    parser.add_argument("--max-len", type=int, default=200, help="StateConfig.max_len")
    parser.add_argument("--last", type=int, default=50, help="newest events read (tower)")
    parser.add_argument("--repeats", type=int, default=200, help="history reads timed")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    server = EmbeddedRedis().start(workdir=Path(tempfile.mkdtemp(prefix="nearline-bench-")))
    try:
        results = asyncio.run(run(args, server.url))
    finally:
        server.stop()
    print(table(results))
    if args.json:
        meta = {"args": {k: str(v) for k, v in vars(args).items()},
                "python": platform.python_version(), "cpus": os.cpu_count(),
                "redis_py": redis.__version__, "hiredis": HIREDIS_AVAILABLE,
                "loadavg_after": os.getloadavg()}
        args.json.write_bytes(orjson.dumps({"meta": meta, "results": results},
                                           option=orjson.OPT_INDENT_2))


if __name__ == "__main__":
    main()

"""What only the Redis store has: key layout, TTLs, scripts, errors, bulk loading."""

from __future__ import annotations

import asyncio
from typing import Any

import numpy as np
import pytest
import redis
from redis.crc import key_slot

from streams.services.embedded import free_port
from streams.state.bulk import bulk_load
from streams.state.contract import InteractionUpdate, StateConfig, StateKeys, StateStoreError
from streams.state.memory_store import InMemoryUserStateStore
from streams.state.redis_store import RedisUserStateStore
from towers.data import Interactions

from .test_state import FakeClock, ev, make_store

pytestmark = pytest.mark.services


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def dump_all(client: redis.Redis, prefix: str) -> dict[bytes, bytes]:
    return {k: client.dump(k) for k in client.scan_iter(match=f"{prefix}:*")
            if not k.endswith(b":counters")}


def test_duplicate_leaves_every_key_byte_identical(redis_server, redis_client) -> None:  # type: ignore[no-untyped-def]
    async def body() -> None:
        store = make_store("redis", redis_server.url, prefix="dup", max_len=2)
        events = [ev(1, ts=3), ev(2, ts=1, region="r"), ev(3, ts=2, user="u{2}")]
        await store.apply_interactions(events)
        ids_key = store.keys.user("u1", "ids")
        redis_client.pexpire(ids_key, 100_000)
        before = dump_all(redis_client, "dup")
        assert await store.apply_interactions(events[::-1]) == [False] * 3
        assert dump_all(redis_client, "dup") == before
        assert 0 < redis_client.pttl(ids_key) <= 100_000  # a duplicate does not refresh ttl
        await store.close()
    run(body())


def test_user_keys_share_one_cluster_slot_and_ttls_are_set(redis_server, redis_client) -> None:  # type: ignore[no-untyped-def]
    cfg = {"prefix": "slots", "event_ttl_s": 3600.0, "embedding_ttl_s": 60.0}
    users = ["plain", "a}b", "}x", "{y}", "%7D", "}"]

    async def body() -> None:
        store = make_store("redis", redis_server.url, **cfg)
        for n, user in enumerate(users):
            await store.apply_interaction(**vars(ev(n, user=user)))
        await store.put_embeddings(users, np.zeros((len(users), 2)), version="v1")
        await store.put_recalls({u: {"items": []} for u in users})
        assert {h.user_id for h in await store.histories(users)} == set(users)
        await store.close()
    run(body())
    keys = list(redis_client.scan_iter(match="slots:{u:*"))
    assert len(keys) == 6 * len(users)  # ids, seq, feat, seen, emb:v1, recall
    by_user: dict[bytes, set[int]] = {}
    for key in keys:
        by_user.setdefault(key.rsplit(b"}:", 1)[0], set()).add(key_slot(key))
    assert len(by_user) == len(users) and all(len(s) == 1 for s in by_user.values())
    keys_of = StateKeys("slots")
    assert 3_500_000 < redis_client.pttl(keys_of.user("a}b", "ids")) <= 3_600_000
    assert 50_000 < redis_client.pttl(keys_of.user("a}b", "emb:v1")) <= 60_000
    for kind in ("seq", "feat", "seen", "recall"):
        assert redis_client.pttl(keys_of.user("a}b", kind)) == -1  # kept until trimmed


def test_scripts_are_reloaded_after_a_flush(redis_server, redis_client) -> None:  # type: ignore[no-untyped-def]
    async def body() -> None:
        store = make_store("redis", redis_server.url)
        assert await store.apply_interaction(**vars(ev(1)))
        redis_client.script_flush()
        assert await store.apply_interactions([ev(1), ev(2)]) == [False, True]
        assert len((await store.histories(["u1"]))[0]) == 2
        await store.close()
    run(body())


def test_unreachable_redis_raises_a_retryable_error() -> None:
    async def body() -> None:
        store = RedisUserStateStore.from_url(f"redis://127.0.0.1:{free_port()}/0",
                                             socket_connect_timeout=0.5)
        with pytest.raises(StateStoreError, match="retry the batch"):
            await store.apply_interaction(**vars(ev(1)))
        with pytest.raises(StateStoreError):
            await store.histories(["u1"])
        await store.close()
    run(body())


def test_two_workers_share_state_through_redis(redis_server) -> None:  # type: ignore[no-untyped-def]
    async def body() -> None:
        a = make_store("redis", redis_server.url)
        b = make_store("redis", redis_server.url, prefix=a.config.prefix)  # type: ignore[attr-defined]
        events = [ev(n, user=f"u{n % 3}") for n in range(90)]
        got_a, got_b = await asyncio.gather(a.apply_interactions(events),
                                            b.apply_interactions(events[::-1]))
        assert all(x != y for x, y in zip(got_a, got_b[::-1], strict=True))
        # each store writes its own counts with its next round trip
        assert await a.counters() == {"applied": sum(got_a), "duplicates": 90 - sum(got_a)}
        assert await b.counters() == {"applied": 90, "duplicates": 90}
        await a.close()
        await b.close()
    run(body())


@pytest.mark.parametrize("slot_groups", [False, True])
def test_stores_agree_on_a_random_workload(redis_server, slot_groups: bool) -> None:  # type: ignore[no-untyped-def]
    rng = np.random.default_rng(3)
    events = [ev(int(n), user=f"u{rng.integers(20)}", item=f"i{rng.integers(40)}",
                 ts=float(rng.normal(100, 30)), quantity=float(rng.uniform(0.1, 5)),
                 region=str(rng.choice(["", "a", "b"]))) for n in rng.integers(0, 800, 1000)]

    async def body() -> None:
        clocks = [FakeClock(), FakeClock()]
        stores = [make_store(kind, redis_server.url, clock=clock, max_len=16, max_event_ids=50,
                             event_ttl_s=5.0, script_batch=7)
                  for kind, clock in zip(("memory", "redis"), clocks, strict=True)]
        # Redis Cluster grouping (one hash slot per Lua call) also runs on a single server
        stores[1]._cluster = slot_groups  # type: ignore[attr-defined]
        for store, clock in zip(stores, clocks, strict=True):
            for start in range(0, len(events), 64):
                await store.apply_interactions(events[start:start + 64])
                clock.now += 1.0  # ids expire after 5 batches: some redeliveries reapply
            await store.apply_context(event_id="c", ts=5.0, region="a", stock={"i3": False})
            await store.put_embeddings(["u1"], np.ones((1, 3)), version="v")
        memory, red = stores
        assert await memory.snapshot() == await red.snapshot()
        assert await memory.counters() == await red.counters()
        for store in stores:
            await store.close()
    run(body())


def test_bulk_load_equals_applying_the_log(redis_server, redis_client) -> None:  # type: ignore[no-untyped-def]
    rng = np.random.default_rng(5)
    n = 1_800
    base = Interactions.from_columns(
        user=[f"u{u}" for u in rng.integers(0, 50, n)],
        item=[f"i{i}" for i in rng.integers(0, 90, n)], ts=rng.uniform(0, 1e6, n).round(1),
        quantity=rng.integers(1, 5, n), region=rng.choice(["", "x"], n))
    rows = np.sort(np.concatenate([np.arange(n), rng.integers(0, n, 200)]))  # redeliveries
    log = base.take(rows)
    ids = [f"r{row}" for row in rows]
    config = StateConfig(prefix="bulk", max_len=20)
    report = bulk_load(redis_client, log, config=config, event_ids=ids, now=5.0)
    assert report["users"] == 50 and report["applied"] == n

    async def body() -> None:
        memory = InMemoryUserStateStore(config=config, clock=lambda: 5.0)
        rows = zip(ids, log.user, log.item, log.ts.tolist(), log.quantity.tolist(),
                   log.kind, log.region, strict=True)
        await memory.apply_interactions([InteractionUpdate(*row) for row in rows])
        store = RedisUserStateStore.from_url(redis_server.url, config=config, clock=lambda: 5.0)
        assert await store.snapshot() == await memory.snapshot()
        assert await store.counters() == await memory.counters()
        assert not await store.apply_interaction(**vars(InteractionUpdate(
            ids[0], str(log.user[0]), "zz", 1.0)))  # loaded ids deduplicate the stream
        await store.close()
    run(body())


def test_bulk_load_replaces_loaded_users_only(redis_server, redis_client) -> None:  # type: ignore[no-untyped-def]
    config = StateConfig(prefix="replace")

    async def body() -> None:
        store = RedisUserStateStore.from_url(redis_server.url, config=config)
        await store.apply_interactions([ev(1, user="a"), ev(2, user="b")])
        await store.close()
    run(body())
    log = Interactions.from_columns(user=["a", "a"], item=["x", "y"], ts=[5.0, 4.0])
    assert bulk_load(redis_client, log, config=config) == {
        "users": 1, "applied": 2, "duplicates": 0}
    assert bulk_load(redis_client, Interactions.empty(), config=config)["users"] == 0

    async def check() -> None:
        store = RedisUserStateStore.from_url(redis_server.url, config=config)
        a, b = await store.histories(["a", "b"])
        assert (a.items, a.ts, a.last_event_id) == (["y", "x"], [4.0, 5.0], "bulk:1")
        assert b.items == ["i2"]
        assert await store.counters() == {"applied": 4, "duplicates": 0}
        await store.close()
    run(check())


@pytest.mark.parametrize("lua_reads", [True, False])
def test_both_read_paths_give_the_memory_histories(redis_server, lua_reads: bool) -> None:  # type: ignore[no-untyped-def]
    rng = np.random.default_rng(11)
    events = [ev(n, user=f"u{rng.integers(9)}", ts=float(rng.integers(30)),
                 region=str(rng.choice(["", "r"]))) for n in range(300)]
    users = [f"u{n}" for n in range(10)]  # u9 has no events

    async def body() -> None:
        memory = InMemoryUserStateStore(config=StateConfig(max_len=20))
        red = make_store("redis", redis_server.url, max_len=20)
        red._lua_reads = lua_reads  # type: ignore[attr-defined]
        for store in (memory, red):
            await store.apply_interactions(events)
        for last in (None, 1, 7, 50):
            expected = await memory.histories(users, last=last)
            assert await red.histories(users, last=last) == expected
        await red.close()
    run(body())

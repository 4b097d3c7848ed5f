"""One contract suite over both user-state stores (quix-streams' SUPPORTED_STORES pattern)."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from streams.state.bulk import fold_users
from streams.state.connect import open_state_store
from streams.state.contract import InteractionUpdate, StateConfig, UserStateStore
from streams.state.memory_store import InMemoryUserStateStore, UserState
from streams.state.redis_store import RedisUserStateStore
from towers.data import Interactions
from towers.sequence import UserHistory

SUPPORTED_STORES = ["memory", "redis"]

Make = Callable[..., UserStateStore]


class FakeClock:
    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def make_store(kind: str, url: str | None, *, clock: Callable[[], float] | None = None,
               prefix: str | None = None, **config: Any) -> UserStateStore:
    cfg = StateConfig(prefix=prefix or f"t{uuid.uuid4().hex[:10]}", **config)
    if kind == "memory":
        return InMemoryUserStateStore(config=cfg, clock=clock or time.time)
    assert url is not None
    return RedisUserStateStore.from_url(url, config=cfg, clock=clock or time.time)


class Runner:
    """Runs an async test body with a store factory; every store made is closed after."""

    def __init__(self, kind: str, url: str | None) -> None:
        self.kind, self.url = kind, url

    def __call__(self, body: Callable[[Make], Awaitable[None]]) -> None:
        async def main() -> None:
            made: list[UserStateStore] = []

            def make(**options: Any) -> UserStateStore:
                made.append(make_store(self.kind, self.url, **options))
                return made[-1]
            try:
                await body(make)
            finally:
                for store in made:
                    await store.close()
        asyncio.run(main())


@pytest.fixture(params=SUPPORTED_STORES)
def run(request: pytest.FixtureRequest) -> Runner:
    url = request.getfixturevalue("redis_server").url if request.param == "redis" else None
    return Runner(request.param, url)


def ev(n: int, user: str = "u1", item: str | None = None, ts: float | None = None,
       quantity: float = 1.0, kind: str = "purchase", region: str = "") -> InteractionUpdate:
    return InteractionUpdate(f"e{n}", user, item or f"i{n}", float(n if ts is None else ts),
                             quantity, kind, region)


async def apply_all(store: UserStateStore, events: list[InteractionUpdate]) -> list[bool]:
    return [await store.apply_interaction(**vars(e)) for e in events]


def test_append_keeps_order_and_trims_to_max_len(run: Runner) -> None:
    async def body(make: Make) -> None:
        store = make(max_len=3)
        assert await apply_all(store, [ev(n, quantity=n, region="north") for n in range(1, 6)])
        (h, none) = await store.histories(["u1", "nobody"])
        assert none is None
        assert (h.items, h.ts, h.quantity) == (["i3", "i4", "i5"], [3.0, 4.0, 5.0], [3.0, 4.0, 5.0])
        assert (h.user_id, h.max_len, h.region, h.last_event_id) == ("u1", 3, "north", "e5")
        (tail,) = await store.histories(["u1"], last=2)
        assert (tail.items, tail.ts, tail.last_event_id) == (["i4", "i5"], [4.0, 5.0], "e5")
        (f,) = await store.features(["u1"])
        assert (f.events, f.quantity, f.max_ts, f.last_event_id) == (5, 15.0, 5.0, "e5")
        assert await store.seen_items(["u1", "nobody"]) == [{f"i{n}" for n in range(1, 6)}, set()]
    run(body)


def test_late_events_are_inserted_in_time_order(run: Runner) -> None:
    async def body(make: Make) -> None:
        store = make(max_len=4)
        await apply_all(store, [ev(1, ts=10), ev(2, ts=30), ev(3, ts=20), ev(4, ts=20)])
        (h,) = await store.histories(["u1"])
        assert (h.items, h.ts) == (["i1", "i3", "i4", "i2"], [10.0, 20.0, 20.0, 30.0])
        # older than the whole full window: counted and seen, trimmed at once
        assert await store.apply_interaction(**vars(ev(5, ts=1)))
        (h,) = await store.histories(["u1"])
        assert h.items == ["i1", "i3", "i4", "i2"]
        (f,) = await store.features(["u1"])
        assert (f.events, f.last_event_id, f.last_event_ts, f.max_ts) == (5, "e5", 1.0, 30.0)
        assert "i5" in (await store.seen_items(["u1"]))[0]
        w = h.weights(now=30.0, half_life_s=10.0)  # computed at read time
        assert np.allclose(w, [0.25, 0.5, 0.5, 1.0])
    run(body)


def test_duplicate_event_changes_nothing(run: Runner) -> None:
    async def body(make: Make) -> None:
        store = make(max_len=2)
        events = [ev(1, ts=5), ev(2, ts=3, region="r"), ev(3, ts=4, user="u2")]
        assert await store.apply_interactions(events) == [True, True, True]
        before = await store.snapshot()
        assert await store.apply_interactions([events[1], events[0]]) == [False, False]
        assert not await store.apply_interaction(**vars(events[2]))
        assert await store.snapshot() == before
        assert await store.counters() == {"applied": 3, "duplicates": 3}
        # the same id twice inside one batch: only the first applies
        assert await store.apply_interactions([ev(9), ev(9)]) == [True, False]
        assert await store.apply_interactions([]) == []
    run(body)


def test_processed_ids_expire_and_are_bounded(run: Runner) -> None:
    async def body(make: Make) -> None:
        clock = FakeClock()
        store = make(clock=clock, event_ttl_s=100.0, max_event_ids=3)
        assert await store.apply_interaction(**vars(ev(1)))
        clock.now += 50
        assert not await store.apply_interaction(**vars(ev(1)))
        clock.now += 51  # past the ttl: a redelivery this late is a new application
        assert await store.apply_interaction(**vars(ev(1)))
        await store.apply_interactions([ev(2), ev(3), ev(4)])  # e1 falls out of the newest 3
        assert await store.apply_interactions([ev(4), ev(1)]) == [False, True]
        (f,) = await store.features(["u1"])
        assert f.events == 6
    run(body)


def test_batched_apply_equals_one_by_one(run: Runner) -> None:
    async def body(make: Make) -> None:
        rng = np.random.default_rng(7)
        events = [ev(int(n), user=f"u{rng.integers(6)}", item=f"i{rng.integers(15)}",
                     ts=float(rng.integers(50)), quantity=float(rng.integers(1, 4)),
                     region=str(rng.choice(["", "a", "b"]))) for n in rng.integers(0, 150, 300)]
        clock = FakeClock()
        # script_batch=5: one user's events of a batch are split over several Lua calls
        batched = make(clock=clock, max_len=8, script_batch=5)
        single = make(clock=clock, max_len=8)
        got = []
        for start in range(0, len(events), 37):
            got += await batched.apply_interactions(events[start:start + 37])
        assert got == await apply_all(single, events)
        assert await batched.snapshot() == await single.snapshot()
        assert await batched.counters() == await single.counters()
    run(body)


def test_concurrent_redelivery_applies_each_event_once(run: Runner) -> None:
    async def body(make: Make) -> None:
        store = make(max_len=500)
        events = [ev(n, user=f"u{n % 7}") for n in range(400)]

        async def worker(offset: int) -> list[bool]:
            out = []
            for start in range(offset, len(events), 50):
                out += await store.apply_interactions(events[start:start + 50])
            return out
        a, b = await asyncio.gather(worker(0), worker(0))
        assert all(x != y for x, y in zip(a, b, strict=True))  # exactly one applied each
        features = await store.features([f"u{n}" for n in range(7)])
        assert sum(f.events for f in features) == 400
        assert await store.counters() == {"applied": 400, "duplicates": 400}
    run(body)


def test_embedding_cache_is_keyed_by_version(run: Runner) -> None:
    async def body(make: Make) -> None:
        store = make()
        v1 = np.arange(8, dtype=np.float64).reshape(2, 4)
        await store.put_embeddings(["u1", "u2"], v1, version="v1")
        got = await store.get_embeddings(["u2", "u1", "u3"], version="v1")
        assert got[0].dtype == np.float32 and np.array_equal(got[0], v1[1])
        assert np.array_equal(got[1], v1[0]) and got[2] is None
        assert await store.get_embeddings(["u1"], version="v2") == [None]
        await store.put_embeddings(["u1"], -np.ones((1, 4), np.float32), version="v2")
        (a,), (b,) = [await store.get_embeddings(["u1"], version=v) for v in ("v1", "v2")]
        assert np.array_equal(a, v1[0]) and np.array_equal(b, -np.ones(4))
    run(body)


def test_embeddings_and_recalls_expire(run: Runner) -> None:
    async def body(make: Make) -> None:
        store = make(embedding_ttl_s=0.05, recall_ttl_s=0.05)
        await store.put_embeddings(["u1"], np.ones((1, 2)), version="v1")
        await store.put_recall("u1", {"items": ["a"]})
        assert (await store.get_embeddings(["u1"], version="v1"))[0] is not None
        await asyncio.sleep(0.12)
        assert await store.get_embeddings(["u1"], version="v1") == [None]
        assert await store.get_recall("u1") is None
    run(body)


def test_recall_round_trip(run: Runner) -> None:
    async def body(make: Make) -> None:
        store = make()
        result = {"user_id": "u1", "items": ["a", "b"], "scores": np.array([0.5, 0.25]),
                  "channels": ["two_tower", "repeat"], "version": "v3", "last_event_id": "e9",
                  "last_event_ts": 12.5, "emitted_ts": 13.0}
        await store.put_recalls({"u1": result, "u2": {**result, "user_id": "u2"}})
        got = await store.get_recalls(["u1", "u2", "u3"])
        assert got[0] == {**result, "scores": [0.5, 0.25]}
        assert got[1]["user_id"] == "u2" and got[2] is None
        await store.put_recall("u1", {**result, "items": ["c"]})
        assert (await store.get_recall("u1"))["items"] == ["c"]
    run(body)


def test_context_and_stock(run: Runner) -> None:
    async def body(make: Make) -> None:
        store = make()
        assert await store.apply_context(event_id="c1", ts=10, region="north", weather="rain",
                                         temperature=4.5, holiday=True,
                                         stock={"a": False, "b": False})
        expected = {"ts": 10.0, "weather": "rain", "temperature": 4.5, "holiday": True}
        assert await store.context("north") == expected
        assert await store.context("south") is None
        assert await store.unavailable_items() == {"a", "b"}
        # an older report changes neither the region's context nor newer stock
        assert await store.apply_context(event_id="c0", ts=5, region="north", weather="sun",
                                         stock={"a": True, "c": False})
        assert await store.context("north") == expected
        assert await store.unavailable_items() == {"a", "b", "c"}
        assert await store.apply_stock(event_id="s1", ts=11, stock={"b": True})
        assert await store.apply_context(event_id="c2", ts=12, temperature=float("nan"))
        assert await store.context("") == {"ts": 12.0, "weather": "", "temperature": None,
                                           "holiday": False}
        assert not await store.apply_stock(event_id="c1", ts=20, stock={"a": True})
        assert await store.unavailable_items() == {"a", "c"}
        assert await store.counters() == {"applied": 4, "duplicates": 1}
    run(body)


def test_live_version(run: Runner) -> None:
    async def body(make: Make) -> None:
        store = make()
        assert await store.live_version() is None
        await store.set_live_version("v7")
        await store.set_live_version("v8")
        assert await store.live_version() == "v8"
    run(body)


def test_open_state_store_memory_url() -> None:
    store = open_state_store("memory://", config=StateConfig(max_len=5))
    assert isinstance(store, InMemoryUserStateStore) and store.config.max_len == 5


# --- property: redeliveries in any order of batches leave the deduplicated state ---------

USERS = ["u1", "u{2}", "}x%7B", "%25"]  # braces and escapes in ids exercise the hash tags
_EVENT = st.builds(
    lambda user, item, ts, q, kind, region: (user, item, float(ts), q, kind, region),
    st.sampled_from(USERS), st.sampled_from(["a", "b", "c", "d", "e"]), st.integers(0, 12),
    st.sampled_from([1.0, 0.5, 2.0, 0.1, 0.7, 0.3, 1e-3]), st.sampled_from(["view", "purchase"]),
    st.sampled_from(["", "n", "s"]),
)


@st.composite
def redelivered_logs(draw: st.DrawFn) -> tuple[list[InteractionUpdate], list[list[Any]]]:
    base = draw(st.lists(_EVENT, min_size=1, max_size=20))
    events = [InteractionUpdate(f"e{n}", *fields) for n, fields in enumerate(base)]
    delivered = draw(st.lists(st.sampled_from(events), min_size=1, max_size=40))
    cuts = sorted(draw(st.sets(st.integers(1, len(delivered)), max_size=5)))
    batches = [delivered[a:b] for a, b in zip([0, *cuts], [*cuts, len(delivered)], strict=True)]
    return delivered, [b for b in batches if b]


def reference_histories(events: list[InteractionUpdate], max_len: int) -> dict[str, UserHistory]:
    out: dict[str, UserHistory] = {}
    for e in events:
        h = out.setdefault(e.user_id, UserHistory(user_id=e.user_id, max_len=max_len))
        h.append(e.item_id, e.ts, e.quantity, e.kind, event_id=e.event_id)
        h.region = e.region or h.region
    return out


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(log=redelivered_logs())
def test_redeliveries_leave_the_deduplicated_state(run: Runner, log: Any) -> None:
    delivered, batches = log
    unique = list({e.event_id: e for e in delivered}.values())  # first deliveries, in order

    async def body(make: Make) -> None:
        clock = FakeClock()
        noisy, clean = make(clock=clock, max_len=4), make(clock=clock, max_len=4)
        for batch in batches:
            await noisy.apply_interactions(batch)
        assert await apply_all(clean, unique) == [True] * len(unique)
        assert await noisy.snapshot() == await clean.snapshot()
        assert await noisy.counters() == {"applied": len(unique),
                                          "duplicates": len(delivered) - len(unique)}
        expected = reference_histories(unique, 4)
        got = await noisy.histories(list(expected))
        assert [vars(h) for h in got] == [vars(h) for h in expected.values()]
    run(body)


def _user_view(s: UserState) -> tuple[Any, ...]:
    return s.seq, s.features(), s.seen, s.ids.dump()


@settings(max_examples=60, deadline=None)
@given(log=redelivered_logs(), max_ids=st.integers(1, 12))
def test_bulk_fold_equals_applying_one_by_one(log: Any, max_ids: int) -> None:
    delivered, _ = log
    columns = Interactions.from_columns(
        user=[e.user_id for e in delivered], item=[e.item_id for e in delivered],
        ts=[e.ts for e in delivered], quantity=[e.quantity for e in delivered],
        kind=[e.kind for e in delivered], region=[e.region for e in delivered])
    ids = [e.event_id for e in delivered]
    config = StateConfig(max_len=4, max_event_ids=max_ids)  # small: the slow path runs too
    states, duplicates = fold_users(columns, config=config, now=5.0, event_ids=ids)
    reference: dict[str, UserState] = {}
    applied = 0
    rows = zip(ids, columns.user.tolist(), columns.item.tolist(), columns.ts.tolist(),
               columns.quantity.tolist(), columns.kind.tolist(), columns.region.tolist(),
               strict=True)
    for e in (InteractionUpdate(*row) for row in rows):
        applied += reference.setdefault(e.user_id, UserState()).apply(e, now=5.0, config=config)
    assert duplicates == len(columns) - applied
    assert {u: _user_view(s) for u, s in states.items()} == {
        u: _user_view(s) for u, s in reference.items()}

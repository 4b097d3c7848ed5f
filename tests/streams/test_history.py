"""In-memory user histories: bulk build, time order, bounds, seen sets, updates."""

from __future__ import annotations

import numpy as np

from streams.recall.history import InMemoryHistories
from towers.data import Interactions


def log() -> Interactions:
    return Interactions.from_columns(
        user=["u1", "u2", "u1", "u1", "u2"], item=["c", "x", "a", "b", "y"],
        ts=[30.0, 5.0, 10.0, 20.0, 6.0], quantity=[1, 2, 3, 4, 5],
        region=["r1", "", "r2", "", ""])


def test_bulk_build_orders_by_time_and_keeps_newest() -> None:
    h = InMemoryHistories.from_interactions(log(), max_len=2)
    u1 = h.get("u1")
    assert u1 is not None
    assert u1.items == ["b", "c"] and u1.ts == [20.0, 30.0] and u1.quantity == [4.0, 1.0]
    assert u1.region == "r1"  # latest event that named a region
    assert set(h.seen("u1")) == {"a", "b", "c"}  # seen is unbounded
    assert h.get("u2").items == ["x", "y"]  # type: ignore[union-attr]
    assert h.get("nobody") is None and len(h.seen("nobody")) == 0
    assert sorted(h.users()) == ["u1", "u2"] and "u1" in h and len(h) == 2


def test_bulk_build_uses_only_the_given_rows() -> None:
    h = InMemoryHistories.from_interactions(log(), np.array([1, 2]))
    assert sorted(h.users()) == ["u1", "u2"]
    assert h.get("u1").items == ["a"]  # type: ignore[union-attr]


def test_apply_appends_in_time_order_and_creates_users() -> None:
    h = InMemoryHistories.from_interactions(log(), max_len=3)
    events = Interactions.from_columns(user=["u3", "u1", "u1"], item=["z", "e", "d"],
                                       ts=[50.0, 41.0, 40.0], region=["r9", "", "r3"])
    h.apply(events)
    assert h.get("u1").items == ["c", "d", "e"]  # type: ignore[union-attr]
    assert h.get("u1").region == "r3"  # type: ignore[union-attr]
    assert h.get("u3").items == ["z"] and h.get("u3").region == "r9"  # type: ignore[union-attr]
    assert h.seen_many(["u1", "u3", "u9"]) == [{"a", "b", "c", "d", "e"}, {"z"}, set()]


def test_apply_matches_bulk_build() -> None:
    full = log()
    bulk = InMemoryHistories.from_interactions(full)
    inc = InMemoryHistories.from_interactions(full.take(np.array([0, 1])))
    inc.apply(full.take(np.array([2, 3, 4])))
    for user in ("u1", "u2"):
        a, b = bulk.get(user), inc.get(user)
        assert a is not None and b is not None
        assert (a.items, a.ts, a.quantity) == (b.items, b.ts, b.quantity)

"""The returning channel: popularity only for users whose newest event is old enough."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Container, Sequence
from dataclasses import replace

import pytest
import redis.asyncio as aioredis

from streams.recall.channels import RepeatConfig
from streams.recall.merge import MergeConfig
from streams.recall.profiles import PROFILES
from streams.recall.returning import ReturningConfig, ReturningPopularity
from streams.state.memory_store import InMemoryUserStateStore
from streams.state.popularity import PopularityBoard
from streams.worker.engine import EngineConfig, RecallEngine, UserRecall
from streams.worker.records import Interaction
from towers.sequence import DAY, UserHistory


class _Ranked:
    """A popularity stand-in that records whom it was asked about."""

    name = "popularity"

    def __init__(self) -> None:
        self.asked: list[str] = []

    def fit(self, dataset: object, history: object) -> None: ...
    def observe(self, events: object) -> None: ...

    def candidates(self, histories: Sequence[UserHistory | None], *, k: int, now: float,
                   exclude: Sequence[Container[str]] | None = None
                   ) -> list[list[tuple[str, float]]]:
        self.asked += [h.user_id for h in histories if h is not None]
        out = []
        for j, _ in enumerate(histories):
            banned = exclude[j] if exclude is not None else ()
            out.append([(i, 1.0) for i in ("a", "b", "c") if i not in banned][:k])
        return out


def _history(user: str, last_ts: float) -> UserHistory:
    h = UserHistory(user)
    h.append("x", last_ts - 10.0)
    h.append("y", last_ts)
    return h


def test_only_users_away_long_enough_get_the_popular_items() -> None:
    ranked = _Ranked()
    channel = ReturningPopularity(ranked, ReturningConfig(away_s=DAY))
    now = 100 * DAY
    users = [_history("back", now - 2 * DAY), _history("here", now - 60.0), None,
             _history("edge", now - DAY)]
    out = channel.candidates(users, k=2, now=now, exclude=[{"a"}, set(), set(), set()])
    assert out == [[("b", 1.0), ("c", 1.0)], [], [], [("a", 1.0), ("b", 1.0)]]
    assert ranked.asked == ["back", "edge"]  # nobody else costs a lookup


def test_nobody_away_asks_nothing() -> None:
    ranked = _Ranked()
    channel = ReturningPopularity(ranked, ReturningConfig(away_s=DAY))
    assert channel.candidates([_history("u", 5.0)], k=3, now=6.0) == [[]]
    assert ranked.asked == []


@pytest.mark.services
def test_a_worker_list_gets_it_only_when_computed_after_a_break(redis_server) -> None:  # type: ignore[no-untyped-def]
    """At an interaction's own time the user is mid-session: no returning items. A list
    computed days later (a context event for that user) gets what sells now."""
    now_list, later = asyncio.run(_lists(redis_server.url))
    assert "returning" not in now_list.recall.channels
    before = dict(zip(now_list.recall.items, now_list.recall.scores, strict=True))
    after = dict(zip(later.recall.items, later.recall.scores, strict=True))
    credit = dict(zip(later.recall.items, later.recall.channels, strict=True))
    assert before["hot"] == 0.0  # only a filler (popularity weighs 0 here)
    assert after["hot"] > 0.0 and credit["hot"] == "returning"
    assert after["own"] > before["own"]  # the user's own item is popular too


async def _lists(redis_url: str) -> tuple[UserRecall, UserRecall]:
    client = aioredis.Redis.from_url(redis_url)
    board = PopularityBoard(client, prefix=f"ret{uuid.uuid4().hex[:6]}")
    profile = replace(PROFILES["retail"], returning=ReturningConfig(away_s=DAY),
                      repeat=RepeatConfig(), merge=MergeConfig(
                          weights={"repeat": 1.0, "popularity": 0.0, "returning": 2.0}))
    engine = RecallEngine(InMemoryUserStateStore(), board,
                          config=EngineConfig(profile=profile, top_k=5))
    t0 = 1_700_000_000.0
    events = [Interaction(event_id="a1", user_id="a", item_id="own", type="purchase", ts=t0)]
    events += [Interaction(event_id=f"h{j}", user_id=f"u{j}", item_id="hot", type="purchase",
                           ts=t0 + 60.0 * j) for j in range(20)]
    try:
        await engine.apply(events)
        (now_list,) = await engine.recall(["a"], now=t0)
        (later,) = await engine.recall(["a"], now=t0 + 3 * DAY)
    finally:
        await client.aclose()
    return now_list, later

"""The live popularity board in a real Redis ranks like the in-process channel."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest
import redis.asyncio as aioredis

from streams.recall.channels import PopularityChannel, PopularityConfig
from streams.recall.ranked_popularity import RankedPopularity
from streams.state.popularity import PopularityBoard
from towers.data import Interactions
from towers.sequence import DAY, UserHistory

pytestmark = pytest.mark.services


def _log(n: int, seed: int = 0, span_days: float = 60.0) -> Interactions:
    rng = np.random.default_rng(seed)
    items = np.array([f"i{int(x)}" for x in rng.zipf(1.5, n) % 50], dtype=object)
    ts = np.sort(rng.uniform(0, span_days * DAY, n)) + 1e9
    regions = np.array([("a", "b")[int(x)] for x in rng.integers(0, 2, n)], dtype=object)
    return Interactions.from_columns(user=np.array(["u"] * n, dtype=object), item=items, ts=ts,
                                     region=regions)


async def _board_ranking(url: str, log: Interactions, half_life: float | None,
                         batch: int) -> dict[str, tuple[list[str], np.ndarray]]:
    client = aioredis.Redis.from_url(url)
    board = PopularityBoard(client, prefix="pop-test", half_life_s=half_life)
    for s in range(0, len(log), batch):
        part = log.take(np.arange(s, min(s + batch, len(log))))
        ids = [f"e{j}" for j in range(s, s + len(part))]
        assert await board.add(ids, part.item.tolist(), part.region.tolist(),
                               part.ts.tolist(), part.quantity.tolist()) == len(part)
        # redelivered: counted once
        assert await board.add(ids, part.item.tolist(), part.region.tolist(),
                               part.ts.tolist(), part.quantity.tolist()) == 0
    out = {}
    for region in ("", "a"):
        ids, scores = await board.ranking(region, n=100)
        out[region] = (ids.tolist(), scores)
    await client.aclose()
    return out


@pytest.mark.parametrize("half_life", [None, 7 * DAY, 0.05 * DAY])
def test_board_matches_in_process_popularity(redis_client, redis_server, half_life) -> None:  # type: ignore[no-untyped-def]
    log = _log(3000)
    got = asyncio.run(_board_ranking(redis_server.url, log, half_life, batch=97))
    channel = PopularityChannel(PopularityConfig(live=True, half_life_s=half_life,
                                                 region_weight=1.0))
    channel.observe(log)
    # 0.05-day half-life over 60 days: exponents pass 500, so the board rescales
    for region in ("", "a"):
        ids, scores = channel.ranking(region)
        expected = dict(zip(ids.tolist(), scores.tolist(), strict=True))
        board_ids, board_scores = got[region]
        np.testing.assert_allclose(board_scores[:20], scores[:20], rtol=1e-6)  # same order
        np.testing.assert_allclose(board_scores, [expected[i] for i in board_ids], rtol=1e-6)


def test_ranked_channel_blends_region_and_excludes() -> None:
    rankings = {"": (np.array(["x", "y", "z"], dtype=object), np.array([0.5, 0.3, 0.2])),
                "r": (np.array(["z", "y"], dtype=object), np.array([0.9, 0.1]))}
    channel = RankedPopularity(rankings, region_weight=0.5)
    h = UserHistory("u", region="r")
    [blended, plain] = channel.candidates([h, None], k=2, now=0.0, exclude=[{"y"}, set()])
    assert [i for i, _ in blended] == ["z", "x"]
    assert [i for i, _ in plain] == ["x", "y"]

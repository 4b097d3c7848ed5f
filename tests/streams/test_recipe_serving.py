"""A checkpoint's recipe is what a worker serves: the engine over Redis, given a live model
whose recipe uses repurchase and explore, makes the lists the in-process evaluator makes
with that recipe, event after event."""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import redis.asyncio as aioredis

from bench.synthetic_model import untrained_checkpoint
from streams.evaluation.systems import nearline_system
from streams.evaluation.tuning import RAW_MERGE
from streams.models.lifecycle import live_model
from streams.recall.profiles import PROFILES
from streams.recall.recipe import RECIPE_FILE, Recipe
from streams.recall.repurchase import RepurchaseConfig, RepurchaseModel
from streams.recall.two_tower import TowerBundle
from streams.state.memory_store import InMemoryUserStateStore
from streams.state.popularity import PopularityBoard
from streams.worker.engine import EngineConfig, RecallEngine
from streams.worker.records import Interaction
from towers.data import Dataset, Interactions, ItemInfo
from towers.sequence import DAY


def _shop(seed: int = 5) -> Dataset:
    """Stores rebuying their own staples on cycles, plus trying popular items."""
    rng = np.random.default_rng(seed)
    user, item, ts = [], [], []
    for day in range(40):
        for u in range(25):
            if rng.random() < 0.5:
                continue
            staples = [f"s{(u + j) % 30}" for j in range(3)]
            basket = {s for s in staples if rng.random() < 0.6}
            basket |= {f"p{int(x)}" for x in rng.zipf(1.6, 2) if x < 60}
            for i in sorted(basket):
                user.append(f"u{u}"), item.append(i), ts.append(1.7e9 + day * DAY + u)
    log = Interactions.from_columns(user=user, item=item, ts=ts)
    items = {i: ItemInfo(category=i[0]) for i in set(item)}
    return Dataset(name="shop", interactions=log, items=items)


@pytest.mark.services
def test_the_engine_serves_the_recipe_the_evaluator_scores(redis_server, tmp_path: Path  # type: ignore[no-untyped-def]
                                                           ) -> None:
    data = _shop()
    log = data.interactions
    order = np.argsort(log.ts, kind="stable")
    cut = int(0.7 * len(order))
    history, stream = log.take(order[:cut]), log.take(order[cut:])
    model = RepurchaseModel.fit(history, {i: v.category for i, v in data.items.items()},
                                RepurchaseConfig())
    profile = replace(PROFILES["retail"], repurchase=model.config, merge=RAW_MERGE)
    checkpoint = untrained_checkpoint(tmp_path / "runs", data, seed=2,
                                      version="recipe-20260101T000000Z-0123abcd", dim=8)
    (checkpoint / RECIPE_FILE).write_bytes(Recipe(profile=profile, repurchase=model).to_bytes())
    bundle = TowerBundle.from_checkpoint(checkpoint)
    live = live_model(bundle, checkpoint)
    assert live.recipe is not None and live.recipe.repurchase is not None

    system = nearline_system(data, bundle, profile=profile, repurchase=model)
    system.fit(data, history)
    served = asyncio.run(_served(redis_server.url, live, history, stream))
    for j in range(len(stream)):
        one = stream.take(np.array([j]))
        system.observe(one)
        user, now = str(one.user[0]), float(one.ts[0])
        [expected] = system.recaller.recall([user], k=20, now=now)
        assert served[j] == expected.items, f"event {j} of {user}"
        assert "repurchase" in expected.channels or "explore" in expected.channels


async def _served(url: str, live, history: Interactions, stream: Interactions  # type: ignore[no-untyped-def]
                  ) -> list[list[str]]:
    client = aioredis.Redis.from_url(url)
    board = PopularityBoard(client, prefix=f"rs{uuid.uuid4().hex[:6]}",
                            half_life_s=PROFILES["retail"].popularity.half_life_s)
    engine = RecallEngine(InMemoryUserStateStore(), board, model=live,
                          config=EngineConfig(profile=PROFILES["retail"], top_k=20))

    def events(log: Interactions, tag: str) -> list[Interaction]:
        return [Interaction(event_id=f"{tag}{j}", user_id=str(log.user[j]),
                            item_id=str(log.item[j]), type="purchase", ts=float(log.ts[j]))
                for j in range(len(log))]

    out = []
    try:
        await engine.apply(events(history, "h"))
        for event in events(stream, "s"):
            await engine.apply([event])
            [result] = await engine.recall([event.user_id], now=event.ts)
            out.append(result.recall.items)
    finally:
        await client.aclose()
    return out

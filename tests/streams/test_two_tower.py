"""The two-tower channel over a small trained model, its bundles and the systems using it."""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import replace
from pathlib import Path

import numpy as np
import orjson
import pytest
import redis.asyncio as aioredis
import torch

from index import IndexFileError, save_index
from streams.evaluation.systems import evaluation_systems, nearline_system, two_tower_system
from streams.models.lifecycle import LiveModel
from streams.recall.two_tower import BatchEmbeddings, TowerBundle, TwoTowerChannel
from streams.state.memory_store import InMemoryUserStateStore
from streams.state.popularity import PopularityBoard
from streams.worker.engine import RecallEngine
from streams.worker.pipeline import Incoming, Pipeline
from tests.streams.harness import CollectingSink
from towers.checkpoint import save_checkpoint
from towers.data import Dataset, temporal_split
from towers.datasets import load_dataset
from towers.examples import latest_histories
from towers.model import TwoTower
from towers.sequence import UserHistory
from towers.train import TrainConfig, TrainResult, train

TINY = {"dim": 16, "emb_dim": 16, "hidden": 32}


@pytest.fixture(scope="module")
def market() -> Dataset:
    return load_dataset("market", days=30)


@pytest.fixture(scope="module")
def trained(market: Dataset) -> tuple[TrainResult, TrainResult]:
    """A model trained for one epoch, and untrained towers over the same features."""
    cfg = TrainConfig(epochs=1, batch_size=512, progress=False, refit=False)
    result = train(market, tower=TINY, config=cfg)
    torch.manual_seed(1)
    other = replace(result, model=TwoTower(result.config).eval())
    return result, other


@pytest.fixture(scope="module")
def bundles(trained: tuple[TrainResult, TrainResult]) -> tuple[TowerBundle, TowerBundle]:
    return TowerBundle.from_training(trained[0], "v-a"), TowerBundle.from_training(trained[1],
                                                                                  "v-b")


@pytest.fixture(scope="module")
def histories(market: Dataset) -> list[UserHistory]:
    split = temporal_split(market.interactions)
    found = latest_histories(market.interactions, split.train, max_len=200)
    return [found[u] for u in sorted(found)[:12]]


def _ids(cands: list[tuple[str, float]]) -> list[str]:
    return [i for i, _ in cands]


def test_candidates_are_k_distinct_items_outside_the_exclusions(bundles, histories) -> None:  # type: ignore[no-untyped-def]
    channel = TwoTowerChannel(bundles[0])
    catalogue = len(bundles[0].index)
    out = channel.candidates([*histories, None], k=30, now=0.0)
    assert out[-1] == []  # no history: the fallback's job
    for cands in out[:-1]:
        assert len(cands) == 30 and len(set(_ids(cands))) == 30
        assert [s for _, s in cands] == sorted((s for _, s in cands), reverse=True)
    # exclude most of the catalogue for one user: the top-up search still finds k items
    kept = set(_ids(out[0])[:5]) | set(_ids(channel.candidates(histories[:1], k=catalogue,
                                                               now=0.0)[0])[-40:])
    blocked = set(bundles[0].items.ids.tolist()) - kept
    again = channel.candidates(histories[:2], k=30, now=0.0, exclude=[blocked, set()])
    assert len(again[0]) == 30 and not blocked & set(_ids(again[0]))
    assert _ids(again[1]) == _ids(out[1])


def test_embed_then_search_gives_the_candidates(bundles, histories) -> None:  # type: ignore[no-untyped-def]
    channel = TwoTowerChannel(bundles[0])
    vectors = channel.embed(histories, bundle=bundles[0])
    assert vectors.shape == (len(histories), 16) and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    searched = channel.search(vectors, k=20, bundle=bundles[0])
    direct = channel.candidates(histories, k=20, now=0.0)
    for a, b in zip(searched, direct, strict=True):
        assert _ids(a) == _ids(b)
        np.testing.assert_allclose([s for _, s in a], [s for _, s in b], atol=1e-5)


def test_use_swaps_the_version_for_both_steps(bundles, histories) -> None:  # type: ignore[no-untyped-def]
    a, b = bundles
    channel = TwoTowerChannel(a)
    before = channel.candidates(histories, k=20, now=0.0)
    channel.use(b)
    after = channel.candidates(histories, k=20, now=0.0)
    assert channel.bundle is b and after != before
    own = TwoTowerChannel(b).search(TwoTowerChannel(b).embed(histories), k=20)
    assert [_ids(c) for c in after] == [_ids(c) for c in own]


def test_bundle_round_trips_through_a_checkpoint(trained, bundles, histories,  # type: ignore[no-untyped-def]
                                                 market, tmp_path: Path) -> None:
    path = save_checkpoint(tmp_path, model=trained[0].model, spec=trained[0].spec,
                           items=trained[0].items, metrics=trained[0].metrics,
                           dataset=market.name, version="v-saved")
    loaded = TowerBundle.from_checkpoint(path)
    assert loaded.version == "v-saved" and not loaded.model.training
    assert len(loaded.index) == len(market.catalogue())
    ours = TwoTowerChannel(bundles[0]).candidates(histories, k=25, now=0.0)
    theirs = TwoTowerChannel(loaded).candidates(histories, k=25, now=0.0)
    assert [_ids(c) for c in ours] == [_ids(c) for c in theirs]
    save_index(loaded.index, tmp_path / "index")
    again = TowerBundle.from_checkpoint(path, index_dir=tmp_path / "index")
    assert again.index.version == "v-saved" and len(again.index) == len(loaded.index)


def test_a_saved_index_of_another_version_is_rejected(trained, bundles, market,  # type: ignore[no-untyped-def]
                                                      tmp_path: Path) -> None:
    path = save_checkpoint(tmp_path, model=trained[0].model, spec=trained[0].spec,
                           items=trained[0].items, metrics={}, dataset=market.name,
                           version="v-mine")
    save_index(bundles[1].index, tmp_path / "other")  # built for v-b
    with pytest.raises(IndexFileError, match="v-b"):
        TowerBundle.from_checkpoint(path, index_dir=tmp_path / "other")


def test_evaluation_systems_add_the_towers_when_given_a_bundle(market, bundles) -> None:  # type: ignore[no-untyped-def]
    plain = [s.name for s in evaluation_systems(market)]
    full = [s.name for s in evaluation_systems(market, bundle=bundles[0])]
    assert "two_tower" not in plain and "nearline" not in plain
    assert full == [*plain, "two_tower", "nearline"]
    split = temporal_split(market.interactions)
    history = market.interactions.take(split.train)
    users = [*sorted(set(history.user.tolist()))[:5], "nobody"]
    for system in (two_tower_system(market, bundles[0]), nearline_system(market, bundles[0])):
        system.fit(market, history)
        lists = system.recall(users, k=40, now=float(history.ts.max()))
        assert all(len(x) == 40 and len(set(x)) == 40 for x in lists), system.name


def test_batch_embeddings_answer_as_the_channel_does(bundles, histories) -> None:  # type: ignore[no-untyped-def]
    channel = TwoTowerChannel(bundles[0])
    batch = BatchEmbeddings(channel, [None, *histories])
    assert batch.rows == list(range(1, len(histories) + 1))
    # float sums may differ in the last bits with the batch's size: compare to 1e-6
    np.testing.assert_allclose(batch.vectors, channel.embed(histories), atol=1e-6)
    # any subset of the batch's histories, in any order, as the recaller asks for them
    subset = [histories[3], None, histories[0]]
    got = batch.candidates(subset, k=20, now=0.0, exclude=[set(), set(), {"x"}])
    want = channel.candidates(subset, k=20, now=0.0, exclude=[set(), set(), {"x"}])
    assert [_ids(c) for c in got] == [_ids(c) for c in want] and got[1] == []
    for a, b in zip(got, want, strict=True):
        np.testing.assert_allclose([s for _, s in a], [s for _, s in b], atol=1e-5)
    with pytest.raises(KeyError):  # not one of its histories: never embedded silently
        batch.candidates([UserHistory("someone", items=["a"], ts=[1.0], quantity=[1.0],
                                      kind=["view"])], k=5, now=0.0)


async def _through_pipeline(redis_url: str, bundle: TowerBundle,
                            histories: list[UserHistory]) -> tuple[list, list]:  # type: ignore[type-arg]
    client = aioredis.Redis.from_url(redis_url)
    store = InMemoryUserStateStore()
    engine = RecallEngine(store, PopularityBoard(client, prefix=f"tt{uuid.uuid4().hex[:6]}"),
                          model=LiveModel(version=bundle.version,
                                          channel=TwoTowerChannel(bundle)))
    sink = CollectingSink()
    pipeline = Pipeline(engine, sink, max_event_bytes=1 << 16, max_future_s=1e9)
    messages = [Incoming(orjson.dumps({"event_id": f"{h.user_id}-{n}", "user_id": h.user_id,
                                       "item_id": item, "ts": ts, "type": "purchase",
                                       "quantity": 1.0}), "interactions", 0, n, 0.0)
                for h in histories[:4]
                for n, (item, ts) in enumerate(zip(h.items[-5:], h.ts[-5:], strict=True))]
    try:
        await pipeline.on_interactions(messages)
        users = [h.user_id for h in histories[:4]]
        cached = await store.get_embeddings(users, version=bundle.version)
        stored = await store.histories(users)
        other = await store.get_embeddings(users, version="another")
    finally:
        await client.aclose()
    assert other == [None] * 4  # keyed by version
    assert not sink.letters
    return cached, [sink.lists, stored]


def test_the_pipeline_caches_the_embeddings_it_searched_with(redis_server, bundles,  # type: ignore[no-untyped-def]
                                                              histories) -> None:
    cached, (published, stored) = asyncio.run(
        _through_pipeline(redis_server.url, bundles[0], histories))
    channel = TwoTowerChannel(bundles[0])
    for vector, history, result in zip(cached, stored, published, strict=True):
        np.testing.assert_allclose(vector, channel.embed([history])[0], atol=1e-6)
        # the list was searched with that vector: its two-tower items are that search's
        searched = _ids(channel.search(vector[None, :], k=100)[0])
        mine = [i for i, c in zip(result.items, result.channels, strict=True)
                if c == "two_tower"]
        assert mine and set(mine) <= set(searched)

"""The replay through Kafka and a worker agrees with the in-process reference."""

from __future__ import annotations

import asyncio

import pytest

from streams.replay.reference import compare_lists, hitrate_gap, reference_lists
from streams.replay.run import ReplayOptions, isolated, prepare, run_replay
from streams.replay.window import split_window
from streams.services.embedded import free_port
from streams.settings import Settings
from towers.datasets import MarketConfig, market_dataset

pytestmark = pytest.mark.services


def test_slow_replay_matches_the_in_process_lists(broker, redis_server, tmp_path) -> None:  # type: ignore[no-untyped-def]
    data = market_dataset(MarketConfig(seed=3, n_stores=40, n_skus=80, days=30))
    window = split_window(data, start="test", limit=250)
    base = Settings(kafka_url=broker.url, redis_url=redis_server.url, home=str(tmp_path),
                    partitions=2, rebalance_timeout_s=2.0, web_port=free_port())
    outcome = run_replay(isolated(base), window,
                         ReplayOptions(one_per_batch=True, workers=1, timeout_s=120),
                         logdir=tmp_path / "logs")
    report = outcome.report
    assert report["lists"] >= len(window.users())
    stream = report["systems"]["nearline"]["stream"]
    assert stream["events"] > 0 and 0 < stream["HitRate@50"] <= 1

    reference_settings = isolated(base)
    prepare(reference_settings, window, None)
    reference = asyncio.run(reference_lists(reference_settings, window))
    agreement = compare_lists(outcome.lists, reference)
    assert agreement["compared"] >= 0.9 * len(window.window)
    assert agreement["lists_equal_share"] >= 0.99, agreement
    gap = hitrate_gap(window, outcome.lists, reference, outcome.boundary, ks=(10, 50))
    assert gap["HitRate@50_abs_diff"] <= 0.005, gap

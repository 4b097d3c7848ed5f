"""The market simulator: determinism, valid events, and the structure a model can learn."""

from __future__ import annotations

import time
from collections import defaultdict
from dataclasses import replace
from pathlib import Path

import numpy as np
import orjson
import pytest

from towers.datasets import (
    CATEGORIES,
    Market,
    MarketConfig,
    build_market,
    market_dataset,
    read_events_jsonl,
    simulate_market,
    validate_event,
    write_market_jsonl,
)
from towers.errors import DataError

DAY = 86_400.0
SMALL = MarketConfig(seed=3, n_stores=30, n_skus=60, n_regions=3, days=30)


@pytest.fixture(scope="module")
def market() -> Market:
    return build_market(MarketConfig())


@pytest.fixture(scope="module")
def events(market: Market) -> list[dict]:
    started = time.perf_counter()
    out = simulate_market(market.config, market=market)
    # 200 stores x 300 SKUs x 90 days takes a few seconds; a regression to minutes fails
    assert time.perf_counter() - started < 30.0
    return out


@pytest.fixture(scope="module")
def purchases(events: list[dict]) -> list[dict]:
    return [e for e in events if e["record"] == "interaction" and e["type"] == "purchase"]


def category_of(market: Market) -> dict[str, str]:
    return {sku: CATEGORIES[c].name for sku, c in zip(market.sku_ids, market.sku_category,
                                                        strict=True)}


def test_same_seed_same_bytes(tmp_path: Path) -> None:
    assert simulate_market(SMALL) == simulate_market(SMALL)
    a, b = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    assert write_market_jsonl(a, SMALL) == write_market_jsonl(b, SMALL) > 1000
    assert a.read_bytes() == b.read_bytes()
    assert simulate_market(replace(SMALL, seed=4)) != simulate_market(SMALL)


def test_events_are_canonical_and_in_time_order(events: list[dict]) -> None:
    for event in events:
        assert orjson.dumps(validate_event(event)) == orjson.dumps(event)
    ts = np.array([e["ts"] for e in events])
    assert (np.diff(ts) >= 0).all()
    assert len({e["event_id"] for e in events}) == len(events)
    kinds = {e.get("type") for e in events if e["record"] == "interaction"}
    assert kinds == {"view", "click", "purchase"}


def test_catalogue_contexts_and_launches(market: Market, events: list[dict]) -> None:
    cfg = market.config
    contexts = [e for e in events if e["record"] == "context"]
    assert len(contexts) == cfg.days * cfg.n_regions
    items = [e for e in events if e["record"] == "item"]
    start = events[0]["ts"]
    at_start = {e["item_id"] for e in items if e["ts"] == start}
    launched = {e["item_id"]: e["ts"] for e in items if e["ts"] > start and e["available"]
                and e["item_id"] not in at_start}
    assert len(at_start) + len(launched) == cfg.n_skus and len(launched) > 0
    first_seen: dict[str, float] = {}
    for e in events:
        if e["record"] == "interaction":
            first_seen.setdefault(e["item_id"], e["ts"])
    assert all(first_seen.get(sku, np.inf) > ts for sku, ts in launched.items())


def test_nothing_out_of_stock_is_bought(events: list[dict]) -> None:
    regional: dict[tuple[str, str], bool] = {}
    national: dict[str, bool] = {}
    outages = stockouts = 0
    for e in events:
        if e["record"] == "item":
            outages += not e["available"]
            national[e["item_id"]] = e["available"]
        elif e["record"] == "context":
            for sku, ok in e.get("stock", {}).items():
                stockouts += not ok
                regional[e["region"], sku] = ok
        elif e["type"] == "purchase":
            assert national[e["item_id"]], e
            assert regional.get((e["region"], e["item_id"]), True), e
    assert stockouts > 20 and outages > 0


def test_repurchase_gaps_cluster_around_each_pairs_cycle(market: Market,
                                                          purchases: list[dict]) -> None:
    bought: dict[tuple[str, str], set[float]] = defaultdict(set)
    for e in purchases:
        bought[e["user_id"], e["item_id"]].add(e["ts"] // DAY)
    cycles, gaps = [], []
    for s, k, cycle in zip(market.pair_store, market.pair_sku, market.pair_cycle, strict=True):
        days = sorted(bought.get((market.store_ids[s], market.sku_ids[k]), ()))
        if len(days) >= 3:
            cycles.append(cycle)
            gaps.append(float(np.median(np.diff(days))))
    cycles_a, gaps_a = np.array(cycles, dtype=float), np.array(gaps)
    assert len(cycles_a) > 1000
    assert np.corrcoef(cycles_a, gaps_a)[0, 1] > 0.7
    error = np.median(np.abs(gaps_a - cycles_a) / cycles_a)
    shuffled = np.random.default_rng(0).permutation(cycles_a)
    assert error < 0.2 and error < 0.5 * np.median(np.abs(gaps_a - shuffled) / shuffled)


def daily_share(events: list[dict], cats: dict[str, str], wanted: set[str]) -> dict:
    """(region, day) -> share of purchased units in the wanted categories."""
    units: dict[tuple[str, float], list[float]] = defaultdict(lambda: [0.0, 0.0])
    for e in events:
        if e["record"] == "interaction" and e["type"] == "purchase":
            cell = units[e["region"], e["ts"] // DAY * DAY]
            cell[0] += e["quantity"] * (cats[e["item_id"]] in wanted)
            cell[1] += e["quantity"]
    return {key: a / b for key, (a, b) in units.items()}


def test_hot_days_raise_the_share_of_cold_drinks(market: Market, events: list[dict]) -> None:
    share = daily_share(events, category_of(market), {"beverages", "ice_cream"})
    temps = {(e["region"], e["ts"]): e["temperature"] for e in events
             if e["record"] == "context"}
    keys = list(share)
    t = np.array([temps[k] for k in keys])
    s = np.array([share[k] for k in keys])
    cold, hot = np.quantile(t, [0.25, 0.75])
    assert s[t >= hot].mean() > 1.25 * s[t <= cold].mean()


def test_demand_for_holiday_goods_rises_before_holidays(market: Market,
                                                        events: list[dict]) -> None:
    share = daily_share(events, category_of(market), {"confectionery", "snacks"})
    holidays = sorted({e["ts"] for e in events if e["record"] == "context" and e["holiday"]})
    assert len(holidays) == 3  # 05-01, 05-27 and 07-04 fall in May-July
    before = {h - k * DAY for h in holidays for k in (1, 2, 3)}
    pre = [v for (_, d), v in share.items() if d in before]
    rest = [v for (_, d), v in share.items() if d not in before and d not in holidays]
    assert np.mean(pre) > 1.2 * np.mean(rest)


def test_weekday_rhythm(purchases: list[dict]) -> None:
    weekday = np.array([(int(e["ts"] // DAY) + 3) % 7 for e in purchases])  # 1970-01-01: Thu
    counts = np.bincount(weekday, minlength=7)
    assert counts[6] < 0.2 * counts[:5].mean()  # Sunday
    assert counts[5] < counts[:5].min()  # Saturday


def test_baskets_group_categories(market: Market, purchases: list[dict]) -> None:
    cats = category_of(market)
    baskets: dict[tuple[str, float], list[str]] = defaultdict(list)
    for e in purchases:
        baskets[e["user_id"], e["ts"]].append(cats[e["item_id"]])
    same = total = 0
    for lines in baskets.values():
        _, counts = np.unique(lines, return_counts=True)
        same += int((counts * (counts - 1)).sum()) // 2
        total += len(lines) * (len(lines) - 1) // 2
    _, overall = np.unique([cats[e["item_id"]] for e in purchases], return_counts=True)
    chance = float(((overall / overall.sum()) ** 2).sum())
    assert same / total > 1.25 * chance


def test_stores_of_a_region_share_tastes(market: Market, purchases: list[dict]) -> None:
    cats = category_of(market)
    names = [c.name for c in CATEGORIES]
    mix = np.zeros((market.config.n_stores, len(names)))
    for e in purchases:
        mix[int(e["user_id"][5:]), names.index(cats[e["item_id"]])] += 1
    mix /= mix.sum(1, keepdims=True)
    mix -= mix.mean(0)  # each store's deviation from the average category mix
    mix /= np.linalg.norm(mix, axis=1, keepdims=True)
    cosine = mix @ mix.T
    same = market.store_region[:, None] == market.store_region[None, :]
    off = ~np.eye(len(mix), dtype=bool)
    assert cosine[same & off].mean() > 0.1 > cosine[~same].mean()


def test_dataset_from_the_simulator_equals_the_jsonl_read(tmp_path: Path) -> None:
    path = tmp_path / "m.jsonl"
    write_market_jsonl(path, SMALL)
    read, direct = read_events_jsonl(path), market_dataset(SMALL)
    for name in ("user", "item", "ts", "quantity", "price", "kind", "region"):
        assert np.array_equal(getattr(read.interactions, name),
                              getattr(direct.interactions, name)), name
    assert read.items == direct.items and read.contexts == direct.contexts
    assert len(read.contexts) == SMALL.days * SMALL.n_regions
    assert set(read.interactions.user) <= set(build_market(SMALL).store_ids)


def test_config_is_checked() -> None:
    with pytest.raises(DataError, match="not an ISO date"):
        MarketConfig(start="May 1st")
    with pytest.raises(DataError, match="SKUs"):
        MarketConfig(n_skus=3)

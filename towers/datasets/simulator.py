"""A seeded fast-moving-consumer-goods market that writes the project's own events.

Stores (the users) restock the SKUs of their regular assortment on a per-pair cycle,
add impulse lines from a category they like (several SKUs of one category together),
and browse. Orders follow a weekday rhythm; demand per category follows the season, the
region's weather and the days before holidays. SKUs launch mid-simulation and go out of
stock regionally (context `stock` flags) or everywhere (item `available=false`); nothing
out of stock is bought. Same config, same events.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from towers.data import Dataset
from towers.datasets.conditions import Climate, DayConditions
from towers.datasets.jsonl import events_to_dataset, write_events_jsonl
from towers.datasets.market import CATEGORIES, Market, MarketConfig, build_market

__all__ = ["market_dataset", "simulate_market", "write_market_jsonl"]

logger = logging.getLogger(__name__)

_UNITS = np.array([c.units for c in CATEGORIES])
TOP_UP_DAYS = 2  # a restocked category also takes its SKUs due within this many days


def simulate_market(config: MarketConfig, *, market: Market | None = None) -> list[dict[str, Any]]:
    """All events in time order: item records, a context per region per day, interactions."""
    market = market or build_market(config)
    assert market.config == config, "the market was built from another config"
    sim = _Simulation(market)
    for day in range(config.days):
        sim.step(day)
    logger.info("simulated %s days, %s stores, %s SKUs: %s events", config.days,
                config.n_stores, config.n_skus, len(sim.events))
    return sim.events


def write_market_jsonl(path: str | Path, config: MarketConfig) -> int:
    """Simulate and write the events as JSON lines; returns the number of events."""
    return write_events_jsonl(path, simulate_market(config))


def market_dataset(config: MarketConfig) -> Dataset:
    """The simulated events as a Dataset (what reading the written JSONL gives)."""
    return events_to_dataset(simulate_market(config), name="market")


class _Simulation:
    def __init__(self, market: Market) -> None:
        cfg = market.config
        self.m, self.cfg = market, cfg
        self.rng = np.random.default_rng([cfg.seed, 1])
        self.climate = Climate(market, np.random.default_rng([cfg.seed, 2]))
        cycle = market.pair_cycle
        self.next_due = market.sku_launch[market.pair_sku] + self.rng.integers(0, cycle)
        self.region_back = np.zeros((len(market.regions), cfg.n_skus), dtype=int)
        self.national_back = np.zeros(cfg.n_skus, dtype=int)
        self.weights = np.stack([market.sku_weights(s) for s in range(cfg.n_stores)])
        # (store, category) of each pair
        self.pair_group = market.pair_store * len(CATEGORIES) + market.sku_category[market.pair_sku]
        self.cat_skus = [np.flatnonzero(market.sku_category == c) for c in range(len(CATEGORIES))]
        self.events: list[dict[str, Any]] = []

    def _id(self) -> str:
        return f"m{self.cfg.seed}-{len(self.events):08d}"

    def step(self, day: int) -> None:
        cond = self.climate.day(day)
        self._items(day, cond.ts)
        self._contexts(day, cond)
        launched = self.m.sku_launch <= day
        avail = launched[None, :] & (self.region_back <= day) & (self.national_back <= day)[None, :]
        self._interactions(cond, avail, launched)

    def _items(self, day: int, ts: float) -> None:
        m, rng = self.m, self.rng
        launched = m.sku_launch <= day
        start = launched & (self.national_back <= day) & (rng.random(len(launched))
                                                         < self.cfg.outage_rate)
        start &= day > 0
        self.national_back[start] = day + rng.integers(2, 6, start.sum())
        for k in np.flatnonzero(m.sku_launch == day):
            self._item(int(k), ts, True)
        for k in np.flatnonzero(start):
            self._item(int(k), ts, False)
        for k in np.flatnonzero((self.national_back == day) & (day > 0)):
            self._item(int(k), ts, True)

    def _item(self, k: int, ts: float, available: bool) -> None:
        m = self.m
        self.events.append({
            "record": "item", "event_id": self._id(), "ts": ts, "item_id": m.sku_ids[k],
            "category": CATEGORIES[m.sku_category[k]].name, "price": float(m.sku_price[k]),
            "available": available})

    def _contexts(self, day: int, cond: DayConditions) -> None:
        launched = self.m.sku_launch <= day
        lo, hi = self.cfg.stockout_days
        back = self.region_back == day
        start = (launched[None, :] & (self.region_back <= day)
                 & (self.rng.random(self.region_back.shape) < self.cfg.stockout_rate))
        self.region_back[start] = day + self.rng.integers(lo, hi + 1, start.sum())
        for r, region in enumerate(self.m.regions):
            event = {"record": "context", "event_id": self._id(), "ts": cond.ts,
                     "region": region, "weather": cond.weather[r],
                     "temperature": float(cond.temperature[r]), "holiday": cond.holiday}
            changes = np.flatnonzero(start[r] | (back[r] & (day > 0)))
            if len(changes):
                event["stock"] = {self.m.sku_ids[k]: not start[r, k] for k in changes}
            self.events.append(event)

    def _interactions(self, cond: DayConditions, avail: np.ndarray,
                      launched: np.ndarray) -> None:
        m, rng, cfg = self.m, self.rng, self.cfg
        chance = cfg.weekday_orders[cond.weekday] * m.store_activity
        ordering = rng.random(cfg.n_stores) < chance * (0.3 if cond.holiday else 1.0)
        order_ts = cond.ts + m.store_hour * 3600 + rng.integers(0, 3600, cfg.n_stores)
        store, sku, qty = self._restock(cond, avail, ordering)
        bought = np.zeros((cfg.n_stores, cfg.n_skus), dtype=bool)
        bought[store, sku] = True
        orderers = np.flatnonzero(ordering)
        extra = [self._impulse(int(s), cond, avail, bought[s]) for s in orderers]
        store = np.concatenate([store, *(e[0] for e in extra)]).astype(int)
        sku = np.concatenate([sku, *(e[1] for e in extra)]).astype(int)
        qty = np.concatenate([qty, *(e[2] for e in extra)])
        lines = _Lines(store, sku, qty, order_ts[store].astype(float), "purchase")
        lines = lines.with_browsing(rng, cfg.browse_rate)
        self._emit(lines.plus(self._browse(orderers, launched, order_ts)))

    def _restock(self, cond: DayConditions, avail: np.ndarray,
                 ordering: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Due pairs of ordering stores, in stock: bought with a chance set by demand.

        A store restocking a category also tops up that category's SKUs due in the next
        few days, so SKUs of one category tend to share baskets.
        """
        m, rng, day = self.m, self.rng, cond.day
        due = (self.next_due <= day) & ordering[m.pair_store]
        restocked = np.zeros(m.config.n_stores * len(CATEGORIES), dtype=bool)
        restocked[self.pair_group[due]] = True
        soon = (self.next_due <= day + TOP_UP_DAYS) & restocked[self.pair_group]
        idx = np.flatnonzero(due | soon)
        region, sku = m.store_region[m.pair_store[idx]], m.pair_sku[idx]
        idx = idx[avail[region, sku]]  # out of stock: stays due until it is back
        demand = cond.demand[m.store_region[m.pair_store[idx]], m.sku_category[m.pair_sku[idx]]]
        buy = rng.random(len(idx)) < np.minimum(1.0, 0.85 * demand)
        later = idx[~buy]
        self.next_due[later] = day + rng.integers(1, 4, len(later))
        idx, demand = idx[buy], demand[buy]
        qty = np.maximum(1, rng.poisson(m.pair_units[idx] * demand))
        spread = 1.0 + self.cfg.cycle_jitter * rng.standard_normal(len(idx))
        self.next_due[idx] = day + np.maximum(1, np.rint(m.pair_cycle[idx] * spread)).astype(int)
        return m.pair_store[idx], m.pair_sku[idx], qty.astype(float)

    def _impulse(self, store: int, cond: DayConditions, avail: np.ndarray,
                 bought: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """A few groups of lines, each from one category the store likes (demand-weighted)."""
        m, rng = self.m, self.rng
        region = m.store_region[store]
        demand = cond.demand[region]
        taste = m.store_taste[store] * demand**2
        skus: list[int] = []
        qty: list[float] = []
        groups = rng.poisson(self.cfg.impulse_groups)
        for cat in rng.choice(len(taste), groups, p=taste / taste.sum()):
            pool = self.cat_skus[cat]
            w = self.weights[store, pool] * (avail[region, pool] & ~bought[pool])
            n = min(1 + rng.poisson(0.7), int((w > 0).sum()))
            if n == 0:
                continue
            for k in rng.choice(pool, n, replace=False, p=w / w.sum()):
                bought[k] = True
                skus.append(int(k))
                qty.append(float(max(1, rng.poisson(0.5 * _UNITS[cat] * m.store_size[store]
                                                    * demand[cat]))))
        return np.full(len(skus), store), np.array(skus, dtype=int), np.array(qty)

    def _browse(self, stores: np.ndarray, launched: np.ndarray, order_ts: np.ndarray) -> _Lines:
        """Views, before the order, of SKUs the store likes but does not buy."""
        rng = self.rng
        counts = rng.poisson(self.cfg.browse_only, len(stores))
        skus = [rng.choice(self.cfg.n_skus, n, p=w / w.sum()).tolist()
                for n, w in zip(counts, self.weights[stores] * launched, strict=True)]
        store = np.repeat(stores, counts)
        ts = order_ts[store] - rng.integers(300, 7200, len(store))
        return _Lines(store, np.array([k for ks in skus for k in ks], dtype=int),
                      np.ones(len(store)), ts.astype(float), "view")

    def _emit(self, lines: _Lines) -> None:
        m, out = self.m, self.events
        for i in np.argsort(lines.ts, kind="stable"):
            store = int(lines.store[i])
            k = int(lines.sku[i])
            out.append({
                "record": "interaction", "event_id": self._id(), "user_id": m.store_ids[store],
                "item_id": m.sku_ids[k], "type": lines.kind[i], "quantity": float(lines.qty[i]),
                "price": float(m.sku_price[k]), "ts": float(lines.ts[i]),
                "region": m.regions[m.store_region[store]]})


class _Lines:
    """Interaction rows of one day as parallel arrays."""

    def __init__(self, store: np.ndarray, sku: np.ndarray, qty: np.ndarray, ts: np.ndarray,
                 kind: str | np.ndarray) -> None:
        self.store, self.sku, self.qty, self.ts = store, sku, qty, ts
        self.kind = np.full(len(store), kind, dtype=object) if isinstance(kind, str) else kind

    def plus(self, other: _Lines) -> _Lines:
        return _Lines(*(np.concatenate([getattr(self, a), getattr(other, a)])
                        for a in ("store", "sku", "qty", "ts", "kind")))

    def with_browsing(self, rng: np.random.Generator, rate: float) -> _Lines:
        """Some purchases are preceded by a view minutes earlier, half of those by a click."""
        viewed = np.flatnonzero(rng.random(len(self.store)) < rate)
        clicked = viewed[rng.random(len(viewed)) < 0.5]
        views = _Lines(self.store[viewed], self.sku[viewed], np.ones(len(viewed)),
                       self.ts[viewed] - rng.integers(300, 5400, len(viewed)), "view")
        clicks = _Lines(self.store[clicked], self.sku[clicked], np.ones(len(clicked)),
                        self.ts[clicked] - rng.integers(60, 240, len(clicked)), "click")
        return self.plus(views).plus(clicks)


"""The world of the market simulator: configuration, categories, SKUs, stores, regions.

A `Market` is built from the configuration alone (seeded); the simulator then plays it
day by day. Tests read the `Market` as ground truth (the repurchase cycle of each pair).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import numpy as np

from towers.errors import DataError

__all__ = ["CATEGORIES", "Category", "Market", "MarketConfig", "build_market"]


@dataclass(frozen=True)
class MarketConfig:
    seed: int = 0  # same seed and config -> identical events (byte-identical JSONL)
    n_stores: int = 200  # the users: shops that restock from the catalogue
    n_skus: int = 300  # catalogue size, SKUs launched mid-simulation included
    n_regions: int = 4  # each has its own climate and daily weather
    start: str = "2024-05-01"  # first simulated day, ISO date (UTC)
    days: int = 90  # length of the simulation in days
    skus_per_store: tuple[int, int] = (20, 60)  # size range of a store's regular assortment
    cycle_days: tuple[int, int] = (5, 20)  # range of the repurchase cycle of a (store, SKU)
    cycle_jitter: float = 0.12  # relative spread of one gap around the pair's cycle
    impulse_groups: float = 0.8  # mean same-category groups of extra lines per order
    new_sku_share: float = 0.05  # share of SKUs launched during the simulation
    stockout_rate: float = 0.002  # chance per (region, SKU, day) that a stock-out starts
    stockout_days: tuple[int, int] = (2, 7)  # duration range of a regional stock-out
    outage_rate: float = 0.0002  # chance per (SKU, day) of a nationwide outage (item record)
    browse_rate: float = 0.3  # chance a purchased line is preceded by a view (half: a click)
    browse_only: float = 0.8  # mean views per order of SKUs that are not bought
    # Mon..Sun: chance that a store places an order that day
    weekday_orders: tuple[float, ...] = (0.75, 0.55, 0.6, 0.7, 0.8, 0.4, 0.08)
    # fixed holiday dates (MM-DD); demand for some categories rises in the 3 days before
    holidays: tuple[str, ...] = ("01-01", "02-14", "05-01", "05-27", "07-04", "09-02",
                                 "10-31", "11-28", "12-24", "12-25", "12-31")

    def __post_init__(self) -> None:
        if self.n_stores < 1 or self.n_skus < len(CATEGORIES):
            raise DataError(f"market: at least 1 store and {len(CATEGORIES)} SKUs (one per "
                            "category)")
        if self.days < 1 or not 1 <= self.n_regions <= 26:
            raise DataError("market: at least 1 day, and 1 to 26 regions")
        if len(self.weekday_orders) != 7:
            raise DataError("market: one order chance per weekday (7)")
        try:
            date.fromisoformat(self.start)
        except ValueError:
            raise DataError(f"market: start {self.start!r} is not an ISO date") from None


@dataclass(frozen=True)
class Category:
    name: str
    price: tuple[float, float]  # unit price range (budget .. premium)
    units: float  # mean units per order line of a medium store
    cycle: float  # typical repurchase cycle in days
    season: float  # log-demand change at midsummer (negative: winter goods)
    heat: float  # log-demand change per 10 degC above 15 degC
    wet: float  # log-demand change on a day of rain or snow
    holiday: float  # log-demand change in the 3 days before a holiday


CATEGORIES = (
    Category("beverages", (0.6, 3.5), 12, 7, 0.2, 0.5, -0.1, 0.4),
    Category("ice_cream", (1.5, 6.0), 6, 9, 0.4, 0.9, -0.3, 0.3),
    Category("dairy", (0.5, 4.0), 10, 5, 0.0, 0.0, 0.0, 0.1),
    Category("snacks", (0.8, 4.0), 8, 8, 0.0, 0.05, 0.1, 0.6),
    Category("confectionery", (0.5, 5.0), 6, 10, -0.1, -0.1, 0.1, 0.8),
    Category("bakery", (0.8, 4.0), 10, 5, 0.0, 0.0, 0.0, 0.3),
    Category("soups", (1.0, 4.0), 6, 12, -0.4, -0.6, 0.3, 0.0),
    Category("household", (1.5, 12.0), 4, 18, 0.0, 0.0, 0.0, 0.0),
    Category("personal_care", (1.5, 15.0), 4, 16, 0.0, 0.1, 0.0, 0.0),
    Category("frozen", (2.0, 10.0), 5, 11, 0.0, 0.1, 0.2, 0.2),
)
BANDS = ("budget", "standard", "premium")
SIZES = np.array([1.0, 2.0, 4.0])  # small, medium, large store: units multiplier


@dataclass
class Market:
    """Everything fixed for the whole simulation. Arrays are indexed by SKU, store or pair."""

    config: MarketConfig
    regions: list[str]
    region_climate: np.ndarray  # (R, 2) mean temperature and seasonal amplitude, degC
    sku_ids: list[str]
    sku_category: np.ndarray  # (K,) int: index into CATEGORIES
    sku_band: np.ndarray  # (K,) int: index into BANDS
    sku_price: np.ndarray  # (K,) float: unit price
    sku_pop: np.ndarray  # (K,) float: popularity within its category
    sku_launch: np.ndarray  # (K,) int: day the SKU enters the catalogue (0 = from the start)
    store_ids: list[str]
    store_region: np.ndarray  # (S,) int
    store_size: np.ndarray  # (S,) float: units multiplier
    store_taste: np.ndarray  # (S, C) category preference (rows sum to 1)
    store_band: np.ndarray  # (S, 3) price-band affinity
    store_hour: np.ndarray  # (S,) int: usual hour of the day the store orders
    store_activity: np.ndarray  # (S,) float: multiplies the weekday order chance
    pair_store: np.ndarray  # (P,) int: the regular assortment as (store, SKU) pairs
    pair_sku: np.ndarray  # (P,) int
    pair_cycle: np.ndarray  # (P,) int: repurchase cycle, days
    pair_units: np.ndarray  # (P,) float: mean units per order

    def sku_weights(self, store: int) -> np.ndarray:
        """How much `store` likes each SKU: taste for its category x popularity x price band."""
        return (self.store_taste[store, self.sku_category] * self.sku_pop
                * self.store_band[store, self.sku_band])


def build_market(config: MarketConfig) -> Market:
    """Draw the catalogue, the stores and their assortments from `config.seed`."""
    rng = np.random.default_rng([config.seed, 0])
    regions = _region_names(config.n_regions)
    climate = np.stack([rng.uniform(8, 18, len(regions)), rng.uniform(6, 12, len(regions))], 1)
    skus = _catalogue(config, rng)
    stores = _stores(config, rng)
    market = Market(config=config, regions=regions, region_climate=climate, **skus, **stores,
                    pair_store=np.zeros(0, int), pair_sku=np.zeros(0, int),
                    pair_cycle=np.zeros(0, int), pair_units=np.zeros(0))
    _assortments(market, rng)
    return market


def _region_names(n: int) -> list[str]:
    names = ("north", "south", "east", "west", "central", "coast")
    return list(names[:n]) if n <= len(names) else [f"region_{chr(97 + i)}" for i in range(n)]


def _catalogue(config: MarketConfig, rng: np.random.Generator) -> dict:
    k = config.n_skus
    category = rng.permutation(np.r_[np.arange(len(CATEGORIES)),  # every category has one
                                     rng.integers(0, len(CATEGORIES), k - len(CATEGORIES))])
    band = rng.integers(0, len(BANDS), k)
    lo = np.array([c.price[0] for c in CATEGORIES])[category]
    hi = np.array([c.price[1] for c in CATEGORIES])[category]
    position = (band + rng.uniform(0, 1, k)) / len(BANDS)
    price = np.round(lo * (hi / lo) ** position, 2)
    launch = np.zeros(k, dtype=int)
    new = rng.random(k) < config.new_sku_share
    launch[new] = rng.integers(int(0.15 * config.days) + 1, max(int(0.75 * config.days), 2),
                               new.sum())
    return {"sku_ids": [f"sku{i:04d}" for i in range(k)], "sku_category": category,
            "sku_band": band, "sku_price": price, "sku_pop": rng.pareto(1.5, k) + 0.2,
            "sku_launch": launch}


def _stores(config: MarketConfig, rng: np.random.Generator) -> dict:
    s, n_cat = config.n_stores, len(CATEGORIES)
    region = rng.integers(0, config.n_regions, s)
    # stores of one region share a taste: category preference drawn around the region's
    region_taste = rng.dirichlet(np.full(n_cat, 2.0), config.n_regions)
    taste = np.stack([rng.dirichlet(20.0 * region_taste[r] + 0.3) for r in region])
    return {"store_ids": [f"store{i:04d}" for i in range(s)], "store_region": region,
            "store_size": SIZES[rng.choice(3, s, p=[0.5, 0.35, 0.15])],
            "store_taste": taste, "store_band": rng.dirichlet(np.ones(len(BANDS)), s),
            "store_hour": rng.integers(6, 19, s),
            "store_activity": rng.uniform(0.7, 1.0, s)}


def _assortments(market: Market, rng: np.random.Generator) -> None:
    config = market.config
    lo, hi = config.skus_per_store
    stores, skus = [], []
    for store in range(config.n_stores):
        weights = market.sku_weights(store)
        size = min(int(rng.integers(lo, hi + 1)), len(weights))
        chosen = np.sort(rng.choice(len(weights), size, replace=False, p=weights / weights.sum()))
        stores.append(np.full(size, store))
        skus.append(chosen)
    market.pair_store, market.pair_sku = np.concatenate(stores), np.concatenate(skus)
    n = len(market.pair_sku)
    base = np.array([c.cycle for c in CATEGORIES])[market.sku_category[market.pair_sku]]
    cycle = np.rint(base * rng.lognormal(0.0, 0.3, n))
    market.pair_cycle = np.clip(cycle, *config.cycle_days).astype(int)
    units = np.array([c.units for c in CATEGORIES])[market.sku_category[market.pair_sku]]
    market.pair_units = units * market.store_size[market.pair_store] * rng.lognormal(0, 0.3, n)

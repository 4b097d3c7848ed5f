"""Time-aware repurchase: how likely each item a user bought is in their next basket.

Retail customers rebuy, and *when* they rebuy depends on the item and on how often and how
long ago they bought it. Instead of one recency half-life, the score of a bought item is
a rate learned from the log: the share of "next baskets" that contained an item in the
same situation, where the situation is a cell of

- how many of the user's baskets so far held the item (1, 2, 3, 4-5, 6-9, 10+ by default),
- the days since the last of them at the time the list is made (0-1, 1-2, ... 180+),
- how many baskets the user has made in all (1-2, 3-9, 10+ by default): an item in 2 of 2
  baskets is a habit, in 2 of 20 an occasional buy;
- optionally, the time since the last purchase over the user's own mean interval for the
  item (a personal cycle), for items bought twice or more.

The buckets of each are chosen on the valid window (`streams.evaluation.tuning`). The fit
reads each transition through the window a worker reads (the user's last 200 lines).

Every basket transition of the fitting log is one observation for each item the user had
bought so far (a hit when the next basket holds it). Rates per cell are pooled per
category and smoothed towards the global curve; each item then gets a factor (observed
over expected hits, smoothed towards 1) for how much more or less than its category it
is rebought. A basket is one user's lines with one timestamp.

The same fit gives the explore side a comparable scale: the rate at which an item the user
never bought, at popularity rank r, is in their next basket (rank buckets, per bucket of
the user's basket count and novelty: newcomers and browsers explore more). With both on
one scale, a merge by raw score (`MergeConfig(method="raw")`) lets a popular new item
outrank a stale one-off purchase, and the other way round, without a hand-set weight.

Scores are exact to the second: they are computed at read time from the user's history.
"""

from __future__ import annotations

import itertools
import logging
import math
from collections.abc import Container, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from streams.errors import SettingsError
from streams.recall.channels import Candidates, Channel, first_k
from streams.recall.repurchase_fit import Parsed, explore_rates, parse_lines, repeat_observations
from towers.data import Dataset, Interactions
from towers.sequence import DAY, UserHistory

logger = logging.getLogger(__name__)

__all__ = ["ExploreChannel", "Parsed", "RepurchaseChannel", "RepurchaseConfig",
           "RepurchaseModel", "parse"]


@dataclass(frozen=True)
class RepurchaseConfig:
    counts: tuple[int, ...] = (1, 2, 3, 4, 6, 10)  # lower edges: baskets that held the item
    gap_days: tuple[float, ...] = (0, 1, 2, 4, 7, 14, 21, 30, 45, 60, 90, 180)  # lower edges
    baskets: tuple[int, ...] = (1, 3, 10)  # lower edges: the user's baskets so far
    # lower edges of (time since the last purchase) / (the user's mean interval between
    # purchases of the item), for items bought twice or more; (0,): no such dimension
    cycle: tuple[float, ...] = (0.0,)
    # lower edges of the user's novelty (distinct items / item-basket pairs: 1 = never
    # rebuys) for the explore rates; (0,): no such dimension
    novelty: tuple[float, ...] = (0.0,)
    ranks: tuple[int, ...] = (0, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000)  # explore
    category_prior: float = 50.0  # pseudo-observations pulling a category to the global curve
    item_prior: float = 20.0  # pseudo expected hits pulling an item's factor to 1
    popularity_half_life_s: float = DAY  # the popularity the explore rates are measured on
    window: int = 200  # lines of a user's history the fit reads per transition (a worker
    # reads its `history_len` newest lines: the same 200 by default)

    def __post_init__(self) -> None:
        for name in ("counts", "gap_days", "baskets", "ranks", "cycle", "novelty"):
            edges = getattr(self, name)
            first = 0 if name in ("gap_days", "ranks", "cycle", "novelty") else 1
            if not edges or edges[0] != first or \
                    any(b <= a for a, b in itertools.pairwise(edges)):
                raise SettingsError(f"repurchase: {name} must rise strictly from {first}, "
                                    f"got {edges}")
        if self.window < 1:
            raise SettingsError("repurchase: window must be at least 1 line")
        if self.category_prior < 0 or self.item_prior < 0 or self.popularity_half_life_s <= 0:
            raise SettingsError("repurchase: priors must be >= 0 and the half-life positive")

    @property
    def n_cycle(self) -> int:
        """Cycle buckets, plus one for items bought once (no interval yet)."""
        return 1 if len(self.cycle) == 1 else len(self.cycle) + 1

    @property
    def n_cells(self) -> int:
        return len(self.baskets) * len(self.counts) * len(self.gap_days) * self.n_cycle

    @property
    def explore_shape(self) -> tuple[int, int]:
        return len(self.baskets) * len(self.novelty), len(self.ranks)


def parse(history: UserHistory) -> Parsed:
    """One pass over a history (oldest first); a basket line repeated is one purchase."""
    return parse_lines(history.items, history.ts)


class RepurchaseModel:
    """Fitted rates: global and per-category curves over cells, item factors, explore."""

    def __init__(self, config: RepurchaseConfig, *, global_rate: np.ndarray,
                 category_rate: Mapping[str, np.ndarray], item_factor: Mapping[str, float],
                 item_category: Mapping[str, str], new_rate: np.ndarray) -> None:
        self.config = config
        self.global_rate = global_rate
        self.category_rate = dict(category_rate)
        self.item_factor = dict(item_factor)
        self.item_category = dict(item_category)
        self.new_rate = new_rate
        self._counts = np.asarray(config.counts, dtype=np.float64)
        self._gaps = np.asarray(config.gap_days, dtype=np.float64) * DAY
        self._ranks = np.asarray(config.ranks, dtype=np.int64)
        self._baskets = np.asarray(config.baskets, dtype=np.float64)
        self._cycle = np.asarray(config.cycle, dtype=np.float64)
        self._novelty = np.asarray(config.novelty, dtype=np.float64)
        # one matrix of curves (row 0: global) and, per item, its row and factor
        names = list(self.category_rate)
        self._curves = np.vstack([global_rate, *(self.category_rate[c] for c in names)]) \
            if names else global_rate[None, :]
        row_of = {c: r + 1 for r, c in enumerate(names)}
        items = set(self.item_factor) | set(self.item_category)
        self._lookup = {i: (row_of.get(self.item_category.get(i, ""), 0),
                            self.item_factor.get(i, 1.0)) for i in items}
        self._parsed: tuple[Sequence[UserHistory | None], list[Any],
                            list[Parsed | None]] | None = None

    def basket_bucket(self, baskets: np.ndarray | float) -> np.ndarray:
        return np.searchsorted(self._baskets, baskets, side="right") - 1

    def cells(self, counts: np.ndarray, gaps_s: np.ndarray, baskets: np.ndarray | float,
              spans_s: np.ndarray) -> np.ndarray:
        """Cell index of (baskets holding the item, seconds since the last of them, the
        user's baskets in all, and the time since the last over the mean interval between
        purchases; `spans_s` = last minus first purchase time)."""
        c = np.searchsorted(self._counts, counts, side="right") - 1
        g = np.searchsorted(self._gaps, np.maximum(gaps_s, 0.0), side="right") - 1
        u = self.basket_bucket(baskets)
        cell = (u * len(self._counts) + c) * len(self._gaps) + g
        n = self.config.n_cycle
        if n == 1:
            return cell
        again = (counts > 1) & (spans_s > 0)
        ratio = np.where(again, gaps_s * (counts - 1) / np.where(again, spans_s, 1.0), 0.0)
        y = np.where(again, np.searchsorted(self._cycle, np.maximum(ratio, 0.0),
                                            side="right") - 1, n - 1)
        return np.asarray(cell * n + y)

    def rates(self, items: Sequence[str], cells: np.ndarray) -> np.ndarray:
        """Next-basket rate of each (item, cell), at most 1."""
        known = self._lookup
        rows, factors = zip(*(known.get(i, (0, 1.0)) for i in items), strict=True) \
            if len(items) else ((), ())
        out = self._curves[np.asarray(rows, dtype=np.int64), cells] * np.asarray(factors)
        return np.minimum(out, 1.0)

    def explore_rate(self, ranks: np.ndarray, baskets: float = 1.0, novelty: float = 1.0
                     ) -> np.ndarray:
        """Next-basket rate of a never-bought item at each popularity rank (from 0), for a
        user with `baskets` baskets so far and that novelty (distinct items / item-basket
        pairs)."""
        nov = int(np.searchsorted(self._novelty, novelty, side="right")) - 1
        row = self.new_rate[int(self.basket_bucket(baskets)) * len(self._novelty) + nov]
        return row[np.searchsorted(self._ranks, ranks, side="right") - 1]

    def score(self, history: UserHistory, now: float) -> Candidates:
        """The user's bought items with their next-basket rates, best first."""
        return self.score_parsed(parse(history), now)

    def score_parsed(self, parsed: Parsed, now: float) -> Candidates:
        ids, scores = self.ranked(parsed, now)
        return list(zip(ids.tolist(), scores.tolist(), strict=True))

    def ranked(self, parsed: Parsed, now: float) -> tuple[np.ndarray, np.ndarray]:
        """(item ids, rates) of the user's bought items, best first."""
        cells = self.cells(parsed.counts, now - parsed.last, parsed.baskets,
                           parsed.last - parsed.first)
        scores = self.rates(parsed.items, cells)
        order = np.argsort(-scores, kind="stable")  # ties: the order items were first bought
        return np.array(parsed.items, dtype=object)[order], scores[order]

    def parsed(self, histories: Sequence[UserHistory | None]) -> list[Parsed | None]:
        """`parse` of each history, shared by the channels a batch asks in turn: the same
        list object within one recall call, its histories unchanged (the memo keeps the
        list alive, so its id is not reused, and checks each history's newest line)."""
        stamp = [(len(h), h.ts[-1], h.items[-1]) if h is not None and len(h) else None
                 for h in histories]
        memo = self._parsed
        if memo is not None and memo[0] is histories and memo[1] == stamp:
            return memo[2]
        out = [parse(h) if h is not None and len(h) else None for h in histories]
        self._parsed = (histories, stamp, out)
        return out

    # fitting -----------------------------------------------------------------------------

    @classmethod
    def fit(cls, log: Interactions, categories: Mapping[str, str],
            config: RepurchaseConfig | None = None) -> RepurchaseModel:
        """Rates from every basket transition of `log` (the fitting window only)."""
        config = config or RepurchaseConfig()
        observations = cls.observe(log, config)
        return cls.pooled(observations, categories, config,
                          new_rate=cls.explore(log, config))

    @classmethod
    def observe(cls, log: Interactions, config: RepurchaseConfig
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(item, cell, hit) repeat observations of `log` (depend on the cells only)."""
        probe = cls(config, global_rate=np.zeros(config.n_cells), category_rate={},
                    item_factor={}, item_category={}, new_rate=np.zeros(config.explore_shape))
        return repeat_observations(log, probe.cells, window=config.window)

    @staticmethod
    def explore(log: Interactions, config: RepurchaseConfig) -> np.ndarray:
        """Explore rate per rank bucket of `log` (depends on ranks and the half-life only)."""
        return explore_rates(log, config.baskets, config.ranks, config.popularity_half_life_s,
                             novelty_edges=config.novelty)

    @classmethod
    def pooled(cls, observations: tuple[np.ndarray, np.ndarray, np.ndarray],
               categories: Mapping[str, str], config: RepurchaseConfig, *,
               new_rate: np.ndarray) -> RepurchaseModel:
        """The model from observations, with `config`'s priors (cheap: a grid reuses them)."""
        items, cells, hits = observations
        model = cls(config, **_pooled(items, cells, hits, categories, config),
                    new_rate=new_rate)
        logger.info("repurchase: %s observations, %s categories, %s items", len(items),
                    len(model.category_rate), len(model.item_factor))
        return model

    # storage -----------------------------------------------------------------------------

    def to_json(self) -> dict[str, Any]:
        return {"config": asdict(self.config), "global_rate": self.global_rate.tolist(),
                # a category's curve differs from the global one only where it was
                # observed: those cells alone are stored
                "category_rate": {c: {"cells": (at := np.flatnonzero(r != self.global_rate)
                                                ).tolist(), "rates": r[at].tolist()}
                                  for c, r in self.category_rate.items()},
                "item_factor": {i: round(f, 5) for i, f in self.item_factor.items()},
                "item_category": self.item_category,
                "new_rate": self.new_rate.tolist()}

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> RepurchaseModel:
        """Rebuild a stored model; a wrong shape or value raises ValueError naming it."""
        try:
            raw: dict[str, Any] = {k: tuple(v) if isinstance(v, list) else v
                                   for k, v in dict(doc["config"]).items()}
            config = RepurchaseConfig(**raw)
            global_rate = _rates(doc["global_rate"], config.n_cells, "global_rate")
            category_rate = {str(c): _curve(global_rate, part, f"category_rate[{c}]")
                             for c, part in dict(doc["category_rate"]).items()}
            item_factor = {str(i): float(f) for i, f in dict(doc["item_factor"]).items()}
            item_category = {str(i): str(c) for i, c in dict(doc["item_category"]).items()}
            new_rate = _rates(doc["new_rate"], config.explore_shape, "new_rate")
        except (KeyError, TypeError, SettingsError) as exc:
            raise ValueError(f"repurchase model: {exc!r}") from exc
        if not all(math.isfinite(f) and f >= 0 for f in item_factor.values()):
            raise ValueError("repurchase model: item_factor must be finite and >= 0")
        return cls(config, global_rate=global_rate, category_rate=category_rate,
                   item_factor=item_factor, item_category=item_category, new_rate=new_rate)


def _curve(global_rate: np.ndarray, part: Mapping[str, Any], name: str) -> np.ndarray:
    """The global curve with a category's observed cells written over it."""
    cells = np.asarray(part["cells"], dtype=np.int64)
    rates = _rates(part["rates"], len(cells), name)
    if len(cells) and (cells.min() < 0 or cells.max() >= len(global_rate)):
        raise ValueError(f"repurchase model: {name} names cells outside 0..{len(global_rate) - 1}")
    out = global_rate.copy()
    out[cells] = rates
    return out


def _rates(values: Any, shape: int | tuple[int, ...], name: str) -> np.ndarray:
    want = (shape,) if isinstance(shape, int) else shape
    out = np.asarray(values, dtype=np.float64)
    if out.shape != want or not np.all(np.isfinite(out)) or np.any(out < 0):
        raise ValueError(f"repurchase model: {name} must be {want} finite rates >= 0")
    return out


def _pooled(items: np.ndarray, cells: np.ndarray, hits: np.ndarray,
            categories: Mapping[str, str], config: RepurchaseConfig) -> dict[str, Any]:
    """Global curve, per-category curves shrunk towards it, per-item factors."""
    n = config.n_cells
    g_hit, g_obs = np.bincount(cells, hits, n), np.bincount(cells, None, n)
    overall = g_hit.sum() / max(g_obs.sum(), 1.0)
    global_rate = (g_hit + 20.0 * overall) / (g_obs + 20.0)  # empty cells: the overall rate
    cats = np.array([categories.get(i, "") for i in items.tolist()], dtype=object)
    names, cat_code = np.unique(cats.astype(str), return_inverse=True)
    key = cat_code * n + cells
    c_hit = np.bincount(key, hits, len(names) * n).reshape(len(names), n)
    c_obs = np.bincount(key, None, len(names) * n).reshape(len(names), n)
    m = config.category_prior
    c_rate = (c_hit + m * global_rate) / np.maximum(c_obs + m, 1e-12)
    c_rate = np.where(c_obs > 0, c_rate, global_rate)  # unobserved: exactly the global curve
    uniq, item_code = np.unique(items.astype(str), return_inverse=True)
    expected = np.bincount(item_code, c_rate[cat_code, cells], len(uniq))
    observed = np.bincount(item_code, hits, len(uniq))
    factor = (observed + config.item_prior) / np.maximum(expected + config.item_prior, 1e-12)
    return {"global_rate": global_rate,
            "category_rate": {str(c): c_rate[j] for j, c in enumerate(names.tolist()) if c},
            "item_factor": dict(zip(uniq.tolist(), factor.tolist(), strict=True)),
            "item_category": {i: c for i in uniq.tolist() if (c := categories.get(i, ""))}}


class RepurchaseChannel:
    """The user's bought items scored by `RepurchaseModel` (no state of its own)."""

    def __init__(self, model: RepurchaseModel, *, name: str = "repurchase") -> None:
        self.model = model
        self.name = name

    def fit(self, dataset: Dataset, history: Interactions) -> None:
        return None

    def observe(self, events: Interactions) -> None:
        return None

    def candidates(
        self, histories: Sequence[UserHistory | None], *, k: int, now: float,
        exclude: Sequence[Container[str]] | None = None,
    ) -> list[Candidates]:
        out: list[Candidates] = []
        for j, parsed in enumerate(self.model.parsed(histories)):
            if parsed is None:
                out.append([])
                continue
            ids, scores = self.model.ranked(parsed, now)
            out.append(first_k(ids, scores, k, exclude[j] if exclude is not None else None))
        return out


class ExploreChannel:
    """Popular items the user never bought, scored by the model's explore rates, so they
    sit on the repurchase channel's scale. Reads its ranking from `popularity` (the
    in-process counts or a worker's board), which it does not own or update."""

    def __init__(self, popularity: Channel, model: RepurchaseModel, *,
                 name: str = "explore") -> None:
        self.popularity = popularity
        self.model = model
        self.name = name

    def fit(self, dataset: Dataset, history: Interactions) -> None:
        return None  # the popularity channel is fitted by whoever owns it

    def observe(self, events: Interactions) -> None:
        return None

    def candidates(
        self, histories: Sequence[UserHistory | None], *, k: int, now: float,
        exclude: Sequence[Container[str]] | None = None,
    ) -> list[Candidates]:
        parsed = self.model.parsed(histories)
        owned = [set(p.items) if p is not None else set() for p in parsed]
        # ranks count every item, owned or blocked, as the fit counted them: one read of
        # the ranking for the whole batch, deep enough for the user who owns the most
        depth = k + max((len(o) for o in owned), default=0)
        ranked = self.popularity.candidates(histories, k=depth, now=now)
        out: list[Candidates] = []
        for j, p in enumerate(parsed):
            excl = exclude[j] if exclude is not None else None
            drop = owned[j] | set(excl) if isinstance(excl, set) else owned[j]
            block = excl if excl and not isinstance(excl, set) else None  # tested once
            keep = [(r, item) for r, (item, _) in enumerate(ranked[j])
                    if item not in drop and (block is None or item not in block)][:k]
            rates = self.model.explore_rate(
                np.fromiter((r for r, _ in keep), np.int64, len(keep)),
                p.baskets if p is not None else 1.0, p.novelty if p is not None else 1.0)
            out.append([(item, rate) for (_, item), rate in
                        zip(keep, rates.tolist(), strict=True)])
        return out

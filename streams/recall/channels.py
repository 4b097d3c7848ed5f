"""Non-neural recall channels: the `Channel` protocol, popularity and repeat purchase.

A channel turns user histories into scored candidate lists. `fit` builds its global state
at the boundary, `observe` updates it as events arrive (a no-op for frozen channels) and
`candidates` answers a batch of users; excluded items are never returned. Item-to-item
CF lives in `streams.recall.itemcf`.
"""

from __future__ import annotations

import logging
import math
from collections import deque
from collections.abc import Container, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from streams.errors import SettingsError
from towers.data import Dataset, Interactions
from towers.sequence import DAY, UserHistory, recency_weights

logger = logging.getLogger(__name__)

__all__ = [
    "Channel",
    "ItemIds",
    "PopularityChannel",
    "PopularityConfig",
    "RepeatChannel",
    "RepeatConfig",
    "first_k",
]

Candidates = list[tuple[str, float]]


class Channel(Protocol):
    """A recall channel; see the module docstring."""

    name: str

    def fit(self, dataset: Dataset, history: Interactions) -> None: ...
    def observe(self, events: Interactions) -> None: ...
    def candidates(
        self, histories: Sequence[UserHistory | None], *, k: int, now: float,
        exclude: Sequence[Container[str]] | None = None,
    ) -> list[Candidates]: ...


class ItemIds:
    """Stable item id <-> dense int index, growing as new items appear."""

    def __init__(self) -> None:
        self.index: dict[str, int] = {}
        self._ids: list[str] = []
        self._array: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self._ids)

    def add(self, item: str) -> int:
        idx = self.index.get(item)
        if idx is None:
            idx = self.index[item] = len(self._ids)
            self._ids.append(item)
            self._array = None
        return idx

    def add_many(self, items: np.ndarray) -> np.ndarray:
        """Indices of `items` (int64), adding the unknown ones in order of first appearance."""
        if len(items) == 0:
            return np.zeros(0, dtype=np.int64)
        uniq, first, inverse = np.unique(items.astype(str), return_index=True,
                                         return_inverse=True)
        codes = np.empty(len(uniq), dtype=np.int64)
        for u in np.argsort(first, kind="stable").tolist():
            codes[u] = self.add(str(uniq[u]))
        return codes[inverse.reshape(-1)]

    def ids(self) -> np.ndarray:
        """All ids as an object array (index -> id)."""
        if self._array is None:
            self._array = np.array(self._ids, dtype=object)
        return self._array


def grow(array: np.ndarray, n: int, fill: float = 0) -> np.ndarray:
    """`array` with at least `n` rows, doubling so repeated growth stays cheap."""
    if len(array) >= n:
        return array
    out = np.full((max(n, 2 * len(array), 64), *array.shape[1:]), fill, dtype=array.dtype)
    out[: len(array)] = array
    return out


def first_k(ids: np.ndarray, scores: np.ndarray, k: int,
            exclude: Container[str] | None) -> Candidates:
    """The first `k` (id, score) pairs of a ranked list whose id is not excluded.

    An exclusion container that is falsy (an empty set, a filter blocking nothing) is
    skipped without testing each item.
    """
    if not exclude:
        return list(zip(ids[:k].tolist(), scores[:k].tolist(), strict=True))
    out: Candidates = []
    start, step = 0, max(2 * k, 64)
    while len(out) < k and start < len(ids):
        chunk = zip(ids[start:start + step].tolist(), scores[start:start + step].tolist(),
                    strict=True)
        for item, score in chunk:
            if item not in exclude:
                out.append((item, score))
                if len(out) == k:
                    break
        start, step = start + step, 2 * step
    return out


@dataclass(frozen=True)
class PopularityConfig:
    live: bool = False  # observe() updates the counts; False = counts frozen at fit()
    half_life_s: float | None = None  # exponential decay of counts; None = no decay
    window_s: float | None = None  # only events this recent (vs the newest seen) count
    region_weight: float = 0.0  # score = (1-w) * global share + w * share in user's region
    quantity_weighted: bool = False  # count units instead of lines (lines match events)

    def __post_init__(self) -> None:
        if (self.half_life_s is not None and self.half_life_s <= 0) or \
                (self.window_s is not None and self.window_s <= 0):
            raise SettingsError("popularity: half_life_s and window_s must be positive or None")
        if not 0.0 <= self.region_weight <= 1.0:
            raise SettingsError("popularity: region_weight must lie in [0, 1]")


class PopularityChannel:
    """Most interacted items, globally or blended with the user's region; the cold fallback.

    Decayed counts are stored relative to an anchor time, so the ranking does not
    depend on `now` and is cached until the counts change.
    """

    def __init__(self, config: PopularityConfig | None = None, *,
                 name: str = "popularity") -> None:
        self.config = config or PopularityConfig()
        self.name = name
        self._reset()

    def _reset(self) -> None:
        self._items = ItemIds()
        self._global = np.zeros(0)
        self._regions: dict[str, np.ndarray] = {}
        self._anchor: float | None = None
        self._newest = -math.inf
        self._window: deque[tuple[float, int, str, float]] = deque()
        self._ranked: dict[str, tuple[np.ndarray, np.ndarray]] = {}

    def fit(self, dataset: Dataset, history: Interactions) -> None:
        self._reset()
        if len(history):
            self._anchor = float(history.ts.max())
        self._add(history)
        logger.info("popularity %s: %s items from %s rows", self.name, len(self._items),
                    len(history))

    def observe(self, events: Interactions) -> None:
        if self.config.live and len(events):
            self._add(events)

    def _add(self, events: Interactions) -> None:
        if len(events) == 0:
            return
        cfg = self.config
        self._newest = max(self._newest, float(events.ts.max()))
        keep = np.ones(len(events), dtype=bool)
        if cfg.window_s is not None:
            keep = events.ts >= self._newest - cfg.window_s
        idx = self._items.add_many(events.item)[keep]
        ts, regions = events.ts[keep], events.region[keep]
        raw = events.quantity[keep].astype(np.float64) if cfg.quantity_weighted \
            else np.ones(len(idx))
        self._bump(idx, regions, self._scaled(ts, raw))
        if cfg.window_s is not None:  # kept in time order so eviction pops from the left
            order = np.argsort(ts, kind="stable")
            self._window.extend(zip(ts[order].tolist(), idx[order].tolist(),
                                    regions[order].tolist(), raw[order].tolist(), strict=True))
            self._evict()
        self._ranked.clear()

    def _scaled(self, ts: np.ndarray, raw: np.ndarray) -> np.ndarray:
        """Weights in the anchored decay scale: raw * 2^((t - anchor) / half_life)."""
        h = self.config.half_life_s
        if h is None:
            return raw
        if self._anchor is None:
            self._anchor = float(ts.max())
        shift = (float(ts.max()) - self._anchor) / h
        if shift > 500:  # keep exponents small: rebase every count to a newer anchor
            factor = 2.0 ** -shift
            self._global *= factor
            for counts in self._regions.values():
                counts *= factor
            self._anchor = float(ts.max())
        return raw * np.exp2((ts - self._anchor) / h)

    def _bump(self, idx: np.ndarray, regions: np.ndarray, w: np.ndarray) -> None:
        n = len(self._items)
        self._global = grow(self._global, n)
        self._global[: n] += np.bincount(idx, w, minlength=n)
        if self.config.region_weight <= 0:
            return
        for region in np.unique(regions).tolist():
            mask = regions == region
            counts = grow(self._regions.get(region, np.zeros(0)), n)
            counts[: n] += np.bincount(idx[mask], w[mask], minlength=n)
            self._regions[region] = counts

    def _evict(self) -> None:
        cutoff = self._newest - float(self.config.window_s or 0.0)
        gone: list[tuple[float, int, str, float]] = []
        while self._window and self._window[0][0] < cutoff:
            gone.append(self._window.popleft())
        if gone:
            ts, idx, regions, raw = (np.array(c) for c in zip(*gone, strict=True))
            self._bump(idx.astype(np.int64), regions.astype(object), -self._scaled(ts, raw))

    def ranking(self, region: str = "") -> tuple[np.ndarray, np.ndarray]:
        """(ids, scores) of every counted item, best first (cached until counts change)."""
        if region not in self._ranked:
            n = len(self._items)
            counts = self._global[:n]
            score = counts / max(counts.sum(), 1e-300)
            w = self.config.region_weight
            local = self._regions.get(region) if region else None
            if w > 0 and local is not None:
                local = local[:n]
                score = (1 - w) * score + w * local / max(local.sum(), 1e-300)
            order = np.argsort(-score, kind="stable")
            order = order[score[order] > 0]
            self._ranked[region] = (self._items.ids()[order], score[order])
        return self._ranked[region]

    def candidates(
        self, histories: Sequence[UserHistory | None], *, k: int, now: float,
        exclude: Sequence[Container[str]] | None = None,
    ) -> list[Candidates]:
        out = []
        for j, history in enumerate(histories):
            ids, scores = self.ranking(history.region if history is not None else "")
            out.append(first_k(ids, scores, k, exclude[j] if exclude is not None else None))
        return out


@dataclass(frozen=True)
class RepeatConfig:
    half_life_s: float = 14 * DAY  # recency half-life of a past interaction
    quantity_weighted: bool = True  # weight = quantity * decay; False = 1 * decay per line


class RepeatChannel:
    """The user's own items, scored by recency-weighted (quantity) count; no global state."""

    def __init__(self, config: RepeatConfig | None = None, *, name: str = "repeat") -> None:
        self.config = config or RepeatConfig()
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
        for j, history in enumerate(histories):
            if history is None or len(history) == 0:
                out.append([])
                continue
            qty = history.quantity if self.config.quantity_weighted else np.ones(len(history))
            w = recency_weights(np.asarray(history.ts), np.asarray(qty), now,
                                self.config.half_life_s)
            score: dict[str, float] = {}
            for item, weight in zip(reversed(history.items), w[::-1].tolist(), strict=True):
                score[item] = score.get(item, 0.0) + weight  # newest first: ties go to it
            ranked = sorted(score.items(), key=lambda p: -p[1])
            excl = exclude[j] if exclude is not None else None
            out.append([p for p in ranked if excl is None or p[0] not in excl][:k])
        return out

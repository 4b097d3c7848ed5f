"""Columnar interaction logs, item and user metadata, and the global temporal split.

Every reader (MovieLens, retail CSV, JSON-lines events, the simulator) produces a
`Dataset`; training, evaluation and replay all consume it. Row order is the order of the
source file and matters: the split sorts stably by (timestamp, row order).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

__all__ = ["ContextRecord", "Dataset", "Interactions", "ItemInfo", "Split", "temporal_split"]

# Interaction kinds, weakest to strongest signal. MovieLens ratings are "rating".
KINDS = ("view", "click", "cart", "purchase", "rating")


@dataclass
class Interactions:
    """N interactions as parallel arrays (one row per event, source order)."""

    user: np.ndarray  # (N,) object: external user ids (str)
    item: np.ndarray  # (N,) object: external item ids (str)
    ts: np.ndarray  # (N,) float64: unix seconds
    quantity: np.ndarray  # (N,) float32: > 0 (1 where the source has none)
    price: np.ndarray  # (N,) float32: unit price, NaN when unknown
    kind: np.ndarray  # (N,) object: one of KINDS
    region: np.ndarray  # (N,) object: store / residence area, "" when unknown
    rating: np.ndarray  # (N,) float32: explicit rating, NaN when none

    def __post_init__(self) -> None:
        n = len(self.user)
        for name in ("item", "ts", "quantity", "price", "kind", "region", "rating"):
            assert len(getattr(self, name)) == n, f"column {name} has the wrong length"

    def __len__(self) -> int:
        return len(self.user)

    def take(self, index: np.ndarray | slice) -> Interactions:
        """Rows selected by a slice, boolean mask or integer index array (copies)."""
        return Interactions(**{name: getattr(self, name)[index] for name in _COLUMNS})

    @classmethod
    def empty(cls) -> Interactions:
        return cls.from_columns(user=[], item=[], ts=[])

    @classmethod
    def from_columns(
        cls,
        *,
        user: list[str] | np.ndarray,
        item: list[str] | np.ndarray,
        ts: list[float] | np.ndarray,
        quantity: list[float] | np.ndarray | None = None,
        price: list[float] | np.ndarray | None = None,
        kind: list[str] | np.ndarray | None = None,
        region: list[str] | np.ndarray | None = None,
        rating: list[float] | np.ndarray | None = None,
    ) -> Interactions:
        """Build from lists, filling optional columns with their defaults."""
        n = len(user)

        def obj(values: object, default: str) -> np.ndarray:
            if values is None:
                return np.full(n, default, dtype=object)
            return np.asarray(values, dtype=object)

        def num(values: object, default: float) -> np.ndarray:
            if values is None:
                return np.full(n, default, dtype=np.float32)
            return np.asarray(values, dtype=np.float32)

        return cls(
            user=obj(user, ""), item=obj(item, ""), ts=np.asarray(ts, dtype=np.float64),
            quantity=num(quantity, 1.0), price=num(price, np.nan), kind=obj(kind, "purchase"),
            region=obj(region, ""), rating=num(rating, np.nan),
        )

    @staticmethod
    def concat(parts: list[Interactions]) -> Interactions:
        return Interactions(**{name: np.concatenate([getattr(p, name) for p in parts])
                               for name in _COLUMNS})


_COLUMNS = ("user", "item", "ts", "quantity", "price", "kind", "region", "rating")


@dataclass(frozen=True)
class ItemInfo:
    """What is known of an item besides its id."""

    category: str = ""  # "" when unknown
    price: float = float("nan")  # typical unit price, NaN when unknown
    available: bool = True


@dataclass(frozen=True)
class ContextRecord:
    """A context event: conditions at a time, for a region ("" = everywhere)."""

    ts: float
    region: str = ""
    user_id: str = ""  # set when the conditions concern one user (e.g. a store) only
    weather: str = ""  # e.g. "sunny", "rain", "snow"; "" when unknown
    temperature: float = float("nan")  # degrees Celsius
    holiday: bool = False
    # item id -> in stock; items not named keep their previous availability
    stock: dict[str, bool] = field(default_factory=dict)


@dataclass
class Dataset:
    """An interaction log with the metadata that came with it."""

    name: str
    interactions: Interactions
    items: dict[str, ItemInfo] = field(default_factory=dict)
    users: dict[str, dict[str, str]] = field(default_factory=dict)  # categorical profile
    contexts: list[ContextRecord] = field(default_factory=list)  # sorted by ts
    seen_filter: bool = False  # docs/evaluation.md: on for MovieLens, off for retail
    skipped: dict[str, int] = field(default_factory=dict)  # reason -> rows skipped

    def catalogue(self) -> np.ndarray:
        """Every item that appears anywhere in the data or the metadata, sorted."""
        ids = set(self.interactions.item.tolist()) | set(self.items)
        return np.array(sorted(ids), dtype=object)


@dataclass(frozen=True)
class Split:
    """Row indices (into the source-order log) of each part of the temporal split."""

    order: np.ndarray  # (N,) int64: stable sort by (ts, row)
    train: np.ndarray
    valid: np.ndarray
    test: np.ndarray

    def sizes(self) -> dict[str, int]:
        return {"train": len(self.train), "valid": len(self.valid), "test": len(self.test)}


def temporal_split(log: Interactions, train: float = 0.8, valid: float = 0.1) -> Split:
    """Global temporal split of docs/evaluation.md: stable sort by (ts, row), cut at 80% and 90%."""
    n = len(log)
    order = np.argsort(log.ts, kind="stable")
    a, b = int(train * n), int((train + valid) * n)
    return Split(order=order, train=order[:a], valid=order[a:b], test=order[b:])

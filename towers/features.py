"""Feature specification and encoding: the one code path for training and serving.

A `FeatureSpec` is fitted on training data and stored in the checkpoint. Serving encodes
users and items with the stored spec, so an item or user the model never saw still gets a
valid (out-of-vocabulary) encoding and a dense value is normalised with training stats.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields

import numpy as np
import orjson

from towers.data import Dataset, Interactions
from towers.errors import FeatureError
from towers.sequence import DAY, UserHistory
from towers.vocab import DenseStats, Vocabulary

__all__ = [
    "FeatureSettings", "FeatureSpec", "ItemBatch", "ItemTable", "UserBatch",
    "encode_histories", "encode_items", "encode_user_arrays", "fit_feature_spec",
]

SPEC_FORMAT = 1
N_USER_DENSE = 2  # log1p(history length), log1p(mean quantity)
N_ITEM_DENSE = 3  # normalised log price, price missing flag, normalised log popularity
N_CTX_DENSE = 3  # normalised temperature, temperature missing flag, holiday


@dataclass(frozen=True)
class FeatureSettings:
    """How raw events become model inputs (stored with the checkpoint)."""

    seq_len: int = 50  # last N events of the user's history fed to the user tower
    # one pooled sequence vector per half-life: short ones follow the session, long the taste
    half_lives_s: tuple[float, ...] = (60.0, 600.0, 3600.0, DAY, 7 * DAY, 30 * DAY)
    n_price_bands: int = 8  # quantile bands of unit price
    user_oov: int = 64  # hash buckets for users not in the vocabulary
    item_oov: int = 16  # hash buckets for items not in the vocabulary
    min_user_count: int = 1  # users with fewer training events share the OOV buckets


@dataclass
class ItemTable:
    """The catalogue as the item tower sees it: one row per item id."""

    ids: np.ndarray  # (M,) object
    category: np.ndarray  # (M,) object, "" unknown
    price: np.ndarray  # (M,) float32, NaN unknown
    count: np.ndarray  # (M,) float32, training interactions (popularity)

    def __len__(self) -> int:
        return len(self.ids)

    @classmethod
    def from_dataset(cls, dataset: Dataset, history: Interactions) -> ItemTable:
        ids = dataset.catalogue()
        pos = {item: i for i, item in enumerate(ids.tolist())}
        count = np.zeros(len(ids), dtype=np.float32)
        np.add.at(count, np.fromiter((pos[i] for i in history.item), np.int64, len(history)), 1)
        price = np.full(len(ids), np.nan, dtype=np.float32)
        category = np.full(len(ids), "", dtype=object)
        for item, info in dataset.items.items():
            category[pos[item]] = info.category
            price[pos[item]] = info.price
        return cls(ids=ids, category=category, price=price, count=count)

    def to_json(self) -> dict[str, list[object]]:
        return {"ids": self.ids.tolist(), "category": self.category.tolist(),
                "price": [None if np.isnan(p) else float(p) for p in self.price],
                "count": self.count.tolist()}

    @classmethod
    def from_json(cls, obj: Mapping[str, object]) -> ItemTable:
        try:
            table = cls(ids=np.array(_json_list(obj, "ids", "item table"), dtype=object),
                        category=np.array(_json_list(obj, "category", "item table"),
                                          dtype=object),
                        price=np.array([np.nan if p is None else p
                                        for p in _json_list(obj, "price", "item table")],
                                       dtype=np.float32),
                        count=np.array(_json_list(obj, "count", "item table"),
                                       dtype=np.float32))
        except (KeyError, TypeError, ValueError) as exc:
            raise FeatureError(f"item table is malformed: {exc}") from exc
        if not (len(table.ids) == len(table.category) == len(table.price) == len(table.count)):
            raise FeatureError("item table columns have different lengths")
        return table


@dataclass
class FeatureSpec:
    """Vocabularies and normalisation fitted on training data."""

    settings: FeatureSettings
    users: Vocabulary
    items: Vocabulary
    categories: Vocabulary
    regions: Vocabulary
    price_edges: list[float]  # log1p(price) band edges, len = n_price_bands - 1
    log_price: DenseStats = field(default_factory=DenseStats)
    log_count: DenseStats = field(default_factory=DenseStats)
    log_history: DenseStats = field(default_factory=DenseStats)
    log_quantity: DenseStats = field(default_factory=DenseStats)
    temperature: DenseStats = field(default_factory=DenseStats)

    @property
    def n_price_bands(self) -> int:
        return len(self.price_edges) + 2  # + padding/unknown band 0

    def to_json(self) -> dict[str, object]:
        return {
            "format": SPEC_FORMAT, "settings": asdict(self.settings),
            "users": self.users.to_json(), "items": self.items.to_json(),
            "categories": self.categories.to_json(), "regions": self.regions.to_json(),
            "price_edges": self.price_edges,
            **{name: getattr(self, name).to_json() for name in _STATS},
        }

    @classmethod
    def from_json(cls, obj: Mapping[str, object]) -> FeatureSpec:
        if obj.get("format") != SPEC_FORMAT:
            raise FeatureError(f"feature spec format {obj.get('format')!r} is not {SPEC_FORMAT}")
        try:
            settings = _settings_from_json(_json_object(obj, "settings", "feature spec"))
            vocabs = {k: Vocabulary.from_json(_json_object(obj, k, "feature spec"))
                      for k in ("users", "items", "categories", "regions")}
            stats = {k: DenseStats.from_json(_json_object(obj, k, "feature spec"))
                     for k in _STATS}
            edges = [float(e) for e in _json_numbers(obj, "price_edges", "feature spec")]
        except (KeyError, TypeError, ValueError) as exc:
            raise FeatureError(f"feature spec is malformed: {exc!r}") from exc
        return cls(settings=settings, users=vocabs["users"], items=vocabs["items"],
                   categories=vocabs["categories"], regions=vocabs["regions"],
                   price_edges=edges, log_price=stats["log_price"],
                   log_count=stats["log_count"], log_history=stats["log_history"],
                   log_quantity=stats["log_quantity"], temperature=stats["temperature"])

    def fingerprint(self) -> str:
        """sha256 of the canonical JSON: equal specs encode identically."""
        return hashlib.sha256(orjson.dumps(self.to_json(), option=orjson.OPT_SORT_KEYS)).hexdigest()


_STATS = ("log_price", "log_count", "log_history", "log_quantity", "temperature")


def _json_object(obj: Mapping[str, object], key: str, what: str) -> dict[str, object]:
    """`obj[key]` if it is a JSON object (KeyError when absent), else a FeatureError."""
    value = obj[key]
    if not isinstance(value, dict):
        raise FeatureError(f"{what} {key!r} must be a JSON object, not {type(value).__name__}")
    return value


def _json_list(obj: Mapping[str, object], key: str, what: str) -> Sequence[object]:
    """`obj[key]` if it is an array: a JSON one, or the tuple `to_json` gives before JSON.

    KeyError when absent, FeatureError when something else.
    """
    value = obj[key]
    if not isinstance(value, list | tuple):
        raise FeatureError(f"{what} {key!r} must be a JSON array, not {type(value).__name__}")
    return value


def _json_numbers(obj: Mapping[str, object], key: str, what: str) -> list[float]:
    """`obj[key]` if it is a JSON array of numbers (ints stay ints), else a FeatureError."""
    numbers: list[float] = []
    for value in _json_list(obj, key, what):
        if not isinstance(value, int | float) or isinstance(value, bool):
            raise FeatureError(f"{what} {key!r} must hold numbers, not {value!r:.40}")
        numbers.append(value)
    return numbers


def _settings_from_json(obj: Mapping[str, object]) -> FeatureSettings:
    """Settings as `asdict` wrote them; every field but the half-lives is an integer.

    A missing field takes its default, except the half-lives (KeyError, as for any key
    missing from the spec).
    """
    unknown = sorted(set(obj) - {f.name for f in fields(FeatureSettings)})
    if unknown:
        raise FeatureError(f"feature settings have unknown fields {unknown}")
    # kept as read, ints and floats alike: the spec fingerprint hashes them as stored
    half_lives = tuple(_json_numbers(obj, "half_lives_s", "feature settings"))
    counts: dict[str, int] = {}
    for name, value in obj.items():
        if name == "half_lives_s":
            continue
        if not isinstance(value, int) or isinstance(value, bool):
            raise FeatureError(f"feature settings {name}={value!r:.40} is not an integer")
        counts[name] = value
    return FeatureSettings(half_lives_s=half_lives, **counts)


def fit_feature_spec(dataset: Dataset, history: Interactions,
                     settings: FeatureSettings | None = None) -> FeatureSpec:
    """Fit vocabularies and statistics on the training interactions only."""
    settings = settings or FeatureSettings()
    table = ItemTable.from_dataset(dataset, history)
    log_price = np.log1p(table.price[np.isfinite(table.price)].astype(np.float64))
    qs = np.linspace(0, 1, settings.n_price_bands + 1)[1:-1]
    edges = np.quantile(log_price, qs).tolist() if len(log_price) else []
    temps = np.array([c.temperature for c in dataset.contexts], dtype=np.float64)
    return FeatureSpec(
        settings=settings,
        users=Vocabulary.build(history.user.tolist(), min_count=settings.min_user_count,
                               n_oov=settings.user_oov),
        # every catalogue item gets its own row: items cold in training still get
        # category / price / popularity signal through the item tower
        items=Vocabulary(tokens=table.ids.tolist(), n_oov=settings.item_oov),
        categories=Vocabulary.build(table.category.tolist(), n_oov=4),
        regions=Vocabulary.build(history.region.tolist(), n_oov=4),
        price_edges=edges,
        log_price=DenseStats.fit(log_price),
        log_count=DenseStats.fit(np.log1p(table.count.astype(np.float64))),
        log_history=DenseStats.fit(np.log1p(_history_lengths(history, settings.seq_len))),
        log_quantity=DenseStats.fit(np.log1p(history.quantity.astype(np.float64))),
        temperature=DenseStats.fit(temps),
    )


def _history_lengths(history: Interactions, cap: int) -> np.ndarray:
    _, counts = np.unique(history.user.astype(str), return_counts=True)
    return np.minimum(counts, cap).astype(np.float64)


@dataclass
class ItemBatch:
    """Item tower inputs for M items."""

    item: np.ndarray  # (M,) int64
    category: np.ndarray  # (M,) int64
    price_band: np.ndarray  # (M,) int64
    dense: np.ndarray  # (M, N_ITEM_DENSE) float32


def encode_items(spec: FeatureSpec, table: ItemTable) -> ItemBatch:
    log_price = np.log1p(table.price.astype(np.float64))
    band = np.where(np.isfinite(log_price),
                    np.searchsorted(np.asarray(spec.price_edges), log_price) + 1, 0)
    dense = np.stack([
        spec.log_price.normalise(log_price),
        (~np.isfinite(log_price)).astype(np.float32),
        spec.log_count.normalise(np.log1p(table.count.astype(np.float64))),
    ], axis=1).astype(np.float32)
    return ItemBatch(item=spec.items.encode(table.ids), category=spec.categories.encode(
        table.category), price_band=band.astype(np.int64), dense=dense)


@dataclass
class UserBatch:
    """User tower inputs for B users at their request times."""

    user: np.ndarray  # (B,) int64
    region: np.ndarray  # (B,) int64
    seq_items: np.ndarray  # (B, N) int64, 0 = empty slot
    seq_weights: np.ndarray  # (B, H, N) float32, each row sums to 1 (or 0 when empty)
    dense: np.ndarray  # (B, N_USER_DENSE) float32
    hour: np.ndarray  # (B,) int64 in 0..23
    weekday: np.ndarray  # (B,) int64 in 0..6 (Monday 0)
    ctx_dense: np.ndarray  # (B, N_CTX_DENSE) float32

    def __len__(self) -> int:
        return len(self.user)


def encode_user_arrays(
    spec: FeatureSpec, *, user: np.ndarray, region: np.ndarray, seq_items: np.ndarray,
    seq_ts: np.ndarray, seq_qty: np.ndarray, now: np.ndarray,
    temperature: np.ndarray | None = None, holiday: np.ndarray | None = None,
) -> UserBatch:
    """Encode B users from already-indexed ids; `seq_*` are (B, N), 0-padded on the left."""
    b, n = seq_items.shape
    assert n == spec.settings.seq_len, "sequence width must equal settings.seq_len"
    filled = seq_items != 0
    age = np.maximum(now[:, None] - seq_ts, 0.0)  # (B, N) seconds
    qty = np.where(filled, seq_qty, 0.0)
    half = np.asarray(spec.settings.half_lives_s, dtype=np.float64)[None, :, None]
    w = qty[:, None, :] * np.exp2(-age[:, None, :] / half)  # (B, H, N)
    total = w.sum(axis=2, keepdims=True)
    w = np.divide(w, total, out=np.zeros_like(w), where=total > 0)
    length = filled.sum(axis=1).astype(np.float64)
    mean_qty = np.divide(qty.sum(axis=1), length, out=np.zeros(b), where=length > 0)
    dense = np.stack([spec.log_history.normalise(np.log1p(length)),
                      spec.log_quantity.normalise(np.log1p(mean_qty))], axis=1)
    temperature = np.full(b, np.nan) if temperature is None else temperature
    holiday = np.zeros(b) if holiday is None else holiday
    ctx = np.stack([spec.temperature.normalise(temperature),
                    (~np.isfinite(temperature)).astype(np.float32),
                    holiday.astype(np.float32)], axis=1)
    seconds = now.astype(np.int64)
    return UserBatch(
        user=user.astype(np.int64), region=region.astype(np.int64),
        seq_items=seq_items.astype(np.int64), seq_weights=w.astype(np.float32),
        dense=dense.astype(np.float32), hour=(seconds // 3600) % 24,
        weekday=(seconds // 86_400 + 3) % 7,  # 1970-01-01 was a Thursday
        ctx_dense=ctx.astype(np.float32),
    )


def encode_histories(
    spec: FeatureSpec, histories: Sequence[UserHistory], *, now: np.ndarray | None = None,
    temperature: np.ndarray | None = None, holiday: np.ndarray | None = None,
) -> UserBatch:
    """Encode users from their state; `now` defaults to each user's last event time."""
    n = spec.settings.seq_len
    b = len(histories)
    seq_items = np.zeros((b, n), dtype=np.int64)
    seq_ts = np.zeros((b, n), dtype=np.float64)
    seq_qty = np.zeros((b, n), dtype=np.float32)
    for row, hist in enumerate(histories):
        items = hist.items[-n:]
        if not items:
            continue
        seq_items[row, n - len(items):] = spec.items.encode(items)
        seq_ts[row, n - len(items):] = hist.ts[-n:]
        seq_qty[row, n - len(items):] = hist.quantity[-n:]
    if now is None:
        now = np.array([h.ts[-1] if h.ts else 0.0 for h in histories], dtype=np.float64)
    if len(histories) and any(not h.items for h in histories):
        raise FeatureError("cannot encode a user with an empty history: use a fallback channel")
    return encode_user_arrays(
        spec, user=spec.users.encode([h.user_id for h in histories]),
        region=spec.regions.encode([h.region for h in histories]), seq_items=seq_items,
        seq_ts=seq_ts, seq_qty=seq_qty, now=np.asarray(now, dtype=np.float64),
        temperature=temperature, holiday=holiday,
    )

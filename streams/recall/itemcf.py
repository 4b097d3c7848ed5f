"""Item-to-item collaborative filtering: co-occurrence neighbours, frozen or live.

Two items co-occur when one user had them within `window` positions (and `max_gap_s`)
of each other in time order. With `distinct` each user's sequence is reduced to the
first occurrence of each item, so a user counts a pair at most once and n_i is the
number of users who had i; otherwise every pair of lines counts and n_i counts lines.
similarity(i -> j) = c_ij / (n_i^alpha * n_j^(1 - alpha)) (alpha 0.5: cosine). Each
item keeps its top `neighbours`. Candidates for a user are the neighbours of the user's
`recent` newest items, summed with the recency weights of those items.

Live mode counts every event's pairs (and n_i) as it arrives and re-ranks the list of
every item whose co-occurrence row changed, so a new item gets neighbours and old ones
pick up new partners. Lists store counts; similarities are computed from them and the
current n at query time, so they are never stale, but an entry whose only change is its
partner's n_j moves in or out of a list only when that list's row next changes. The
counts added since `fit` are kept per pair (memory grows with them): refit periodically.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Container, Sequence
from dataclasses import asdict, dataclass

import numpy as np

from streams.errors import SettingsError
from streams.recall.channels import Candidates, ItemIds, first_k, grow
from streams.recall.history import time_order
from towers.data import Dataset, Interactions
from towers.sequence import DAY, UserHistory, recency_weights

logger = logging.getLogger(__name__)

__all__ = ["ItemCFChannel", "ItemCFConfig"]

_KEY = 1 << 32  # live pair keys are row * _KEY + col: stable while the catalogue grows


@dataclass(frozen=True)
class ItemCFConfig:
    live: bool = False  # observe() updates co-occurrence counts and neighbour lists
    neighbours: int = 50  # neighbours kept per item
    window: int = 20  # pair each event with at most this many previous ones of the user
    max_gap_s: float | None = None  # ... that are at most this much older (None: any)
    distinct: bool = True  # first occurrences only: a user counts each pair once
    alpha: float = 0.5  # similarity normalisation exponent (0.5 = cosine)
    recent: int = 50  # newest events of the user that gather candidates
    half_life_s: float = 7 * DAY  # recency weight of those events
    quantity_weighted: bool = False  # recency weight times quantity

    def __post_init__(self) -> None:
        if min(self.neighbours, self.window, self.recent) < 1:
            raise SettingsError("item-CF: neighbours, window and recent must be at least 1")
        if not (0.0 <= self.alpha <= 1.0 and self.half_life_s > 0):
            raise SettingsError("item-CF: alpha must lie in [0, 1] and half_life_s be positive")


class ItemCFChannel:
    """Neighbours of the user's recent items; see the module docstring."""

    def __init__(self, config: ItemCFConfig | None = None, *, name: str = "itemcf") -> None:
        self.config = config or ItemCFConfig()
        self.name = name
        self._reset()

    def _reset(self) -> None:
        k = self.config.neighbours
        self._items = ItemIds()
        self._n = np.zeros(0)
        self._nbr = np.full((0, k), -1, dtype=np.int64)  # neighbour item indices, -1 = none
        self._cnt = np.zeros((0, k))  # co-occurrence count of each listed neighbour
        # live state: fit-time counts (sorted keys row * m + col), counts added since then
        # (key row * _KEY + col), and each user's last `window` events (plus items had)
        self._m = 0
        self._keys = np.zeros(0, dtype=np.int64)
        self._counts = np.zeros(0)
        self._delta: dict[int, float] = {}
        self._tail: dict[str, deque[tuple[int, float]]] = {}
        self._had: dict[str, set[int]] = {}

    # --- offline build ---------------------------------------------------------------

    def fit(self, dataset: Dataset, history: Interactions) -> None:
        self._reset()
        order = time_order(history)
        items = self._items.add_many(history.item[order])
        users, codes = np.unique(history.user[order].astype(str), return_inverse=True)
        u, it, t = _sequences(codes.reshape(-1), items, history.ts[order],
                              distinct=self.config.distinct)
        m = self._m = len(self._items)
        self._n = np.bincount(it, minlength=m).astype(np.float64)
        a, b = _pairs(u, it, t, window=self.config.window, max_gap_s=self.config.max_gap_s)
        self._keys, self._counts = _symmetric_counts(a, b, m)
        k = self.config.neighbours
        self._nbr, self._cnt = np.full((m, k), -1, dtype=np.int64), np.zeros((m, k))
        self._write_top(self._keys // max(m, 1), self._keys % max(m, 1), self._counts)
        if self.config.live:
            self._keep_tails(users, u, it, t)
        else:
            self._keys, self._counts = np.zeros(0, dtype=np.int64), np.zeros(0)
        logger.info("itemcf %s: %s items, %s co-occurring pairs from %s rows", self.name, m,
                    len(a), len(history))

    def _keep_tails(self, users: np.ndarray, u: np.ndarray, it: np.ndarray,
                    t: np.ndarray) -> None:
        starts = np.flatnonzero(np.r_[True, u[1:] != u[:-1]]) if len(u) else np.zeros(0, int)
        ends = np.r_[starts[1:], len(u)].astype(int)
        window = self.config.window
        for a, b in zip(starts.tolist(), ends.tolist(), strict=True):
            user = str(users[u[a]])
            lo = max(a, b - window)
            self._tail[user] = deque(zip(it[lo:b].tolist(), t[lo:b].tolist(), strict=True),
                                     maxlen=window)
            if self.config.distinct:
                self._had[user] = set(it[a:b].tolist())

    def _write_top(self, rows: np.ndarray, cols: np.ndarray, counts: np.ndarray) -> None:
        """Replace the lists of every row present with its best `neighbours` entries.

        Entries come sorted by (row, col), so equal similarities rank by item index.
        """
        if len(rows) == 0:
            return
        assert np.all(rows[1:] >= rows[:-1]), "entries must come sorted by (row, col)"
        present = np.unique(rows)
        self._nbr[present], self._cnt[present] = -1, 0.0
        order = _order_within(rows, self._similarity(rows, cols, counts))
        rows, cols, counts = rows[order], cols[order], counts[order]
        rank = np.arange(len(rows)) - np.searchsorted(rows, rows, side="left")
        keep = rank < self.config.neighbours
        self._nbr[rows[keep], rank[keep]] = cols[keep]
        self._cnt[rows[keep], rank[keep]] = counts[keep]

    def _similarity(self, rows: np.ndarray, cols: np.ndarray, counts: np.ndarray) -> np.ndarray:
        """c_ij / (n_i^alpha * n_j^(1 - alpha)) with the current n."""
        alpha = self.config.alpha
        return counts / (self._n[rows] ** alpha * self._n[cols] ** (1.0 - alpha))

    def neighbours(self, item: str) -> list[tuple[str, float]]:
        """The item's neighbour list, best first, with current similarities."""
        row = self._items.index.get(item)
        if row is None or row >= len(self._nbr):
            return []
        cols = self._nbr[row][self._nbr[row] >= 0]
        sims = self._similarity(np.full(len(cols), row), cols, self._cnt[row][: len(cols)])
        return list(zip(self._items.ids()[cols].tolist(), sims.tolist(), strict=True))

    # --- the frozen table as a file ----------------------------------------------------

    def to_json(self) -> dict[str, object]:
        """The frozen neighbour table (what a checkpoint's neighbours.json holds)."""
        m = len(self._items)
        return {"format": "nearline-itemcf-1", "config": asdict(self.config),
                "items": self._items.ids().tolist(), "n": self._n[:m].tolist(),
                "neighbours": self._nbr[:m].tolist(), "counts": self._cnt[:m].tolist()}

    @classmethod
    def from_json(cls, obj: object, *, name: str = "itemcf") -> ItemCFChannel:
        """A frozen channel from `to_json` output; ValueError naming what is wrong."""
        if not isinstance(obj, dict) or obj.get("format") != "nearline-itemcf-1":
            raise ValueError("neighbour table: not a nearline-itemcf-1 object")
        try:
            config = ItemCFConfig(**{**obj["config"], "live": False})
            items = [str(i) for i in obj["items"]]
            n = np.asarray(obj["n"], dtype=np.float64)
            nbr = np.asarray(obj["neighbours"], dtype=np.int64).reshape(len(items), -1)
            cnt = np.asarray(obj["counts"], dtype=np.float64).reshape(nbr.shape)
        except (KeyError, TypeError, ValueError, SettingsError) as exc:
            raise ValueError(f"neighbour table: {exc}") from None
        if len(n) != len(items) or nbr.shape[1] != config.neighbours \
                or (nbr.size and (nbr.max() >= len(items) or nbr.min() < -1)):
            raise ValueError("neighbour table: sizes or indices do not agree")
        channel = cls(config, name=name)
        channel._items.add_many(np.array(items, dtype=object))
        if len(channel._items) != len(items):
            raise ValueError("neighbour table: duplicate item ids")
        channel._n, channel._nbr, channel._cnt = n, nbr, cnt
        channel._m = len(items)
        return channel

    # --- live updates ----------------------------------------------------------------

    def observe(self, events: Interactions) -> None:
        if not self.config.live or len(events) == 0:
            return
        order = time_order(events)
        idx = self._items.add_many(events.item[order])
        n_items = len(self._items)
        self._n = grow(self._n, n_items)
        self._nbr = grow(self._nbr, n_items, fill=-1)
        self._cnt = grow(self._cnt, n_items)
        a, b = self._count(events.user[order].tolist(), idx.tolist(), events.ts[order].tolist())
        if len(a):
            self._rerank(a, b)

    def _count(self, users: list[str], idx: list[int], ts: list[float]
               ) -> tuple[np.ndarray, np.ndarray]:
        """Count the events' items and return their new (item, earlier item) pairs."""
        cfg = self.config
        gap = np.inf if cfg.max_gap_s is None else cfg.max_gap_s
        first: list[int] = []
        second: list[int] = []
        for user, i, t in zip(users, idx, ts, strict=True):
            if cfg.distinct:
                had = self._had.setdefault(user, set())
                if i in had:
                    continue
                had.add(i)
            self._n[i] += 1
            tail = self._tail.setdefault(user, deque(maxlen=cfg.window))
            partners = [j for j, tj in tail if j != i and t - tj <= gap]
            first += [i] * len(partners)
            second += partners
            tail.append((i, t))
        return np.array(first, dtype=np.int64), np.array(second, dtype=np.int64)

    def _rerank(self, a: np.ndarray, b: np.ndarray) -> None:
        """Add the pairs to the counts and re-rank every row they change.

        A row is re-ranked over its current list plus its changed entries: n_i is a common
        factor within row i, so an entry outside the list can only overtake a listed one
        through its own count change (or, approximately, through n_j drifts).
        """
        keys, added = np.unique(np.concatenate([a * _KEY + b, b * _KEY + a]),
                                return_counts=True)
        delta = self._delta
        totals = []
        for key, c in zip(keys.tolist(), added.tolist(), strict=True):
            total = delta[key] = delta.get(key, 0.0) + c
            totals.append(total)
        rows, cols = keys // _KEY, keys % _KEY
        counts = self._fit_counts(rows, cols) + np.array(totals)
        present = np.unique(rows)
        listed = self._nbr[present].ravel() >= 0
        all_rows = np.concatenate([rows, np.repeat(present, self.config.neighbours)[listed]])
        all_cols = np.concatenate([cols, self._nbr[present].ravel()[listed]])
        all_counts = np.concatenate([counts, self._cnt[present].ravel()[listed]])
        cap = len(self._n)
        _, first = np.unique(all_rows * cap + all_cols, return_index=True)  # changed ones win
        self._write_top(all_rows[first], all_cols[first], all_counts[first])

    def _fit_counts(self, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        """Co-occurrence counts of (row, col) at fit time (0 for pairs or items new since)."""
        out = np.zeros(len(rows))
        inside = (rows < self._m) & (cols < self._m)
        if inside.any() and len(self._keys):
            q = rows[inside] * self._m + cols[inside]
            pos = np.minimum(np.searchsorted(self._keys, q), len(self._keys) - 1)
            out[inside] = np.where(self._keys[pos] == q, self._counts[pos], 0.0)
        return out

    # --- recall ----------------------------------------------------------------------

    def candidates(
        self, histories: Sequence[UserHistory | None], *, k: int, now: float,
        exclude: Sequence[Container[str]] | None = None,
    ) -> list[Candidates]:
        out: list[Candidates] = [[] for _ in histories]
        who = [(j, h) for j, h in enumerate(histories) if h is not None and len(h)]
        step = max(1, 2_000_000 // (self.config.recent * self.config.neighbours))
        for a in range(0, len(who), step):
            part = who[a:a + step]
            ranked = self._score([h for _, h in part], now)
            for (j, _), (ids, scores) in zip(part, ranked, strict=True):
                out[j] = first_k(ids, scores, k, exclude[j] if exclude is not None else None)
        return out

    def _score(self, histories: list[UserHistory], now: float
               ) -> list[tuple[np.ndarray, np.ndarray]]:
        """Per user, (ids, scores) of every neighbour of its recent items, best first."""
        src, w, owner = self._sources(histories, now)
        cap = len(self._n)
        nbr = self._nbr[src]  # (n, K)
        mask = nbr >= 0
        at = np.nonzero(mask)[0]  # position in src of each listed neighbour
        cols = nbr[mask]
        # similarities from counts and the current n: never stale after live updates
        vals = self._similarity(src[at], cols, self._cnt[src][mask]) * w[at]
        keys = owner[at] * cap + cols
        order = np.argsort(keys, kind="stable")
        keys, vals = keys[order], vals[order]
        starts = np.flatnonzero(np.r_[True, keys[1:] != keys[:-1]]) if len(keys) else keys
        keys, vals = keys[starts], np.add.reduceat(vals, starts) if len(keys) else vals
        users, cands = keys // max(cap, 1), keys % max(cap, 1)
        order = _order_within(users, vals)
        users, cands, vals = users[order], cands[order], vals[order]
        bounds = np.searchsorted(users, np.arange(len(histories) + 1))
        ids = self._items.ids()[cands]
        return [(ids[bounds[p]:bounds[p + 1]], vals[bounds[p]:bounds[p + 1]])
                for p in range(len(histories))]

    def _sources(self, histories: list[UserHistory], now: float
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The users' recent items (known ones): indices, recency weights, owner position."""
        recent = self.config.recent
        items: list[str] = []
        ts: list[float] = []
        qty: list[float] = []
        owner: list[int] = []
        for p, h in enumerate(histories):
            items += h.items[-recent:]
            ts += h.ts[-recent:]
            qty += h.quantity[-recent:]
            owner += [p] * min(recent, len(h))
        q = np.asarray(qty) if self.config.quantity_weighted else np.ones(len(qty))
        w = recency_weights(np.asarray(ts), q, now, self.config.half_life_s)
        index = self._items.index
        src = np.array([index.get(x, -1) for x in items], dtype=np.int64)
        known = src >= 0
        return src[known], w[known], np.asarray(owner, dtype=np.int64)[known]


def _order_within(groups: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Order by group, then value descending; `groups` sorted, ties keep input order.

    One stable float sort instead of a two-key lexsort (3x faster on millions of pairs):
    values are scaled by their group's maximum, so near-ties closer than ~1e-11 of that
    maximum keep input order.
    """
    if len(groups) == 0:
        return np.zeros(0, dtype=np.int64)
    starts = np.flatnonzero(np.r_[True, groups[1:] != groups[:-1]])
    top = np.maximum.reduceat(values, starts)
    top = np.repeat(np.where(top > 0, top, 1.0), np.diff(np.r_[starts, len(groups)]))
    return np.argsort(groups + 0.5 * (1.0 - np.clip(values / top, 0.0, 1.0)), kind="stable")


def _sequences(users: np.ndarray, items: np.ndarray, ts: np.ndarray, *, distinct: bool
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rows grouped by user, time order inside (input is in time order)."""
    order = np.argsort(users, kind="stable")
    u, it, t = users[order], items[order], ts[order]
    if distinct and len(u):
        _, first = np.unique(u.astype(np.int64) * (int(it.max()) + 1) + it, return_index=True)
        keep = np.zeros(len(u), dtype=bool)
        keep[first] = True
        u, it, t = u[keep], it[keep], t[keep]
    return u, it, t


def _pairs(u: np.ndarray, it: np.ndarray, t: np.ndarray, *, window: int,
           max_gap_s: float | None) -> tuple[np.ndarray, np.ndarray]:
    """(earlier, later) item pairs of one user at most `window` positions apart."""
    first, second = [np.zeros(0, dtype=np.int64)], [np.zeros(0, dtype=np.int64)]
    for d in range(1, min(window, len(u) - 1) + 1):
        same = u[d:] == u[:-d]
        if max_gap_s is not None:
            same &= (t[d:] - t[:-d]) <= max_gap_s
        if not same.any():
            break
        a, b = it[:-d][same], it[d:][same]
        first.append(a[a != b])
        second.append(b[a != b])
    return np.concatenate(first), np.concatenate(second)


def _symmetric_counts(a: np.ndarray, b: np.ndarray, m: int) -> tuple[np.ndarray, np.ndarray]:
    """Sorted keys row * m + col of both directions of every pair, and their counts."""
    keys = np.concatenate([a * m + b, b * m + a])
    keys.sort()
    if len(keys) == 0:
        return keys, np.zeros(0)
    starts = np.flatnonzero(np.r_[True, keys[1:] != keys[:-1]])
    return keys[starts], np.diff(np.r_[starts, len(keys)]).astype(np.float64)

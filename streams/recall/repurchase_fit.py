"""Observations for `RepurchaseModel.fit`: one pass over a log's basket transitions.

For each user, baskets in time order b_0 .. b_{B-1}. At each transition b_k -> b_{k+1}
(the moment a list made after b_k is judged by b_{k+1}):
- every item bought in b_0..b_k is one repeat observation: its cell (baskets that held
  it so far, time from its last basket to b_k, k + 1 baskets in all) and whether b_{k+1}
  holds it;
- every item of b_{k+1} the user never bought is an explore hit at its popularity rank
  after b_k's timestamp (counts decayed with the configured half-life), in the row of the
  user's k + 1 baskets.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from towers.data import Interactions

__all__ = ["Parsed", "explore_rates", "parse_lines", "repeat_observations"]


def _by_user(log: Interactions) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(item codes, ts, group starts, group ends) with rows grouped by user, in time order."""
    order = np.lexsort((log.ts, log.user.astype(str)))
    users = log.user[order].astype(str)
    starts = np.flatnonzero(np.r_[True, users[1:] != users[:-1]]) if len(users) else \
        np.zeros(0, np.int64)
    ends = np.r_[starts[1:], len(users)].astype(np.int64)
    return order, log.ts[order], starts, ends


Cells = Callable[[np.ndarray, np.ndarray, np.ndarray, np.ndarray], np.ndarray]


@dataclass(frozen=True)
class Parsed:
    """What the repurchase and explore scores read from a user's lines (the fit reads the
    same, through the same window, so fit and serving cannot differ)."""

    items: list[str]  # distinct items, in the order first bought
    counts: np.ndarray  # baskets that held each
    first: np.ndarray  # time of the first and the last of them
    last: np.ndarray
    baskets: float  # the user's baskets
    novelty: float  # distinct items / item-basket pairs


def parse_lines(items: Sequence[str], ts: Sequence[float]) -> Parsed:
    """One pass over a user's lines (oldest first); a basket line repeated is one purchase."""
    count: dict[str, int] = {}
    first: dict[str, float] = {}
    last: dict[str, float] = {}
    pairs: set[tuple[str, float]] = set()
    for item, t in zip(items, ts, strict=True):
        if (item, t) not in pairs:
            pairs.add((item, t))
            count[item] = count.get(item, 0) + 1
            first.setdefault(item, t)
            last[item] = t
    n = len(count)
    return Parsed(items=list(count), counts=np.fromiter(count.values(), np.float64, n),
                  first=np.fromiter(first.values(), np.float64, n),
                  last=np.fromiter(last.values(), np.float64, n),
                  baskets=float(len(set(ts))), novelty=n / max(len(pairs), 1))


def repeat_observations(log: Interactions, cells: Cells, *, window: int = 200
                        ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(item, cell, hit) for every (transition, item bought so far) of `log`.

    The state at a transition is what a worker reads: the user's last `window` lines. A
    user with fewer lines in all is done in one matrix; a longer one transition by
    transition (memory stays bounded by `window`, whatever the user's size).
    """
    order, ts, starts, ends = _by_user(log)
    items_sorted = log.item[order].astype(str)
    parts: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    for a, b in zip(starts.tolist(), ends.tolist(), strict=True):
        if b - a <= window:
            part = _short_user(items_sorted[a:b], ts[a:b], cells)
        else:
            part = _long_user(items_sorted[a:b], ts[a:b], cells, window)
        if part is not None:
            parts.append(part)
    if not parts:
        return np.zeros(0, dtype=object), np.zeros(0, np.int64), np.zeros(0, np.float64)
    return (np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts]),
            np.concatenate([p[2] for p in parts]).astype(np.float64))


def _short_user(items: np.ndarray, ts: np.ndarray, cells: Cells
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """All transitions of a user whose whole history fits the window, as matrices."""
    times, basket = np.unique(ts, return_inverse=True)
    if len(times) < 2:
        return None
    owned, column = np.unique(items, return_inverse=True)
    held = np.zeros((len(times), len(owned)), dtype=bool)  # basket x item
    held[basket.reshape(-1), column.reshape(-1)] = True
    so_far = np.cumsum(held, axis=0)[:-1]
    last = np.maximum.accumulate(
        np.where(held, np.arange(len(times))[:, None], -1), axis=0)[:-1]
    bought = so_far > 0
    gap = times[:-1, None] - times[np.maximum(last, 0)]
    span = times[np.maximum(last, 0)] - times[np.argmax(held, axis=0)][None, :]
    baskets = np.broadcast_to(np.arange(1, len(times), dtype=np.float64)[:, None],
                              so_far.shape)
    return (np.broadcast_to(owned, so_far.shape)[bought],
            cells(so_far[bought].astype(np.float64), gap[bought], baskets[bought],
                  span[bought]),
            held[1:][bought])


def _long_user(items: np.ndarray, ts: np.ndarray, cells: Cells, window: int
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """Transition by transition, each from the last `window` lines (as a worker reads)."""
    times, first = np.unique(ts, return_index=True)
    if len(times) < 2:
        return None
    bounds = [*first.tolist(), len(ts)]
    names: list[np.ndarray] = []
    found: list[np.ndarray] = []
    hits: list[np.ndarray] = []
    for k in range(len(times) - 1):
        end = bounds[k + 1]
        p = parse_lines(items[max(0, end - window):end].tolist(),
                        ts[max(0, end - window):end].tolist())
        nxt = set(items[end:bounds[k + 2]].tolist())
        names.append(np.array(p.items, dtype=object))
        found.append(cells(p.counts, times[k] - p.last, np.full(len(p.items), p.baskets),
                           p.last - p.first))
        hits.append(np.fromiter((i in nxt for i in p.items), bool, len(p.items)))
    return np.concatenate(names), np.concatenate(found), np.concatenate(hits)


def _new_items(log: Interactions, code: np.ndarray
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[np.ndarray]]:
    """(time of b_k, k + 1, novelty after b_k, codes of b_{k+1}'s never-bought items) for
    every transition; novelty = distinct items / item-basket pairs so far."""
    order, ts, starts, ends = _by_user(log)
    user_code = code[order]
    when: list[float] = []
    baskets: list[int] = []
    novelty: list[float] = []
    new_items: list[np.ndarray] = []
    for a, b in zip(starts.tolist(), ends.tolist(), strict=True):
        times, first = np.unique(ts[a:b], return_index=True)
        bounds = [*(a + first).tolist(), b]
        owned: set[int] = set()
        pairs = 0
        for k in range(len(times) - 1):
            basket = set(user_code[bounds[k]:bounds[k + 1]].tolist())
            owned |= basket
            pairs += len(basket)
            new = set(user_code[bounds[k + 1]:bounds[k + 2]].tolist()) - owned
            when.append(float(times[k]))
            baskets.append(k + 1)
            novelty.append(len(owned) / pairs)
            new_items.append(np.fromiter(new, np.int64, len(new)))
    return (np.asarray(when, dtype=np.float64), np.asarray(baskets, dtype=np.float64),
            np.asarray(novelty, dtype=np.float64), new_items)


def explore_rates(log: Interactions, basket_edges: Sequence[int], rank_edges: Sequence[int],
                  half_life_s: float, *, novelty_edges: Sequence[float] = (0.0,),
                  refresh_s: float = 3600.0) -> np.ndarray:
    """Per (user bucket, rank bucket): hits of never-bought items / (transitions of that
    user bucket x rank bucket width). A user bucket is (basket count bucket, novelty
    bucket), row = basket bucket x len(novelty_edges) + novelty bucket.

    Ranks come from decayed counts of every event up to the transition's time, refreshed
    at most once per `refresh_s` of log time (a minute-stamped log has too many distinct
    times to rank the catalogue at each).
    """
    edges = np.asarray(rank_edges, dtype=np.int64)
    rows = np.asarray(basket_edges, dtype=np.float64)
    novel = np.asarray(novelty_edges, dtype=np.float64)
    hits = np.zeros((len(rows) * len(novel), len(edges)))
    if len(log) == 0:
        return hits
    _, code = np.unique(log.item.astype(str), return_inverse=True)
    code = code.reshape(-1)
    n_items = int(code.max()) + 1
    when, baskets, novelty, new_items = _new_items(log, code)
    row = (np.searchsorted(rows, baskets, side="right") - 1) * len(novel) + \
        np.searchsorted(novel, novelty, side="right") - 1
    order = np.argsort(log.ts, kind="stable")
    ts, by_time = log.ts[order], code[order]
    counts = np.zeros(n_items)
    rank = np.zeros(n_items, dtype=np.int64)
    counted, previous, ranked_at = 0, None, -np.inf
    for j in np.argsort(when, kind="stable").tolist():
        t = when[j]
        end = int(np.searchsorted(ts, t, side="right"))
        if end > counted:  # count every event up to t (the list is made after b_k)
            if previous is not None:
                counts *= 2.0 ** (-(t - previous) / half_life_s)
            counts += np.bincount(by_time[counted:end], minlength=n_items)
            counted, previous = end, t
        if t - ranked_at >= refresh_s:
            rank[np.argsort(-counts, kind="stable")] = np.arange(n_items)
            ranked_at = t
        if len(new_items[j]):
            np.add.at(hits[row[j]], np.searchsorted(edges, rank[new_items[j]], side="right") - 1,
                      1.0)
    width = np.diff(np.r_[edges, max(n_items, int(edges[-1]) + 1)]).astype(np.float64)
    transitions = np.bincount(row, minlength=len(hits)).astype(np.float64)
    # rows with few transitions lean on the pooled rates (50 pseudo-transitions)
    pooled = hits.sum(axis=0) / max(len(when), 1) / width
    return (hits + 50.0 * pooled * width) / ((transitions[:, None] + 50.0) * width)

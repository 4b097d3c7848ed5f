"""Training examples: (user state strictly before t, item bought at t) for every event.

The user state of an example is exactly what the streaming path would hold when the
previous event was applied: the user's events with a timestamp strictly earlier than the
target's (a basket's lines never see each other), the last `seq_len` of them.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Literal, overload

import numpy as np

from towers.data import Interactions
from towers.features import FeatureSpec, UserBatch, encode_user_arrays
from towers.sequence import UserHistory

__all__ = ["Examples", "build_examples", "latest_histories"]


@dataclass
class Examples:
    user: np.ndarray  # (E,) int64 encoded user
    region: np.ndarray  # (E,) int64
    target: np.ndarray  # (E,) int64 encoded item
    target_ts: np.ndarray  # (E,) float64
    seq_items: np.ndarray  # (E, N) int64, 0-padded on the left
    seq_ts: np.ndarray  # (E, N) float64
    seq_qty: np.ndarray  # (E, N) float32
    now: np.ndarray  # (E,) float64: time of the last event in the sequence

    def __len__(self) -> int:
        return len(self.target)

    def user_batch(self, spec: FeatureSpec, rows: np.ndarray) -> UserBatch:
        return encode_user_arrays(
            spec, user=self.user[rows], region=self.region[rows],
            seq_items=self.seq_items[rows], seq_ts=self.seq_ts[rows],
            seq_qty=self.seq_qty[rows], now=self.now[rows],
        )


@overload
def build_examples(spec: FeatureSpec, log: Interactions, rows: np.ndarray) -> Examples: ...
@overload
def build_examples(spec: FeatureSpec, log: Interactions, rows: np.ndarray, *,
                   return_rows: Literal[True]) -> tuple[Examples, np.ndarray]: ...
def build_examples(spec: FeatureSpec, log: Interactions, rows: np.ndarray, *,
                   return_rows: bool = False) -> Examples | tuple[Examples, np.ndarray]:
    """One example per row of `rows` whose user has at least one strictly earlier event.

    `rows` indexes `log` (typically train rows); the history of each example comes from the
    same rows only, so no later data leaks into training. With `return_rows`, also the
    index into `log` of each example's target row.
    """
    n = spec.settings.seq_len
    sub = log.take(np.asarray(rows))
    users = sub.user.astype(str)
    order = np.lexsort((np.arange(len(sub)), sub.ts, users))  # by user, ts, row
    u, ts = users[order], sub.ts[order]
    items = spec.items.encode(sub.item[order])
    qty = sub.quantity[order].astype(np.float32)
    pos = np.arange(len(order))
    new_user = np.r_[True, u[1:] != u[:-1]]
    new_group = new_user | np.r_[True, ts[1:] != ts[:-1]]
    user_start = np.maximum.accumulate(np.where(new_user, pos, 0))
    group_start = np.maximum.accumulate(np.where(new_group, pos, 0))
    keep = group_start > user_start  # at least one strictly earlier event
    g, s = group_start[keep], user_start[keep]
    idx = g[:, None] - n + np.arange(n)[None, :]  # (E, N) positions of the history
    valid = idx >= s[:, None]
    idx = np.where(valid, idx, 0)
    seq_items = np.where(valid, items[idx], 0)
    seq_ts = np.where(valid, ts[idx], 0.0)
    seq_qty = np.where(valid, qty[idx], 0.0).astype(np.float32)
    examples = Examples(
        user=spec.users.encode(u[keep]), region=spec.regions.encode(sub.region[order][keep]),
        target=items[keep], target_ts=ts[keep], seq_items=seq_items, seq_ts=seq_ts,
        seq_qty=seq_qty, now=ts[g - 1],
    )
    if return_rows:
        return examples, np.asarray(rows)[order][keep]
    return examples


def latest_histories(
    log: Interactions, rows: np.ndarray, *, max_len: int
) -> dict[str, UserHistory]:
    """Each user's state after the given rows (in time order): the last `max_len` events."""
    sub = log.take(np.asarray(rows))
    order = np.lexsort((np.arange(len(sub)), sub.ts, sub.user.astype(str)))
    out: dict[str, UserHistory] = {}
    users, items, ts = sub.user[order], sub.item[order], sub.ts[order]
    qty, kinds, regions = sub.quantity[order], sub.kind[order], sub.region[order]
    bounds = np.flatnonzero(np.r_[True, users[1:] != users[:-1], True])
    for a, b in itertools.pairwise(bounds.tolist()):
        a = max(a, b - max_len)
        hist = UserHistory(user_id=str(users[a]), max_len=max_len, items=items[a:b].tolist(),
                           ts=ts[a:b].tolist(), quantity=qty[a:b].astype(float).tolist(),
                           kind=kinds[a:b].tolist(), region=str(regions[b - 1]))
        out[hist.user_id] = hist
    return out

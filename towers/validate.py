"""Validation metrics used for early stopping and model selection.

`stream_hit_rate` is the streaming protocol of docs/evaluation.md restricted to the two-tower
channel: each target event is ranked from the user's state strictly before it, which is
exactly a training example built over history + target rows. It needs no event loop, so
it is cheap enough to run after every epoch.
"""

from __future__ import annotations

from bisect import bisect_left

import numpy as np

from towers.data import Dataset, Interactions
from towers.examples import build_examples
from towers.features import FeatureSpec, ItemTable
from towers.model import TwoTower

__all__ = ["stream_hit_rate"]


def stream_hit_rate(model: TwoTower, spec: FeatureSpec, item_vecs: np.ndarray,
                    items: ItemTable, dataset: Dataset, history_rows: np.ndarray,
                    target_rows: np.ndarray, *, k: int, chunk: int = 1024) -> float:
    """Share of target events whose item is in the top-k ranked from the state before them.

    Each (user, item, ts) counts once; with the seen filter, events whose item the user had
    before are skipped and such items are never ranked, as the streaming protocol says.
    """
    log = dataset.interactions
    rows = np.concatenate([history_rows, target_rows])
    is_target = np.zeros(len(log), dtype=bool)
    is_target[target_rows] = True
    ex, source = build_examples(spec, log, rows, return_rows=True)
    keep = is_target[source]
    keep &= _first_per_user_item_ts(log, source)
    seen = _seen_before(log, rows, source) if dataset.seen_filter else None
    if seen is not None:
        keep &= np.array([log.item[r] not in s for r, s in zip(source, seen, strict=True)])
    idx = np.flatnonzero(keep)
    if len(idx) == 0:
        return 0.0
    offset = 1 + spec.items.n_oov
    pos = {item: j for j, item in enumerate(items.ids.tolist())}
    hits = 0
    for a in range(0, len(idx), chunk):
        part = idx[a:a + chunk]
        scores = model.embed_users(ex.user_batch(spec, part)) @ item_vecs.T  # (b, M)
        if seen is not None:
            for r, e in enumerate(part):
                scores[r, [pos[i] for i in seen[e] if i in pos]] = -np.inf
        kk = min(k, scores.shape[1])
        top = np.argpartition(-scores, kk - 1, axis=1)[:, :kk]
        hits += int((top == (ex.target[part] - offset)[:, None]).any(axis=1).sum())
    return hits / len(idx)


def _first_per_user_item_ts(log: Interactions, source: np.ndarray) -> np.ndarray:
    """True for the first of repeated (user, item, ts) lines: a basket line counts once."""
    seen: set[tuple[str, str, float]] = set()
    out = np.zeros(len(source), dtype=bool)
    users, items, ts = log.user, log.item, log.ts
    for j, r in enumerate(source):
        key = (users[r], items[r], ts[r])
        if key not in seen:
            seen.add(key)
            out[j] = True
    return out


def _seen_before(log: Interactions, rows: np.ndarray, source: np.ndarray) -> list[list[str]]:
    """For each example, the items its user had strictly before the example's time."""
    users, items, ts = log.user, log.item, log.ts
    by_user: dict[str, tuple[list[float], list[str]]] = {}
    for r in rows[np.argsort(ts[rows], kind="stable")].tolist():
        times, had = by_user.setdefault(users[r], ([], []))
        times.append(ts[r])
        had.append(items[r])
    out = []
    for r in source.tolist():  # a prefix of the user's time-ordered items
        times, had = by_user[users[r]]
        out.append(had[:bisect_left(times, ts[r])])
    return out

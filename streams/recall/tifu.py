"""TIFU-KNN (Hu et al., SIGIR 2020), the strongest simple next-basket method: a baseline.

A user is a vector over items built from their baskets in time order: the baskets are cut
into `groups` groups of consecutive baskets; inside a group each basket's multi-hot vector
is weighted by `within_decay` per later basket and averaged; the groups are then weighted
by `group_decay` per later group and averaged. The score of an item for a user is
`alpha * own + (1 - alpha) * mean of the k nearest users' vectors` (Euclidean distance).

The neighbours' vectors form a table built at the boundary (`fit`); the query user's own
vector is computed from their history at each call, so it is live. The defaults are the
published Ta-Feng settings (k 300, within 0.9, between 0.7, alpha 0.7, 7 groups).
Distances are exact: dot products go through an item -> users inverted list.
"""

from __future__ import annotations

import logging
from collections.abc import Container, Sequence
from dataclasses import dataclass

import numpy as np

from streams.errors import SettingsError
from streams.recall.channels import Candidates, ItemIds, first_k
from streams.recall.history import InMemoryHistories
from towers.data import Dataset, Interactions
from towers.sequence import UserHistory

logger = logging.getLogger(__name__)

__all__ = ["TifuConfig", "TifuKNNChannel", "tifu_vector"]


@dataclass(frozen=True)
class TifuConfig:
    neighbours: int = 300  # k nearest users
    within_decay: float = 0.9  # r_b: weight per later basket inside a group
    group_decay: float = 0.7  # r_g: weight per later group
    groups: int = 7  # m: groups the basket sequence is cut into
    alpha: float = 0.7  # own vector's share of the score

    def __post_init__(self) -> None:
        if self.neighbours < 1 or self.groups < 1:
            raise SettingsError("tifu-knn: neighbours and groups must be at least 1")
        if not (0 < self.within_decay <= 1 and 0 < self.group_decay <= 1
                and 0 <= self.alpha <= 1):
            raise SettingsError("tifu-knn: decays must lie in (0, 1], alpha in [0, 1]")


def tifu_vector(history: UserHistory, config: TifuConfig) -> dict[str, float]:
    """The user's TIFU vector as item -> weight (baskets = the history's distinct times)."""
    baskets: dict[float, dict[str, None]] = {}
    for item, t in zip(history.items, history.ts, strict=True):
        baskets.setdefault(t, {})[item] = None
    ordered = [list(baskets[t]) for t in sorted(baskets)]
    if not ordered:
        return {}
    groups = [g for g in np.array_split(np.arange(len(ordered)), config.groups) if len(g)]
    out: dict[str, float] = {}
    for j, group in enumerate(groups):
        g_weight = config.group_decay ** (len(groups) - 1 - j) / len(groups)
        for i, b in enumerate(group.tolist()):
            w = g_weight * config.within_decay ** (len(group) - 1 - i) / len(group)
            for item in ordered[b]:
                out[item] = out.get(item, 0.0) + w
    return out


class TifuKNNChannel:
    """TIFU-KNN as a recall channel (see the module docstring)."""

    def __init__(self, config: TifuConfig | None = None, *, name: str = "tifu_knn",
                 max_len: int = 200) -> None:
        self.config = config or TifuConfig()
        self.name = name
        self.max_len = max_len
        self._items = ItemIds()
        self._users: list[str] = []
        self._row_of: dict[str, int] = {}
        self._indptr: np.ndarray = np.zeros(1, np.int64)  # user rows (CSR)
        self._cols: np.ndarray = np.zeros(0, np.int64)
        self._vals: np.ndarray = np.zeros(0, np.float64)
        self._by_item: list[tuple[np.ndarray, np.ndarray]] = []  # item -> (rows, values)
        self._norm2: np.ndarray = np.zeros(0, np.float64)

    def fit(self, dataset: Dataset, history: Interactions) -> None:
        histories = InMemoryHistories.from_interactions(history, max_len=self.max_len)
        self._items = ItemIds()
        self._users = list(histories)
        self._row_of = {u: r for r, u in enumerate(self._users)}
        cols: list[np.ndarray] = []
        vals: list[np.ndarray] = []
        for user in self._users:
            vector = tifu_vector(histories.get(user) or UserHistory(user), self.config)
            cols.append(np.fromiter((self._items.add(i) for i in vector), np.int64,
                                    len(vector)))
            vals.append(np.fromiter(vector.values(), np.float64, len(vector)))
        lengths = np.array([len(c) for c in cols], dtype=np.int64)
        self._indptr = np.r_[0, np.cumsum(lengths)].astype(np.int64)
        self._cols = np.concatenate(cols) if cols else np.zeros(0, np.int64)
        self._vals = np.concatenate(vals) if vals else np.zeros(0, np.float64)
        rows = np.repeat(np.arange(len(self._users)), lengths)
        order = np.argsort(self._cols, kind="stable")
        starts = np.searchsorted(self._cols[order], np.arange(len(self._items) + 1))
        self._by_item = [(rows[order[a:b]], self._vals[order[a:b]])
                         for a, b in zip(starts[:-1].tolist(), starts[1:].tolist(),
                                         strict=True)]
        self._norm2 = np.bincount(rows, self._vals ** 2, len(self._users))
        logger.info("tifu-knn: %s user vectors over %s items", len(self._users),
                    len(self._items))

    def observe(self, events: Interactions) -> None:
        return None  # the table is frozen at the boundary; query vectors are live

    def _scores(self, query: dict[str, float], user: str) -> np.ndarray:
        """alpha * own + (1 - alpha) * mean of the k nearest table users, over table items
        (the user's items unknown to the table are added by the caller)."""
        a = self.config.alpha
        own = np.zeros(len(self._items))
        codes = [(self._items.index.get(item), w) for item, w in query.items()]
        dots = np.zeros(len(self._users))
        for code, w in codes:
            if code is not None:
                own[code] = w
                rows, values = self._by_item[code]
                dots[rows] += w * values  # rows of one item are distinct
        dist = self._norm2 - 2.0 * dots + sum(w * w for _, w in codes)
        row = self._row_of.get(user)
        if row is not None:
            dist[row] = np.inf  # never one's own neighbour
        k = min(self.config.neighbours, len(self._users) - (row is not None))
        if k <= 0:
            return a * own
        near = np.sort(np.argpartition(dist, k - 1)[:k])
        starts, ends = self._indptr[near], self._indptr[near + 1]
        lengths = ends - starts
        # every stored entry of the chosen rows, without one arange per row
        picked = np.repeat(starts - np.r_[0, np.cumsum(lengths)[:-1]], lengths) + \
            np.arange(int(lengths.sum()))
        mean = np.bincount(self._cols[picked], self._vals[picked], len(self._items)) / k
        return a * own + (1 - a) * mean

    def candidates(
        self, histories: Sequence[UserHistory | None], *, k: int, now: float,
        exclude: Sequence[Container[str]] | None = None,
    ) -> list[Candidates]:
        ids = self._items.ids()
        out: list[Candidates] = []
        for j, history in enumerate(histories):
            if history is None or len(history) == 0 or not self._users:
                out.append([])
                continue
            own = tifu_vector(history, self.config)
            score = self._scores(own, history.user_id)
            unknown = [(i, self.config.alpha * w) for i, w in own.items()
                       if i not in self._items.index]
            nz = np.flatnonzero(score)
            order = nz[np.argsort(-score[nz], kind="stable")]
            names = np.concatenate([ids[order], np.array([i for i, _ in unknown], object)])
            values = np.concatenate([score[order], np.array([w for _, w in unknown])])
            ranked = np.argsort(-values, kind="stable")
            out.append(first_k(names[ranked], values[ranked], k,
                               exclude[j] if exclude is not None else None))
        return out

"""The recall step: channels + merge + filters, shared by the evaluator and the workers.

`Recaller.rank` takes histories and seen sets from any store (the workers read them from
Redis); `Recaller.recall` reads them from an `InMemoryHistories`. Users without history
get the fallback channel (popularity); with `fill`, lists the channels cannot fill to K
are topped up from the fallback, below every merged item.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence, Set
from dataclasses import dataclass, field

from streams.recall.channels import Candidates, Channel
from streams.recall.history import InMemoryHistories
from streams.recall.merge import MergeConfig, Merged, merge
from towers.data import ContextRecord, Dataset, Interactions
from towers.sequence import UserHistory

logger = logging.getLogger(__name__)

__all__ = ["Filters", "RecallList", "Recaller", "RecallerSystem"]

_NONE: frozenset[str] = frozenset()


@dataclass(frozen=True)
class RecallList:
    user_id: str
    items: list[str]
    scores: list[float]
    channels: list[str]  # per item, the channel credited with it


@dataclass(frozen=True)
class Filters:
    seen: bool = False  # drop items the user ever had
    unavailable: Set[str] = _NONE  # out of stock / delisted everywhere
    allow: Mapping[str, Set[str]] = field(default_factory=dict)  # region -> only these
    deny: Mapping[str, Set[str]] = field(default_factory=dict)  # region ("" = all) -> never


class Blocked:
    """Container answering `item in blocked` for one user's filters."""

    __slots__ = ("allow", "deny", "deny_all", "seen", "unavailable")

    def __init__(self, filters: Filters, region: str, seen: Set[str],
                 unavailable: Set[str]) -> None:
        self.seen = seen if filters.seen else _NONE
        self.unavailable = unavailable
        self.deny = filters.deny.get(region, _NONE) if region else _NONE
        self.deny_all = filters.deny.get("", _NONE)
        self.allow = filters.allow.get(region) if region else None

    def __bool__(self) -> bool:
        """False when nothing is blocked (channels then skip the per-item test)."""
        return bool(self.seen or self.unavailable or self.deny or self.deny_all
                    or self.allow is not None)

    def __contains__(self, item: object) -> bool:
        return (item in self.seen or item in self.unavailable or item in self.deny
                or item in self.deny_all or (self.allow is not None and item not in self.allow))


class Recaller:
    """Histories + channels + merge + filters -> one top-K `RecallList` per user."""

    def __init__(self, *, channels: Sequence[Channel], fallback: Channel | None = None,
                 histories: InMemoryHistories | None = None, merge: MergeConfig | None = None,
                 filters: Filters | None = None, fill: bool = True) -> None:
        assert channels or fallback is not None, "a recaller needs at least one channel"
        self.channels = list(channels)
        self.fallback = fallback
        self.histories = histories if histories is not None else InMemoryHistories()
        self.merge_config = merge or MergeConfig()
        self.filters = filters or Filters()
        self.fill = fill and fallback is not None and all(c is not fallback for c in channels)

    def recall(self, users: Sequence[str], *, k: int, now: float) -> list[RecallList]:
        """Lists for `users` from the in-memory histories."""
        seen = self.histories.seen_many(users) if self.filters.seen else None
        return self.rank(users, self.histories.many(users), seen, k=k, now=now)

    def rank(self, users: Sequence[str], histories: Sequence[UserHistory | None],
             seen: Sequence[Set[str]] | None, *, k: int, now: float,
             unavailable: Set[str] | None = None) -> list[RecallList]:
        """Lists for users whose histories (and seen sets) come from any store."""
        gone = self.filters.unavailable if unavailable is None else unavailable
        blocked = [Blocked(self.filters, h.region if h is not None else "",
                           seen[j] if seen is not None else _NONE, gone)
                   for j, h in enumerate(histories)]
        warm = [j for j, h in enumerate(histories) if h is not None and len(h) > 0]
        cold = [j for j, h in enumerate(histories) if h is None or len(h) == 0]
        out: dict[int, RecallList] = {}  # every position is warm or cold
        for j, merged in zip(warm, self._warm([histories[j] for j in warm],
                                              [blocked[j] for j in warm], k, now), strict=True):
            out[j] = RecallList(users[j], merged.items, merged.scores, merged.channels)
        cands = self._ask(self.fallback, [histories[j] for j in cold],
                          [blocked[j] for j in cold], k, now)
        name = self.fallback.name if self.fallback is not None else ""
        for j, c in zip(cold, cands, strict=True):
            out[j] = RecallList(users[j], [i for i, _ in c], [s for _, s in c], [name] * len(c))
        return [out[j] for j in range(len(users))]

    def _warm(self, histories: list[UserHistory | None], blocked: list[Blocked], k: int,
              now: float) -> list[Merged]:
        per_channel = [(ch.name, ch.candidates(histories, k=k, now=now, exclude=blocked))
                       for ch in self.channels]
        if len(per_channel) == 1:  # nothing to fuse: keep the channel's own scores
            name, lists = per_channel[0]
            merged = [Merged([i for i, _ in c], [s for _, s in c], [name] * len(c))
                      for c in lists]
        else:
            merged = [merge([(name, lists[j]) for name, lists in per_channel], k=k,
                            config=self.merge_config) for j in range(len(histories))]
        fallback = self.fallback
        if not self.fill or fallback is None:  # (`fill` is only ever set with a fallback)
            return merged
        short = [j for j, m in enumerate(merged) if len(m.items) < k]
        if short:
            extra = self._ask(fallback, [histories[j] for j in short],
                              [blocked[j] for j in short], 2 * k, now)
            for j, cands in zip(short, extra, strict=True):
                merged[j] = _top_up(merged[j], cands, k, fallback.name)
        return merged

    @staticmethod
    def _ask(channel: Channel | None, histories: list[UserHistory | None],
             blocked: list[Blocked], k: int, now: float) -> list[Candidates]:
        if channel is None or not histories:
            return [[] for _ in histories]
        return channel.candidates(histories, k=k, now=now, exclude=blocked)


def _top_up(merged: Merged, cands: Candidates, k: int, name: str) -> Merged:
    """Append fallback items below the merged ones (score: half the last, scaled down)."""
    have = set(merged.items)
    extra = [(i, s) for i, s in cands if i not in have][: k - len(merged.items)]
    if not extra:
        return merged
    floor = 0.5 * (merged.scores[-1] if merged.scores else 1.0)
    best = max(extra[0][1], 1e-300)
    return Merged(items=merged.items + [i for i, _ in extra],
                  scores=merged.scores + [floor * s / best for _, s in extra],
                  channels=merged.channels + [name] * len(extra))


class RecallerSystem:
    """An evaluation `RecallSystem` made of a `Recaller` over in-memory histories."""

    def __init__(self, *, name: str, channels: Sequence[Channel],
                 fallback: Channel | None = None, merge: MergeConfig | None = None,
                 frozen: bool = False, seen_filter: bool | None = None, fill: bool = True,
                 max_len: int = 200) -> None:
        self.name = name
        self.frozen = frozen  # lists are computed once at the boundary (a nightly batch)
        self._channels = list(channels)
        self._fallback = fallback
        self._merge = merge
        self._seen_filter = seen_filter  # None: the data set's setting
        self._fill = fill
        self._max_len = max_len
        self.recaller = Recaller(channels=self._channels, fallback=fallback, merge=merge)

    def _all_channels(self) -> list[Channel]:
        extra = [self._fallback] if self._fallback is not None else []
        return self._channels + [c for c in extra if all(c is not x for x in self._channels)]

    def fit(self, dataset: Dataset, history: Interactions) -> None:
        seen = dataset.seen_filter if self._seen_filter is None else self._seen_filter
        histories = InMemoryHistories.from_interactions(history, max_len=self._max_len)
        for channel in self._all_channels():
            channel.fit(dataset, history)
        self.recaller = Recaller(channels=self._channels, fallback=self._fallback,
                                 histories=histories, merge=self._merge,
                                 filters=Filters(seen=seen), fill=self._fill)
        logger.info("%s: fitted on %s rows, %s users (seen filter %s)", self.name,
                    len(history), len(histories), seen)

    def observe(self, events: Interactions) -> None:
        self.recaller.histories.apply(events)
        for channel in self._all_channels():
            channel.observe(events)

    def observe_context(self, records: Sequence[ContextRecord]) -> None:
        """Stock reports change which items may be recalled."""
        gone = set(self.recaller.filters.unavailable)
        for record in records:
            for item, in_stock in record.stock.items():
                (gone.discard if in_stock else gone.add)(item)
        filters = self.recaller.filters
        self.recaller.filters = Filters(seen=filters.seen, unavailable=frozenset(gone),
                                        allow=filters.allow, deny=filters.deny)

    def recall(self, users: Sequence[str], *, k: int, now: float) -> list[list[str]]:
        return [r.items for r in self.recaller.recall(users, k=k, now=now)]

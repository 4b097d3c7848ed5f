"""The recall engine of a worker: state in, merged top-K lists out, no Kafka.

Per batch: apply the interactions to the user state (idempotent, one atomic step per
event) and to the live popularity board, then compute the lists of the batch's users
in one go: one read of their histories, one batched user-tower forward and one batched
index search (inside the two-tower channel), the repeat and popularity channels, merge
and filters (`streams.recall.recaller.Recaller`, the code the in-process evaluator runs).

The live model is one immutable `LiveModel` (version + the channel holding that
version's user tower and index). A batch reads it once, so every list of a batch comes
from one version and names it, whatever swap happens meanwhile.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence, Set
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

import numpy as np

from streams.models.live import LiveModel
from streams.recall.channels import Channel, RepeatChannel
from streams.recall.merge import MergeConfig
from streams.recall.profiles import PROFILES, Profile, channels_of
from streams.recall.ranked_popularity import RankedPopularity, regions_of
from streams.recall.recaller import Filters, Recaller, RecallList
from streams.state.contract import InteractionUpdate, UserFeatures, UserStateStore
from streams.state.popularity import PopularityBoard
from towers.sequence import UserHistory

if TYPE_CHECKING:  # the records are faust.Record classes: the engine itself loads no faust
    from streams.worker.records import Interaction

__all__ = ["EngineConfig", "RecallEngine", "RecallInput", "UserRecall"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class EngineConfig:
    profile: Profile = PROFILES["retail"]  # channels, their settings, fusion, seen filter
    top_k: int = 100  # length of every list
    history_len: int = 200  # newest events read per user
    popularity_depth: int = 1000  # best items read from the board per batch
    deny: Mapping[str, Set[str]] = field(default_factory=dict)  # region ("" = all) -> items
    allow: Mapping[str, Set[str]] = field(default_factory=dict)  # region -> only these


@dataclass(frozen=True)
class UserRecall:
    recall: RecallList
    version: str
    features: UserFeatures | None  # provenance: the last applied event
    embedding: np.ndarray | None = None  # the user tower's output the list was searched with


class RecallEngine:
    """Applies events to the state and computes merged recall lists for users."""

    def __init__(self, store: UserStateStore, board: PopularityBoard, *,
                 config: EngineConfig | None = None, model: LiveModel | None = None) -> None:
        self.store = store
        self.board = board
        self.config = config or EngineConfig()
        self.model = model
        self.repeat = RepeatChannel(self.config.profile.repeat)

    def swap(self, model: LiveModel | None) -> None:
        """Make another model live; batches already running keep the one they read."""
        self.model = model
        logger.info("live model: %s", model.version if model else "none")

    async def apply(self, events: Sequence[Interaction]) -> list[bool]:
        """Apply interactions; False for duplicates (already applied: nothing changes)."""
        updates = [InteractionUpdate(event_id=e.event_id, user_id=e.user_id, item_id=e.item_id,
                                     ts=e.ts, quantity=e.quantity, kind=e.type,
                                     region=e.region) for e in events]
        applied = await self.store.apply_interactions(updates)
        # all of them: the board skips ids it counted, so a batch retried after a crash
        # between these two steps still counts every event once
        await self.board.add([e.event_id for e in events], [e.item_id for e in events],
                             [e.region for e in events], [e.ts for e in events],
                             [e.quantity for e in events])
        return applied

    async def recall(self, users: Sequence[str], *, now: float) -> list[UserRecall]:
        """Fresh lists for distinct `users`, computed at event time `now`."""
        snapshot = await self.read(users, now=now)
        # torch and faiss release the GIL: the event loop keeps serving meanwhile
        return await asyncio.to_thread(snapshot.compute)

    async def read(self, users: Sequence[str], *, now: float) -> RecallInput:
        """Everything the lists of `users` depend on, read from the state now.

        Computing the lists (`RecallInput.compute`) needs no further reads, so a caller
        may apply the next batch's events while they are computed.
        """
        cfg = self.config
        model = self.model  # read once: one version for the whole batch
        recipe = model.recipe if model is not None else None
        profile = cfg.profile if recipe is None else _with_recipe(cfg.profile, recipe.profile)
        histories = await self.store.histories(users, last=cfg.history_len)
        features = await self.store.features(users)
        seen = await self.store.seen_items(users) if profile.seen_filter else None
        unavailable = await self.store.unavailable_items()
        rankings = {"": await self.board.ranking("", n=cfg.popularity_depth)}
        region_weight = profile.popularity.region_weight
        if region_weight > 0:
            for region in regions_of(histories):
                rankings[region] = await self.board.ranking(region, n=cfg.popularity_depth)
        popularity = RankedPopularity(rankings, region_weight=region_weight)
        # the tower goes first in `compute`, which embeds the batch's users once
        channels = channels_of(profile, tower=None, itemcf=model.extra if model else (),
                               popularity=popularity,
                               repeat=self.repeat if recipe is None else None,
                               repurchase=recipe.repurchase if recipe is not None else None)
        return RecallInput(tower=model.channel if model is not None else None,
                           channels=channels, fallback=popularity, merge=profile.merge,
                           filters=Filters(seen=profile.seen_filter, deny=cfg.deny,
                                           allow=cfg.allow),
                           users=list(users), histories=histories, features=features,
                           seen=seen, unavailable=unavailable, k=cfg.top_k, now=now,
                           version=model.version if model is not None else "")


def _with_recipe(configured: Profile, chosen: Profile) -> Profile:
    """A checkpoint's recipe replaces the configured profile; a seen filter the worker is
    configured with stays on (the stricter wins). The popularity board keeps the worker's
    half-life: it is shared state, counted since the worker's first start."""
    if configured.seen_filter and not chosen.seen_filter:
        return replace(chosen, seen_filter=True)
    return chosen


@dataclass(frozen=True)
class RecallInput:
    """The state a batch's lists are computed from, read in one go (`RecallEngine.read`)."""

    tower: Channel | None  # the live model's two-tower channel
    channels: list[Channel]  # the others, in fusion order after the tower
    fallback: Channel
    merge: MergeConfig
    filters: Filters
    users: list[str]
    histories: list[UserHistory | None]
    features: list[UserFeatures | None]
    seen: list[set[str]] | None
    unavailable: set[str]
    k: int
    now: float
    version: str

    def compute(self) -> list[UserRecall]:
        """The merged lists and the users' embeddings (no I/O: runs in a worker thread)."""
        tower, batch = self.tower, None
        if tower is not None:  # torch only with a model
            from streams.recall.two_tower import BatchEmbeddings, TwoTowerChannel

            if isinstance(tower, TwoTowerChannel):  # embedded once, kept for the cache
                tower = batch = BatchEmbeddings(tower, self.histories)
        channels = ([tower] if tower is not None else []) + self.channels
        recaller = Recaller(channels=channels, fallback=self.fallback, merge=self.merge,
                            filters=self.filters)
        lists = recaller.rank(self.users, self.histories, self.seen, k=self.k, now=self.now,
                              unavailable=self.unavailable)
        vectors: list[np.ndarray | None] = [None] * len(self.users)
        if batch is not None:
            for n, j in enumerate(batch.rows):
                vectors[j] = batch.vectors[n]
        return [UserRecall(r, self.version, f, v)
                for r, f, v in zip(lists, self.features, vectors, strict=True)]

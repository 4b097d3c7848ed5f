"""The recall systems that use the towers: the two-tower channel alone, and `nearline`.

`nearline` is what a worker serves: the two-tower channel, the item-to-item table
built offline with the towers, the user's own recency-weighted items and live
popularity, merged by weighted reciprocal-rank fusion. The settings per profile (films:
MovieLens-like, seen filter on; retail: repeat purchases) come from the baselines'
profiles, which were tuned on the valid split; `MERGES` holds the fusion weights.
"""

from __future__ import annotations

from dataclasses import replace

from streams.baselines import PROFILES, baseline_systems
from streams.channels import PopularityChannel, RepeatChannel
from streams.itemcf import ItemCFChannel
from streams.merge import MergeConfig
from streams.recall import RecallerSystem
from streams.two_tower import TowerBundle, TwoTowerChannel
from towers.data import Dataset, Interactions

__all__ = ["MERGES", "evaluation_systems", "itemcf_table", "nearline_system", "profile_of",
           "two_tower_system"]

MERGES = {
    "films": MergeConfig(method="rrf", rrf_k=60.0,
                         weights={"two_tower": 1.0, "itemcf": 1.0, "repeat": 0.0,
                                  "popularity": 0.3}),
    "retail": MergeConfig(method="rrf", rrf_k=60.0,
                          weights={"two_tower": 0.6, "itemcf": 0.4, "repeat": 1.5,
                                   "popularity": 0.3}),
}


def profile_of(dataset: Dataset) -> str:
    return "films" if dataset.seen_filter else "retail"


def itemcf_table(dataset: Dataset, history: Interactions, *, profile: str | None = None
                 ) -> ItemCFChannel:
    """The frozen item-to-item channel fitted on `history` (what checkpoints carry)."""
    chosen = PROFILES[profile or profile_of(dataset)]
    channel = ItemCFChannel(replace(chosen.itemcf, live=False))
    channel.fit(dataset, history)
    return channel


def two_tower_system(dataset: Dataset, bundle: TowerBundle, *, profile: str | None = None
                     ) -> RecallerSystem:
    chosen = PROFILES[profile or profile_of(dataset)]
    return RecallerSystem(name="two_tower", channels=[TwoTowerChannel(bundle)],
                          fallback=PopularityChannel(replace(chosen.popularity, live=True)))


def nearline_system(dataset: Dataset, bundle: TowerBundle, *, profile: str | None = None
                    ) -> RecallerSystem:
    """The merged recall the workers serve, evaluated in process."""
    name = profile or profile_of(dataset)
    chosen = PROFILES[name]
    popularity = PopularityChannel(replace(chosen.popularity, live=True))
    channels = [TwoTowerChannel(bundle), ItemCFChannel(replace(chosen.itemcf, live=False)),
                RepeatChannel(chosen.repeat), popularity]
    return RecallerSystem(name="nearline", channels=channels, fallback=popularity,
                          merge=MERGES[name])


def evaluation_systems(dataset: Dataset, *, bundle: TowerBundle | None = None
                       ) -> list[RecallerSystem]:
    """The baselines, plus two_tower and nearline when a model is given."""
    systems = baseline_systems(dataset)
    if bundle is not None:
        systems += [two_tower_system(dataset, bundle), nearline_system(dataset, bundle)]
    return systems

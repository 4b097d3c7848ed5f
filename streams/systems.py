"""The recall systems that use the towers: the two-tower channel alone, and `nearline`.

`nearline` is what a worker serves: the two-tower channel, the item-to-item table built
offline with the towers (frozen), the user's own recency-weighted items (repeat) and live
popularity, merged by weighted reciprocal-rank fusion (`MERGES`), plus the `returning`
channel (`streams.returning`: popularity for users back after a break).

How the settings were chosen: towers trained on the train window only (early stopping
on valid), then every channel's top-100 candidates were recorded along the streaming
replay of the valid window and at the train/valid boundary (state = train, targets =
valid, `streams.evaluation.EvalSplit.for_tuning`), and fusion weights, `rrf_k` and
`away_s` were scored on those recordings: streaming HitRate@50 first, offline
HitRate@50 not below popularity's. Never on test. Channel settings (popularity
half-life, item-CF neighbours, repeat half-life) are the baselines' `PROFILES`, tuned
the same way.
- films (MovieLens, seen filter on): the two-tower channel leads; item-CF adds a little
  at weight 0.3 (sharper fusion, rrf_k 10, suits a sharp leader); repeat is off (seen
  items are filtered anyway); popularity only for returning users, whose lists it
  dominates (weight 2).
- retail (Ta-Feng, seen filter off): repeat purchase leads. Any fusion that let the
  two-tower or item-CF lists reorder the user's own items lost to repeat alone (valid
  streaming HitRate@50 0.158-0.166 against 0.177), and as fillers below the user's items
  they did no better than live popularity, so the repeat list is kept as it is and the
  rest of the K places go mostly by popularity. The returning channel changed nothing.
"""

from __future__ import annotations

from dataclasses import replace

from streams.baselines import PROFILES, baseline_systems
from streams.channels import PopularityChannel, RepeatChannel
from streams.itemcf import ItemCFChannel
from streams.merge import MergeConfig
from streams.recall import RecallerSystem
from streams.returning import RETURNING, ReturningPopularity
from streams.two_tower import TowerBundle, TwoTowerChannel
from towers.data import Dataset, Interactions

__all__ = ["MERGES", "evaluation_systems", "itemcf_table", "nearline_system", "profile_of",
           "two_tower_system"]

MERGES = {
    "films": MergeConfig(method="rrf", rrf_k=10.0,
                         weights={"two_tower": 1.0, "itemcf": 0.3, "repeat": 0.0,
                                  "popularity": 0.0, "returning": 2.0}),
    # repeat leads outright: at weight 100 no sum of the others (<= 0.12 / rrf_k) reorders or
    # displaces its items; popularity, then the towers and item-CF, fill the places left
    "retail": MergeConfig(method="rrf", rrf_k=60.0,
                          weights={"repeat": 100.0, "popularity": 0.1, "two_tower": 0.01,
                                   "itemcf": 0.01, "returning": 0.0}),
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
    """The two-tower channel alone; live popularity serves users without history."""
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
                RepeatChannel(chosen.repeat), popularity,
                ReturningPopularity(popularity, RETURNING[name])]
    return RecallerSystem(name="nearline", channels=channels, fallback=popularity,
                          merge=MERGES[name])


def evaluation_systems(dataset: Dataset, *, bundle: TowerBundle | None = None
                       ) -> list[RecallerSystem]:
    """The baselines, plus two_tower and nearline when a model is given."""
    systems = baseline_systems(dataset)
    if bundle is not None:
        systems += [two_tower_system(dataset, bundle), nearline_system(dataset, bundle)]
    return systems

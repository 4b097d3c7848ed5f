"""The non-neural baseline systems every evaluation run reports.

Their settings are the given profile's channel settings: a checkpoint's recipe, whose
repeat setting was chosen on the valid window of the data at hand
(`streams.evaluation.tuning`), or the data set's starting profile. Lists shorter than K
are filled from live popularity, which also serves users without history.
"""

from __future__ import annotations

from dataclasses import replace

from streams.recall.channels import PopularityChannel, RepeatChannel
from streams.recall.itemcf import ItemCFChannel
from streams.recall.profiles import Profile, profile_for
from streams.recall.recaller import RecallerSystem
from streams.recall.tifu import TifuKNNChannel
from towers.data import Dataset

__all__ = ["baseline_systems"]


def baseline_systems(dataset: Dataset, *, profile: Profile | None = None
                     ) -> list[RecallerSystem]:
    """The baselines, with the data set's profile unless one is given.

    popularity: counts and lists frozen at the boundary (a nightly batch);
    popularity_live: counts follow the events; repeat: the user's own items;
    itemcf: neighbour table frozen at the boundary, user histories live;
    itemcf_live: the table follows the events too;
    tifu_knn (retail, seen filter off): TIFU-KNN with its published settings, the user
    table frozen at the boundary, the query user's vector live.
    """
    chosen = profile or profile_for(dataset)

    def pop(*, live: bool) -> PopularityChannel:
        return PopularityChannel(replace(chosen.popularity, live=live))

    def itemcf(*, live: bool) -> ItemCFChannel:
        return ItemCFChannel(replace(chosen.itemcf, live=live))

    frozen_pop, live_pop = pop(live=False), pop(live=True)
    systems = [
        RecallerSystem(name="popularity", channels=[frozen_pop], fallback=frozen_pop,
                       frozen=True),
        RecallerSystem(name="popularity_live", channels=[live_pop], fallback=live_pop),
        RecallerSystem(name="repeat", channels=[RepeatChannel(chosen.repeat)],
                       fallback=pop(live=True)),
        RecallerSystem(name="itemcf", channels=[itemcf(live=False)], fallback=pop(live=True)),
        RecallerSystem(name="itemcf_live", channels=[itemcf(live=True)],
                       fallback=pop(live=True)),
    ]
    if not dataset.seen_filter:
        systems.append(RecallerSystem(name="tifu_knn", channels=[TifuKNNChannel()],
                                      fallback=pop(live=True)))
    return systems

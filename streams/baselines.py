"""The non-neural baseline systems every evaluation run reports, with tuned defaults.

Settings were chosen on the valid split (state = train, targets = valid, streaming
HitRate@50), never on test:
- films (ml-100k, seen filter on): popularity decays with a 30-day half-life; item-CF
  uses cosine (alpha 0.5) over pairs up to 50 positions apart, 200 neighbours per item,
  and gathers candidates from the 15 newest ratings (their age matters little: ratings
  come in sessions, so the half-life is short and positions decide).
- retail (Ta-Feng, seen filter off): popularity decays with a 1-day half-life (yesterday's
  sellers; region blending did not help); repeat purchase uses a 60-day half-life with
  quantity weights (frequency beats recency here); item-CF uses P(j | i) (alpha 1.0)
  over every line pair up to 50 positions apart, from the 100 newest lines with a 30-day
  half-life.
Lists shorter than K are filled from live popularity, which also serves users without
history.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from streams.channels import PopularityChannel, PopularityConfig, RepeatChannel, RepeatConfig
from streams.itemcf import ItemCFChannel, ItemCFConfig
from streams.recall import RecallerSystem
from towers.data import Dataset
from towers.sequence import DAY

__all__ = ["PROFILES", "BaselineProfile", "baseline_systems"]


@dataclass(frozen=True)
class BaselineProfile:
    popularity: PopularityConfig
    repeat: RepeatConfig
    itemcf: ItemCFConfig


PROFILES = {
    "films": BaselineProfile(
        popularity=PopularityConfig(half_life_s=30 * DAY),
        repeat=RepeatConfig(half_life_s=14 * DAY),
        itemcf=ItemCFConfig(neighbours=200, window=50, alpha=0.5, recent=15,
                            half_life_s=0.01 * DAY),
    ),
    "retail": BaselineProfile(
        popularity=PopularityConfig(half_life_s=1 * DAY),
        repeat=RepeatConfig(half_life_s=60 * DAY, quantity_weighted=True),
        itemcf=ItemCFConfig(neighbours=50, window=50, distinct=False, alpha=1.0, recent=100,
                            half_life_s=30 * DAY),
    ),
}


def baseline_systems(dataset: Dataset, *, profile: str | None = None) -> list[RecallerSystem]:
    """The five baselines; `profile` defaults to films with the seen filter, else retail.

    popularity: counts and lists frozen at the boundary (a nightly batch);
    popularity_live: counts follow the events; repeat: the user's own items;
    itemcf: neighbour table frozen at the boundary, user histories live;
    itemcf_live: the table follows the events too.
    """
    name = profile or ("films" if dataset.seen_filter else "retail")
    if name not in PROFILES:
        raise ValueError(f"unknown baseline profile {name!r}; known: {', '.join(PROFILES)}")
    chosen = PROFILES[name]

    def pop(*, live: bool) -> PopularityChannel:
        return PopularityChannel(replace(chosen.popularity, live=live))

    def itemcf(*, live: bool) -> ItemCFChannel:
        return ItemCFChannel(replace(chosen.itemcf, live=live))

    frozen_pop, live_pop = pop(live=False), pop(live=True)
    return [
        RecallerSystem(name="popularity", channels=[frozen_pop], fallback=frozen_pop,
                       frozen=True),
        RecallerSystem(name="popularity_live", channels=[live_pop], fallback=live_pop),
        RecallerSystem(name="repeat", channels=[RepeatChannel(chosen.repeat)],
                       fallback=pop(live=True)),
        RecallerSystem(name="itemcf", channels=[itemcf(live=False)], fallback=pop(live=True)),
        RecallerSystem(name="itemcf_live", channels=[itemcf(live=True)],
                       fallback=pop(live=True)),
    ]

"""The recall recipes, one per profile: channel settings, fusion weights, returning users.

`films` (seen filter on, MovieLens) and `retail` (seen filter off: repeat purchase is
the signal). The workers serve a profile (`NEARLINE_PROFILE`) and the evaluator builds its
systems from the same tables (`streams.evaluation`).

How the settings were chosen, on the valid split only (state = train, targets = valid,
streaming HitRate@50), never on test:
- channel settings (`PROFILES`):
  - films (ml-100k): popularity decays with a 30-day half-life; item-CF uses cosine
    (alpha 0.5) over pairs up to 50 positions apart, 200 neighbours per item, and
    gathers candidates from the 15 newest ratings (their age matters little: ratings
    come in sessions, so the half-life is short and positions decide).
  - retail (Ta-Feng): popularity decays with a 1-day half-life (yesterday's sellers;
    region blending did not help); repeat purchase uses a 60-day half-life with quantity
    weights (frequency beats recency here); item-CF uses P(j | i) (alpha 1.0) over every
    line pair up to 50 positions apart, from the 100 newest lines with a 30-day
    half-life.
- fusion (`MERGES`) and `away_s` (`RETURNING`): towers trained on the train window only
  (early stopping on valid), then every channel's top-100 candidates were recorded along
  the streaming replay of the valid window and at the train/valid boundary
  (`streams.evaluation.protocols.EvalSplit.for_tuning`), and the weights, `rrf_k` and
  `away_s` scored on those recordings: streaming HitRate@50 first, offline HitRate@50
  not below popularity's.
  - films: the two-tower channel leads; item-CF adds a little at weight 0.3 (sharper
    fusion, rrf_k 10, suits a sharp leader); repeat is off (seen items are filtered
    anyway); popularity only for returning users, whose lists it dominates (weight 2).
  - retail: repeat purchase leads. Any fusion that let the two-tower or item-CF lists
    reorder the user's own items lost to repeat alone (valid streaming HitRate@50
    0.158-0.166 against 0.177), and as fillers below the user's items they did no better
    than live popularity, so the repeat list is kept as it is and the rest of the K
    places go mostly by popularity. The returning channel changed nothing.
"""

from __future__ import annotations

from dataclasses import dataclass

from streams.recall.channels import PopularityConfig, RepeatConfig
from streams.recall.itemcf import ItemCFConfig
from streams.recall.merge import MergeConfig
from streams.recall.returning import ReturningConfig
from towers.data import Dataset
from towers.sequence import DAY

__all__ = ["MERGES", "PROFILES", "RETURNING", "BaselineProfile", "profile_of"]


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


# per profile, tuned on the valid window with the fusion weights (`MERGES`)
RETURNING = {"films": ReturningConfig(away_s=1 * DAY), "retail": ReturningConfig(away_s=7 * DAY)}

"""The recall recipes, one `Profile` each: channel settings, fusion, returning users, seen
filter.

`films` (seen filter on, MovieLens) and `retail` (seen filter off: repeat purchase is
the signal). They are starting points: `nearline train` chooses the settings of the data
set's profile on its valid window (`streams.evaluation.tuning`) and stores the result in
the checkpoint (`streams.recall.recipe`); a worker serves the live checkpoint's recipe,
or the profile `NEARLINE_PROFILE` names when it has none. Worker and evaluator both take
the merged recall's channels from `channels_of`, so they cannot drift.

The values below were chosen by hand on ml-100k and Ta-Feng's valid windows before
settings were chosen by the code; the recipe now re-chooses the repeat setting and
whether repurchase replaces repeat. The fusion weights of the repeat-led recipe, the
item-to-item settings and the popularity half-life are still these values.

How the settings were chosen, on the valid split only (state = train, targets = valid,
streaming HitRate@50), never on test:
- channel settings:
  - films (ml-100k): popularity decays with a 30-day half-life; item-CF uses cosine
    (alpha 0.5) over pairs up to 50 positions apart, 200 neighbours per item, and
    gathers candidates from the 15 newest ratings (their age matters little: ratings
    come in sessions, so the half-life is short and positions decide).
  - retail (Ta-Feng): popularity decays with a 1-day half-life (yesterday's sellers;
    region blending did not help); repeat purchase uses a 60-day half-life with quantity
    weights (frequency beats recency here); item-CF uses P(j | i) (alpha 1.0) over every
    line pair up to 50 positions apart, from the 100 newest lines with a 30-day
    half-life.
- fusion weights and `away_s` (returning users): towers trained on the train window only
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

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, fields
from typing import Any

from streams.errors import SettingsError
from streams.recall.channels import Channel, PopularityConfig, RepeatChannel, RepeatConfig
from streams.recall.itemcf import ItemCFConfig
from streams.recall.merge import MergeConfig
from streams.recall.repurchase import (
    ExploreChannel,
    RepurchaseChannel,
    RepurchaseConfig,
    RepurchaseModel,
)
from streams.recall.returning import ReturningConfig, ReturningPopularity
from towers.data import Dataset
from towers.sequence import DAY

__all__ = ["PROFILES", "Profile", "channels_of", "profile_for", "profile_from_json",
           "profile_named", "profile_to_json"]


@dataclass(frozen=True)
class Profile:
    """One recall recipe: which channels, with which settings, fused how."""

    name: str
    seen_filter: bool  # drop items the user already had
    popularity: PopularityConfig  # live popularity: fills lists, serves users without history
    repeat: RepeatConfig  # the user's own items, recency-weighted
    itemcf: ItemCFConfig  # item-to-item neighbours of the user's recent items
    merge: MergeConfig  # fusion of the channels' lists (weights by channel name)
    returning: ReturningConfig | None  # more popularity for users back after a break
    # time-aware repurchase and explore on one scale (`streams.recall.repurchase`) in
    # place of repeat; needs a fitted model, which a checkpoint's recipe carries
    repurchase: RepurchaseConfig | None = None


PROFILES: dict[str, Profile] = {p.name: p for p in (
    Profile(
        name="films",
        seen_filter=True,
        popularity=PopularityConfig(half_life_s=30 * DAY),
        repeat=RepeatConfig(half_life_s=14 * DAY),
        itemcf=ItemCFConfig(neighbours=200, window=50, alpha=0.5, recent=15,
                            half_life_s=0.01 * DAY),
        merge=MergeConfig(method="rrf", rrf_k=10.0,
                          weights={"two_tower": 1.0, "itemcf": 0.3, "repeat": 0.0,
                                   "popularity": 0.0, "returning": 2.0}),
        returning=ReturningConfig(away_s=1 * DAY),
    ),
    Profile(
        name="retail",
        seen_filter=False,
        popularity=PopularityConfig(half_life_s=1 * DAY),
        repeat=RepeatConfig(half_life_s=60 * DAY, quantity_weighted=True),
        itemcf=ItemCFConfig(neighbours=50, window=50, distinct=False, alpha=1.0, recent=100,
                            half_life_s=30 * DAY),
        # repeat leads outright: at weight 100 no sum of the others (<= 0.12 / rrf_k)
        # reorders or displaces its items; popularity, then the towers and item-CF, fill
        # the places left
        merge=MergeConfig(method="rrf", rrf_k=60.0,
                          weights={"repeat": 100.0, "popularity": 0.1, "two_tower": 0.01,
                                   "itemcf": 0.01, "returning": 0.0}),
        returning=ReturningConfig(away_s=7 * DAY),
    ),
)}


def profile_named(name: str) -> Profile:
    try:
        return PROFILES[name]
    except KeyError:
        raise ValueError(f"unknown profile {name!r}: use one of {', '.join(PROFILES)}"
                         ) from None


def profile_for(dataset: Dataset) -> Profile:
    """The profile of a data set's protocol: films with the seen filter on, else retail."""
    return PROFILES["films" if dataset.seen_filter else "retail"]


def channels_of(profile: Profile, *, tower: Channel | None, itemcf: Sequence[Channel],
                popularity: Channel, repeat: Channel | None = None,
                repurchase: RepurchaseModel | None = None) -> list[Channel]:
    """The merged recall's channels in fusion order, as a worker serves them and the
    evaluator scores them: the two-tower channel (when a model is live), then item-to-item,
    repeat, popularity and returning (which reads `popularity`), or, when the profile has
    them, repurchase and explore (which reads `popularity`)."""
    channels: list[Channel] = [tower] if tower is not None else []
    if profile.repurchase is not None:
        if repurchase is None:
            raise ValueError(f"profile {profile.name!r} needs a fitted repurchase model")
        # item-to-item is left out: as an explore source beside popularity it found no
        # more new items on Ta-Feng's valid window and cost a second pass per user.
        # Popularity needs no list of its own: explore ranks it, the fill tops lists up.
        return [*channels, RepurchaseChannel(repurchase),
                ExploreChannel(popularity, repurchase)]
    channels += [*itemcf, repeat if repeat is not None else RepeatChannel(profile.repeat)]
    channels.append(popularity)
    if profile.returning is not None:
        channels.append(ReturningPopularity(popularity, profile.returning))
    return channels


_PARTS: dict[str, type] = {"popularity": PopularityConfig, "repeat": RepeatConfig,
                           "itemcf": ItemCFConfig, "merge": MergeConfig,
                           "returning": ReturningConfig, "repurchase": RepurchaseConfig}


def profile_to_json(profile: Profile) -> dict[str, Any]:
    """Every setting of a profile as plain JSON values (a checkpoint's recipe stores it)."""
    out = asdict(profile)
    out["merge"] = {**out["merge"], "weights": dict(profile.merge.weights),
                    "quotas": dict(profile.merge.quotas)}
    return out


def profile_from_json(doc: Mapping[str, Any]) -> Profile:
    """Rebuild a stored profile; unknown or invalid settings raise ValueError naming them."""
    try:
        known = {f.name for f in fields(Profile)}
        unknown = set(doc) - known
        if unknown:
            raise ValueError(f"unknown profile settings {sorted(unknown)}")
        values: dict[str, Any] = {}
        for name in known & set(doc):
            part, raw = _PARTS.get(name), doc[name]
            values[name] = raw if part is None or raw is None else part(
                **{k: tuple(v) if isinstance(v, list) else v for k, v in dict(raw).items()})
        return Profile(**values)
    except (TypeError, SettingsError) as exc:
        raise ValueError(f"profile: {exc}") from exc

"""The recall systems that use the towers: the two-tower channel alone, and `nearline`.

`nearline` is what a worker serves: the two-tower channel, the item-to-item table built
offline with the towers (frozen), the user's own recency-weighted items (repeat) and live
popularity, merged by weighted reciprocal-rank fusion, plus the `returning`
channel (`streams.recall.returning`: popularity for users back after a break).

The settings of both are the recipe's (`streams.recall.recipe`: chosen on the valid
window by `nearline train` and stored in the checkpoint), else the data set's profile.
With a repurchase model, `repurchase` scores that channel alone (popularity fills).
"""

from __future__ import annotations

from dataclasses import replace

from streams.evaluation.baselines import baseline_systems
from streams.recall.channels import PopularityChannel
from streams.recall.itemcf import ItemCFChannel
from streams.recall.profiles import Profile, channels_of, profile_for
from streams.recall.recaller import RecallerSystem
from streams.recall.recipe import Recipe
from streams.recall.repurchase import RepurchaseChannel, RepurchaseModel
from streams.recall.two_tower import TowerBundle, TwoTowerChannel
from towers.data import Dataset, Interactions

__all__ = ["evaluation_systems", "itemcf_table", "nearline_system", "repurchase_system",
           "two_tower_system"]


def itemcf_table(dataset: Dataset, history: Interactions, *, profile: Profile | None = None
                 ) -> ItemCFChannel:
    """The frozen item-to-item channel fitted on `history` (what checkpoints carry)."""
    chosen = profile or profile_for(dataset)
    channel = ItemCFChannel(replace(chosen.itemcf, live=False))
    channel.fit(dataset, history)
    return channel


def two_tower_system(dataset: Dataset, bundle: TowerBundle, *, profile: Profile | None = None
                     ) -> RecallerSystem:
    """The two-tower channel alone; live popularity serves users without history."""
    chosen = profile or profile_for(dataset)
    return RecallerSystem(name="two_tower", channels=[TwoTowerChannel(bundle)],
                          fallback=PopularityChannel(replace(chosen.popularity, live=True)))


def nearline_system(dataset: Dataset, bundle: TowerBundle, *, profile: Profile | None = None,
                    repurchase: RepurchaseModel | None = None) -> RecallerSystem:
    """The merged recall the workers serve, evaluated in process (item-to-item fitted at
    the boundary, as `nearline train` fits the table a checkpoint carries)."""
    chosen = profile or profile_for(dataset)
    popularity = PopularityChannel(replace(chosen.popularity, live=True))
    channels = channels_of(chosen, tower=TwoTowerChannel(bundle),
                           itemcf=[ItemCFChannel(replace(chosen.itemcf, live=False))],
                           popularity=popularity, repurchase=repurchase)
    return RecallerSystem(name="nearline", channels=channels, fallback=popularity,
                          merge=chosen.merge)


def repurchase_system(profile: Profile, model: RepurchaseModel) -> RecallerSystem:
    """The repurchase channel alone; live popularity fills the lists."""
    return RecallerSystem(name="repurchase", channels=[RepurchaseChannel(model)],
                          fallback=PopularityChannel(replace(profile.popularity, live=True)))


def evaluation_systems(dataset: Dataset, *, bundle: TowerBundle | None = None,
                       recipe: Recipe | None = None) -> list[RecallerSystem]:
    """The baselines, repurchase when the recipe fits one, plus two_tower and nearline
    when a model is given; settings from `recipe`, else the data set's profile."""
    profile = recipe.profile if recipe is not None else profile_for(dataset)
    model = recipe.repurchase if recipe is not None else None
    systems = baseline_systems(dataset, profile=profile)
    if model is not None:
        systems.append(repurchase_system(profile, model))
    if bundle is not None:
        systems += [two_tower_system(dataset, bundle, profile=profile),
                    nearline_system(dataset, bundle, profile=profile, repurchase=model)]
    return systems

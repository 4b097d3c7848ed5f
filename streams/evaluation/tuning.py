"""Settings chosen on the valid window of the data at hand (docs/evaluation.md).

`choose_recipe` scores a small grid of each setting by streaming HitRate@50 with state =
train and targets = valid, keeps the best, and refits what the chosen settings fit on
train + valid (the state a checkpoint serves from). The test window is never read. The
profiles' values are only the starting point; the grids are wide enough that nothing
copied from another data set decides the result.

Chosen, in order:
1. repeat: half-life and lines or quantities (the `repeat` baseline and the repeat channel);
2. for a retail profile: repurchase buckets of the user's basket count, of the personal
   purchase cycle, of the user's novelty (for explore), then its priors (category and
   item smoothing), one after the other;
   then the recipe itself, repeat-led (the profile's fusion) or repurchase with explore
   on one scale, whichever scores higher on valid.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

from streams.evaluation.protocols import EvalSplit, evaluate_system
from streams.recall.channels import PopularityChannel, RepeatChannel, RepeatConfig
from streams.recall.merge import MergeConfig
from streams.recall.profiles import Profile, channels_of, profile_for
from streams.recall.recaller import RecallerSystem
from streams.recall.recipe import Recipe
from streams.recall.repurchase import RepurchaseConfig, RepurchaseModel
from towers.data import Dataset
from towers.sequence import DAY

logger = logging.getLogger(__name__)

__all__ = ["BASKET_GRID", "CYCLE_GRID", "NOVELTY_GRID", "REPEAT_GRID", "REPURCHASE_GRID",
           "choose_recipe", "choose_repeat"]

REPEAT_GRID = tuple(RepeatConfig(half_life_s=days * DAY, quantity_weighted=qty)
                    for days in (14.0, 60.0, 365.0) for qty in (False, True))
REPURCHASE_GRID = ((10.0, 5.0), (50.0, 20.0), (200.0, 100.0))  # (category, item) priors
BASKET_GRID = ((1,), (1, 3, 10), (1, 2, 3, 5, 10))  # buckets of the user's basket count
CYCLE_GRID = ((0.0,), (0.0, 0.5, 1.0, 2.0))  # time since the last over the personal interval
NOVELTY_GRID = ((0.0,), (0.0, 0.4, 0.6, 0.8, 0.95))  # the user's distinct / item-basket pairs
# repurchase and explore rates are next-basket probabilities: fused as they are
RAW_MERGE = MergeConfig(method="raw", weights={"repurchase": 1.0, "explore": 1.0,
                                               "two_tower": 0.0, "itemcf": 0.0,
                                               "popularity": 0.0, "returning": 0.0})


def _valid_hit_rate(system: RecallerSystem, split: EvalSplit) -> float:
    result = evaluate_system(system, split, ks=(50,), protocols=("stream",))
    return float(result["stream"]["HitRate@50"])


def _best(grid: Sequence[Any], score: Callable[[Any], float], label: Callable[[Any], str],
          record: dict[str, float]) -> Any:
    """The grid point with the highest score (the first on ties), scores recorded."""
    best, best_score = grid[0], -1.0
    for point in grid:
        value = record[label(point)] = round(score(point), 6)
        if value > best_score:
            best, best_score = point, value
    return best


def _popularity(profile: Profile) -> PopularityChannel:
    return PopularityChannel(replace(profile.popularity, live=True))


def choose_repeat(split: EvalSplit, profile: Profile, record: dict[str, float]
                  ) -> RepeatConfig:
    """The repeat setting with the best valid HitRate@50 (popularity fills the lists)."""
    def score(config: RepeatConfig) -> float:
        return _valid_hit_rate(RecallerSystem(name="repeat", channels=[RepeatChannel(config)],
                                              fallback=_popularity(profile)), split)

    return _best(REPEAT_GRID, score, lambda c: f"repeat {c.half_life_s / DAY:g}d "
                 f"{'quantity' if c.quantity_weighted else 'lines'}", record)


def _recipe_system(profile: Profile, model: RepurchaseModel | None) -> RecallerSystem:
    """The recipe without towers and item-CF (fitted with the checkpoint, not here)."""
    popularity = _popularity(profile)
    return RecallerSystem(name="recipe", channels=channels_of(
        profile, tower=None, itemcf=[], popularity=popularity, repurchase=model),
        fallback=popularity, merge=profile.merge)


def _choose_repurchase(dataset: Dataset, split: EvalSplit, profile: Profile,
                       record: dict[str, float]) -> tuple[Profile, RepurchaseModel | None]:
    """Basket, cycle and novelty buckets, then priors (one at a time); repurchase only if
    it beats the repeat-led recipe."""
    categories = {i: info.category for i, info in dataset.items.items() if info.category}
    history = split.history()
    start = RepurchaseConfig(popularity_half_life_s=profile.popularity.half_life_s or DAY)
    observed: dict[tuple[Any, ...], Any] = {}  # cell edges -> repeat observations
    explored: dict[tuple[Any, ...], Any] = {}  # row edges -> explore rates
    scores: dict[RepurchaseConfig, float] = {}

    def score(config: RepurchaseConfig) -> float:
        if config in scores:
            return scores[config]
        cells, rows = (config.baskets, config.cycle), (config.baskets, config.novelty)
        if cells not in observed:
            observed[cells] = RepurchaseModel.observe(history, config)
        if rows not in explored:
            explored[rows] = RepurchaseModel.explore(history, config)
        model = RepurchaseModel.pooled(observed[cells], categories, config,
                                       new_rate=explored[rows])
        timed = replace(profile, repurchase=config, merge=RAW_MERGE)
        scores[config] = _valid_hit_rate(_recipe_system(timed, model), split)
        return scores[config]

    config = _best([replace(start, baskets=b) for b in BASKET_GRID], score,
                   lambda c: f"repurchase baskets {'/'.join(map(str, c.baskets))}", record)
    config = _best([replace(config, cycle=c) for c in CYCLE_GRID], score,
                   lambda c: f"repurchase cycle {'/'.join(f'{e:g}' for e in c.cycle)}", record)
    config = _best([replace(config, novelty=n) for n in NOVELTY_GRID], score,
                   lambda c: f"repurchase novelty {'/'.join(f'{e:g}' for e in c.novelty)}",
                   record)
    config = _best([replace(config, category_prior=c, item_prior=i)
                    for c, i in REPURCHASE_GRID], score,
                   lambda c: f"repurchase priors {c.category_prior:g}/{c.item_prior:g}",
                   record)
    best = max(scores.values())
    record["repeat-led"] = round(_valid_hit_rate(_recipe_system(profile, None), split), 6)
    if best <= record["repeat-led"]:
        return profile, None
    refit = EvalSplit.from_dataset(dataset).history()  # train + valid
    return (replace(profile, repurchase=config, merge=RAW_MERGE),
            RepurchaseModel.fit(refit, categories, config))


def choose_recipe(dataset: Dataset, base: Profile | None = None, *,
                  repurchase: bool = True) -> Recipe:
    """Every setting of the data set's profile chosen on its valid window (see above)."""
    started = time.perf_counter()
    base = base or profile_for(dataset)
    split = EvalSplit.for_tuning(dataset)
    record: dict[str, float] = {}
    profile = replace(base, repeat=choose_repeat(split, base, record))
    model = None
    if repurchase and not profile.seen_filter and len(split.target_rows):
        profile, model = _choose_repurchase(dataset, split, profile, record)
    logger.info("recipe for %s chosen on valid in %.1f s: %s", dataset.name,
                time.perf_counter() - started, record)
    return Recipe(profile=profile, repurchase=model,
                  chosen_on={"valid HitRate@50": record, "valid events": len(split.target_rows)})

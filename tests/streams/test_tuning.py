"""Settings chosen on the valid window: every grid point scored, the best one kept."""

from __future__ import annotations

from streams.evaluation.tuning import (
    BASKET_GRID,
    CYCLE_GRID,
    NOVELTY_GRID,
    REPEAT_GRID,
    REPURCHASE_GRID,
    choose_recipe,
)
from streams.recall.profiles import PROFILES
from towers.datasets import MarketConfig, market_dataset
from towers.sequence import DAY


def test_choose_recipe_keeps_the_best_valid_score_of_each_grid() -> None:
    data = market_dataset(MarketConfig(seed=4, days=30, n_stores=30, n_skus=60))
    recipe = choose_recipe(data)
    scores = recipe.chosen_on["valid HitRate@50"]
    repeat = {k: v for k, v in scores.items() if k.startswith("repeat ") and "led" not in k}
    assert len(repeat) == len(REPEAT_GRID)
    chosen = recipe.profile.repeat
    label = (f"repeat {chosen.half_life_s / DAY:g}d "
             f"{'quantity' if chosen.quantity_weighted else 'lines'}")
    assert scores[label] == max(repeat.values())
    baskets = [k for k in scores if k.startswith("repurchase baskets")]
    assert len(baskets) == len(BASKET_GRID)
    assert len([k for k in scores if k.startswith("repurchase cycle")]) == len(CYCLE_GRID)
    assert len([k for k in scores if k.startswith("repurchase novelty")]) == len(NOVELTY_GRID)
    priors = [k for k in scores if k.startswith("repurchase priors")]
    assert len(priors) == len(REPURCHASE_GRID) and "repeat-led" in scores
    best_repurchase = max(scores[k] for k in priors)
    if recipe.repurchase is not None:  # chosen only when it beat the repeat-led recipe
        assert best_repurchase > scores["repeat-led"]
        assert recipe.profile.merge.method == "raw"
    else:
        assert recipe.profile.merge == PROFILES["retail"].merge
    assert recipe.chosen_on["valid events"] > 0

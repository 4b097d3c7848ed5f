"""What `nearline train` builds: towers, item-to-item table and recipe in one checkpoint.

The towers stop early on the valid window and are refitted on train + valid; the recipe's
settings are chosen on the valid window (`streams.evaluation.tuning`) and what they fit is
refitted on train + valid; the item-to-item table, which only a recipe without repurchase
serves, is built from train + valid. The test window is never read.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import orjson

from streams.evaluation.protocols import EvalSplit
from streams.evaluation.systems import itemcf_table
from streams.evaluation.tuning import choose_recipe
from streams.recall.recipe import RECIPE_FILE
from towers.checkpoint import save_checkpoint
from towers.data import Dataset
from towers.train import TrainConfig, train

logger = logging.getLogger(__name__)

__all__ = ["train_checkpoint"]


def train_checkpoint(data: Dataset, out: Path, *, config: TrainConfig | None = None
                     ) -> tuple[Path, dict[str, Any]]:
    """Train and save under `out`; returns the checkpoint's path and its metrics."""
    started = time.perf_counter()
    result = train(data, config=config or TrainConfig(progress=False))
    towers_s = time.perf_counter() - started
    recipe = choose_recipe(data)
    extras = {RECIPE_FILE: recipe.to_bytes()}
    if recipe.repurchase is None:  # a repurchase recipe serves no item-to-item table
        table = itemcf_table(data, EvalSplit.from_dataset(data).history(),
                             profile=recipe.profile)
        extras["neighbours.json"] = orjson.dumps(table.to_json(),
                                                 option=orjson.OPT_SERIALIZE_NUMPY)
    metrics = {**result.metrics, "towers_s": round(towers_s, 1),
               "recipe": recipe.profile.name, "recipe_repurchase": recipe.repurchase is not None,
               "train_s": round(time.perf_counter() - started, 1)}
    path = save_checkpoint(out, model=result.model, spec=result.spec, items=result.items,
                           metrics=metrics, dataset=data.name, extras=extras)
    logger.info("checkpoint %s saved in %.1f s", path.name, metrics["train_s"])
    return path, metrics

"""Synthetic catalogues and untrained towers for speed benchmarks.

Speed does not depend on what the towers learned, so benchmarks save a randomly
initialised two-tower checkpoint over a synthetic catalogue (Zipf item popularity,
categories, prices) instead of training one.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from streams.evaluation.tuning import RAW_MERGE
from streams.recall.profiles import PROFILES
from streams.recall.recipe import RECIPE_FILE, Recipe
from streams.recall.repurchase import RepurchaseConfig, RepurchaseModel
from towers.checkpoint import save_checkpoint
from towers.data import Dataset, Interactions, ItemInfo
from towers.features import ItemTable, fit_feature_spec
from towers.model import TwoTower
from towers.train import tower_config

__all__ = ["retail_recipe", "synthetic_dataset", "untrained_checkpoint", "zipf_events"]


def zipf_events(n: int, *, n_users: int, n_items: int, seed: int, t0: float = 1.7e9,
                rate_per_s: float = 50.0) -> Interactions:
    """`n` interactions with Zipf-distributed users and items, in time order."""
    rng = np.random.default_rng(seed)
    users = (rng.zipf(1.3, n) - 1) % n_users
    items = (rng.zipf(1.2, n) - 1) % n_items
    ts = t0 + np.cumsum(rng.exponential(1.0 / rate_per_s, n))
    return Interactions.from_columns(
        user=np.array([f"u{u}" for u in users], dtype=object),
        item=np.array([f"i{i}" for i in items], dtype=object), ts=ts,
        quantity=rng.integers(1, 5, n).astype(np.float64),
        region=np.array([f"r{int(x)}" for x in rng.integers(0, 4, n)], dtype=object))


def synthetic_dataset(*, n_items: int, n_users: int, n_events: int, seed: int = 0) -> Dataset:
    rng = np.random.default_rng(seed)
    items = {f"i{i}": ItemInfo(category=f"c{int(c)}", price=float(p))
             for i, c, p in zip(range(n_items), rng.integers(0, 50, n_items),
                                rng.lognormal(1.0, 0.8, n_items), strict=True)}
    log = zipf_events(n_events, n_users=n_users, n_items=n_items, seed=seed)
    return Dataset(name="synthetic", interactions=log, items=items)


def untrained_checkpoint(root: Path, dataset: Dataset, *, seed: int, version: str,
                         dim: int = 64, recipe: bool = False) -> Path:
    """A valid checkpoint with random weights over `dataset`'s catalogue; with `recipe`,
    a retail recipe (repurchase and explore fitted on `dataset`) as `nearline train`
    would store one."""
    torch.manual_seed(seed)
    spec = fit_feature_spec(dataset, dataset.interactions)
    model = TwoTower(tower_config(spec, dim=dim)).eval()
    table = ItemTable.from_dataset(dataset, dataset.interactions)
    extras = {RECIPE_FILE: retail_recipe(dataset).to_bytes()} if recipe else None
    return save_checkpoint(root, model=model, spec=spec, items=table,
                           metrics={"untrained": True}, dataset=dataset.name, version=version,
                           extras=extras)


def retail_recipe(dataset: Dataset) -> Recipe:
    """The retail profile with repurchase and explore fitted on the whole of `dataset`."""
    categories = {i: info.category for i, info in dataset.items.items()}
    model = RepurchaseModel.fit(dataset.interactions, categories, RepurchaseConfig())
    profile = replace(PROFILES["retail"], repurchase=model.config, merge=RAW_MERGE)
    return Recipe(profile=profile, repurchase=model)

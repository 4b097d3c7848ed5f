"""A tiny synthetic market with a planted pattern: each user buys only from its group's items."""

from __future__ import annotations

import numpy as np

from towers.data import Dataset, Interactions, ItemInfo

GROUP_SIZE = 5


def planted_dataset(*, n_users: int = 120, n_items: int = 40, steps: int = 12,
                    seed: int = 0) -> Dataset:
    """Users of group g buy items g*5 .. g*5+4 only, one an hour, at random start times."""
    rng = np.random.default_rng(seed)
    n_groups = n_items // GROUP_SIZE
    users, items, ts = [], [], []
    for u in range(n_users):
        group = u % n_groups
        t0 = float(rng.integers(0, 1000)) * 3600.0
        for s in range(steps):
            users.append(f"u{u}")
            items.append(f"i{group * GROUP_SIZE + int(rng.integers(GROUP_SIZE))}")
            ts.append(t0 + s * 3600.0)
    log = Interactions.from_columns(user=users, item=items, ts=ts)
    meta = {f"i{j}": ItemInfo(category=f"c{j % 4}", price=float(1 + j % 7)) for j in range(n_items)}
    return Dataset(name="planted", interactions=log, items=meta)

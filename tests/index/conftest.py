"""Factory fixture for small built indexes over seeded unit vectors."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from index import IndexConfig, ItemIndex, build_index

from .synthetic import item_ids, unit_vectors

IndexFactory = Callable[..., ItemIndex]


@pytest.fixture()
def make_index() -> IndexFactory:
    def make(backend: str = "exact", *, n: int = 3000, dim: int = 16, seed: int = 0,
             version: str = "v1", **config: object) -> ItemIndex:
        if backend == "ivf":
            config = {"probe_fraction": 1.0, **config}  # exhaustive unless a test says otherwise
        return build_index(item_ids(n), unit_vectors(n, dim, seed=seed), version=version,
                           config=IndexConfig(backend=backend, **config))  # type: ignore[arg-type]
    return make

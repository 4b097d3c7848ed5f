"""Incremental updates answer exactly like a rebuild from scratch with the same training."""

from __future__ import annotations

import numpy as np
import pytest

from index import IndexConfig, ItemIndex, build_index

from .synthetic import exact_top, item_ids, overlap, unit_vectors

N, DIM, K = 4000, 16, 20


def catalogue_after_changes() -> tuple[ItemIndex | None, dict[str, np.ndarray], list]:
    """Initial catalogue, and the changes applied to it: upserts, new items, removals."""
    ids = item_ids(N)
    vectors = unit_vectors(N, DIM, seed=0)
    rng = np.random.default_rng(1)
    changed = rng.choice(N, 400, replace=False)
    removed = changed[:60]
    upserted = changed[60:]
    steps = [
        ("upsert", [ids[i] for i in upserted], unit_vectors(len(upserted), DIM, seed=2)),
        ("upsert", item_ids(150, prefix="new-"), unit_vectors(150, DIM, seed=3)),
        ("remove", [ids[i] for i in removed], None),
    ]
    final = dict(zip(ids, vectors, strict=True))
    for op, names, vecs in steps:
        for j, name in enumerate(names):
            if op == "remove":
                del final[name]
            else:
                final[name] = vecs[j]
    return None, final, steps


def apply(index: ItemIndex, steps: list) -> None:
    for op, names, vecs in steps:
        index.upsert(names, vecs) if op == "upsert" else index.remove(names)


@pytest.mark.parametrize("config", [IndexConfig(backend="exact"),
                                    IndexConfig(backend="ivf", probe_fraction=0.2),
                                    IndexConfig(backend="ivf", probe_fraction=0.2, rerank=0)])
def test_incremental_equals_rebuild_with_the_same_training(config: IndexConfig) -> None:
    _, final, steps = catalogue_after_changes()
    incremental = build_index(item_ids(N), unit_vectors(N, DIM, seed=0), version="v1",
                              config=config)
    apply(incremental, steps)
    rebuilt = build_index(list(final), np.stack(list(final.values())), version="v2",
                          config=config, trained_from=incremental)
    queries = unit_vectors(100, DIM, seed=9)
    a, b = incremental.search(queries, K), rebuilt.search(queries, K)
    assert len(incremental) == len(rebuilt) == len(final)
    assert a.ids.tolist() == b.ids.tolist()
    np.testing.assert_allclose(a.scores, b.scores, rtol=1e-6)


def test_hnsw_incremental_tracks_the_exact_answer() -> None:
    _, final, steps = catalogue_after_changes()
    index = build_index(item_ids(N), unit_vectors(N, DIM, seed=0), version="v1",
                        config=IndexConfig(backend="hnsw", hnsw_ef_search=200))
    apply(index, steps)
    queries = unit_vectors(100, DIM, seed=9)
    names = np.array(list(final))
    _, rows = exact_top(np.stack(list(final.values())), queries, K)
    found = index.search(queries, K).ids
    assert overlap(found, names[rows]) >= 0.95
    assert not set(found.ravel().tolist()) - set(final)


def test_rebuild_refuses_training_of_another_dimension() -> None:
    trained = build_index(item_ids(10), unit_vectors(10, 8, seed=0), version="v1")
    with pytest.raises(Exception, match="cannot reuse the training"):
        build_index(item_ids(10), unit_vectors(10, 4, seed=0), version="v2", trained_from=trained)

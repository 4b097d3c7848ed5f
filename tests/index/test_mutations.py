"""add / upsert / remove by external id, slot reuse, and searches racing mutations."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from index import IndexInputError

from .conftest import IndexFactory
from .synthetic import item_ids, unit_vectors

BACKENDS = ["exact", "ivf", "hnsw"]
DIM = 16


@pytest.mark.parametrize("backend", BACKENDS)
def test_add_makes_new_items_searchable(make_index: IndexFactory, backend: str) -> None:
    index = make_index(backend, n=2000)
    fresh = unit_vectors(3, DIM, seed=50)
    index.add(["new-a", "new-b", "new-c"], fresh)
    assert len(index) == 2003
    assert index.search(fresh, 1).ids[:, 0].tolist() == ["new-a", "new-b", "new-c"]


@pytest.mark.parametrize("backend", BACKENDS)
def test_upsert_replaces_known_ids_and_adds_the_rest(make_index: IndexFactory,
                                                     backend: str) -> None:
    index = make_index(backend, n=2000)
    moved = unit_vectors(2, DIM, seed=51)
    added = index.upsert(["item-00007", "brand-new"], moved)
    assert added == 1 and len(index) == 2001
    result = index.search(moved, 1)
    assert result.ids[:, 0].tolist() == ["item-00007", "brand-new"]
    np.testing.assert_allclose(result.scores[:, 0], 1.0, rtol=1e-4)
    # the old vector of item-00007 is gone: searching it no longer returns the item first
    old = unit_vectors(2000, DIM, seed=0)[7:8]
    assert index.search(old, 1).ids[0, 0] != "item-00007"


@pytest.mark.parametrize("backend", BACKENDS)
def test_remove_hides_items_and_frees_them(make_index: IndexFactory, backend: str) -> None:
    index = make_index(backend, n=2000)
    gone = unit_vectors(2000, DIM, seed=0)[:10]
    index.remove(item_ids(10))
    assert len(index) == 1990
    found = set(index.search(gone, 20).ids.ravel().tolist())
    assert not found & set(item_ids(10))
    index.add(item_ids(1), gone[:1])  # a removed id can come back
    assert index.search(gone[:1], 1).ids[0, 0] == "item-00000"


@pytest.mark.parametrize(("backend", "reuses"), [("exact", True), ("ivf", True), ("hnsw", False)])
def test_slots_are_reused_unless_the_backend_cannot_delete(make_index: IndexFactory, backend: str,
                                                           reuses: bool) -> None:
    index = make_index(backend, n=1000)
    index.remove(item_ids(5))
    index.add(item_ids(5, prefix="back-"), unit_vectors(5, DIM, seed=52))
    index.upsert(["item-00100"], unit_vectors(1, DIM, seed=53))
    assert (index._idmap.n_slots == 1000) is reuses
    assert len(index) == 1000


def test_ivf_vector_store_grows_geometrically(make_index: IndexFactory) -> None:
    index = make_index("ivf", n=1000)
    backend = index._backend
    for batch in range(5):
        fresh = unit_vectors(10, DIM, seed=60 + batch)
        index.add(item_ids(10, prefix=f"grow{batch}-"), fresh)
        assert index.search(fresh, 1).ids[:, 0].tolist() == item_ids(10, prefix=f"grow{batch}-")
    assert len(backend.vectors) == 1050 and len(backend._vectors) >= 1050 + 64


def test_failed_mutations_change_nothing(make_index: IndexFactory) -> None:
    index = make_index("ivf", n=1000)
    probe = index.search(unit_vectors(5, DIM, seed=54), 5)
    with pytest.raises(IndexInputError, match="not in the index"):
        index.remove(["item-00001", "no-such-item"])
    with pytest.raises(IndexInputError, match="already in the index"):
        index.add(["item-00002", "fresh"], unit_vectors(2, DIM, seed=55))
    assert len(index) == 1000
    again = index.search(unit_vectors(5, DIM, seed=54), 5)
    assert again.ids.tolist() == probe.ids.tolist()


@pytest.mark.parametrize("backend", ["exact", "ivf"])
def test_searches_racing_upserts_never_fail(make_index: IndexFactory, backend: str) -> None:
    index = make_index(backend, n=3000)
    queries = unit_vectors(16, DIM, seed=56)
    errors: list[BaseException] = []
    stop = threading.Event()

    def reader() -> None:
        try:
            while not stop.is_set():
                result = index.search(queries, 10)
                assert result.ids.shape == (16, 10) and (result.ids != "").all()
        except BaseException as exc:  # reported to the main thread
            errors.append(exc)

    threads = [threading.Thread(target=reader) for _ in range(3)]
    for t in threads:
        t.start()
    rng = np.random.default_rng(57)
    for round_ in range(30):
        chosen = rng.choice(3000, 100, replace=False)
        index.upsert([f"item-{i:05d}" for i in chosen], unit_vectors(100, DIM, seed=round_))
        index.remove([f"item-{i:05d}" for i in chosen[:5]])
        index.add([f"item-{i:05d}" for i in chosen[:5]], unit_vectors(5, DIM, seed=99 + round_))
    stop.set()
    for t in threads:
        t.join()
    assert not errors
    assert len(index) == 3000

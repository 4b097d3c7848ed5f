"""Every rejected input raises IndexInputError with a message that says what to do."""

from __future__ import annotations

import numpy as np
import pytest

from index import IndexConfig, IndexInputError, IndexStoreError, build_index

from .conftest import IndexFactory
from .synthetic import item_ids, unit_vectors

DIM = 16


@pytest.fixture(params=["exact", "ivf", "hnsw"])
def index(request: pytest.FixtureRequest, make_index: IndexFactory):  # type: ignore[no-untyped-def]
    return make_index(request.param, n=1000)


@pytest.mark.parametrize("call", ["search", "add", "upsert"])
def test_wrong_dimension(index, call: str) -> None:  # type: ignore[no-untyped-def]
    vectors = unit_vectors(2, DIM + 1, seed=1)
    with pytest.raises(IndexInputError, match=f"dimension {DIM + 1}, the index has {DIM}"):
        index.search(vectors, 5) if call == "search" else getattr(index, call)(["x", "y"], vectors)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("call", ["search", "add", "upsert"])
def test_nan_or_inf(index, call: str, bad: float) -> None:  # type: ignore[no-untyped-def]
    vectors = unit_vectors(3, DIM, seed=2)
    vectors[1, 4] = bad
    with pytest.raises(IndexInputError, match=r"NaN or inf \(rows \[1\]\)"):
        index.search(vectors, 5) if call == "search" else getattr(index, call)(["a", "b", "c"],
                                                                               vectors)
    assert len(index) == 1000


@pytest.mark.parametrize("call", ["add", "upsert", "remove"])
def test_duplicate_ids_in_one_call(index, call: str) -> None:  # type: ignore[no-untyped-def]
    ids = ["dup", "other", "dup"] if call != "remove" else ["item-00001", "item-00001"]
    with pytest.raises(IndexInputError, match=r"more than once in one call: ('dup'|'item-00001')"):
        if call == "remove":
            index.remove(ids)
        else:
            getattr(index, call)(ids, unit_vectors(3, DIM, seed=3))
    assert len(index) == 1000


def test_unknown_id_on_remove(index) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(IndexInputError, match="1 ids are not in the index \\('ghost'\\)"):
        index.remove(["item-00003", "ghost"])
    assert len(index) == 1000


def test_adding_a_known_id_points_to_upsert(index) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(IndexInputError, match="use upsert"):
        index.add(["item-00004"], unit_vectors(1, DIM, seed=4))


@pytest.mark.parametrize("ids", [[""], ["a\x00b"], [7], [b"bytes"], ["x" * 257]])
def test_malformed_ids(index, ids: list) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(IndexInputError, match="item ids"):
        index.upsert(ids, unit_vectors(1, DIM, seed=5))


def test_a_single_string_is_not_a_list_of_ids(index) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(IndexInputError, match="not a single string"):
        index.remove("item-00001")


def test_count_mismatch_and_shapes(index) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(IndexInputError, match="2 ids for 3 vectors"):
        index.upsert(["a", "b"], unit_vectors(3, DIM, seed=6))
    with pytest.raises(IndexInputError, match="2-D"):
        index.search(unit_vectors(1, DIM, seed=6)[0], 5)
    with pytest.raises(IndexInputError, match="numeric"):
        index.search(np.array([["a"] * DIM]), 5)


@pytest.mark.parametrize("k", [0, -3, 2.5, None, True])
def test_bad_k(index, k: object) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(IndexInputError, match="k must be a positive integer"):
        index.search(unit_vectors(1, DIM, seed=7), k)  # type: ignore[arg-type]


def test_zero_vector_under_cosine() -> None:
    vectors = unit_vectors(4, DIM, seed=8)
    vectors[2] = 0
    with pytest.raises(IndexInputError, match="zero and have no direction"):
        build_index(item_ids(4), vectors, version="v1", config=IndexConfig(metric="cosine"))


def test_build_rejections() -> None:
    with pytest.raises(IndexInputError, match="no items"):
        build_index([], np.zeros((0, DIM), np.float32), version="v1")
    with pytest.raises(IndexInputError, match="more than once"):
        build_index(["a", "a"], unit_vectors(2, DIM, seed=9), version="v1")
    with pytest.raises(IndexInputError, match="version"):
        build_index(["a"], unit_vectors(1, DIM, seed=9), version="../v1")
    with pytest.raises(IndexInputError, match="cannot train"):
        build_index(item_ids(20), unit_vectors(20, DIM, seed=9), version="v1",
                    config=IndexConfig(backend="ivf", nlist=64))


@pytest.mark.parametrize("settings", [{"metric": "l2"}, {"backend": "flat"}, {"nprobe": -1},
                                      {"probe_fraction": 0.0}, {"hnsw_m": 0}])
def test_bad_settings(settings: dict) -> None:
    with pytest.raises(IndexInputError):
        IndexConfig(**settings)


def test_search_params_are_checked(make_index: IndexFactory) -> None:
    with pytest.raises(IndexInputError, match=r"nprobe must be in \[1, "):
        make_index("ivf").set_search_params(nprobe=0)
    with pytest.raises(IndexInputError, match="no search parameters"):
        make_index("exact").set_search_params(nprobe=3)


def test_every_error_shares_the_base_class() -> None:
    assert issubclass(IndexInputError, IndexStoreError)

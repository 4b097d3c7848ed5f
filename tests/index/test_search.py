"""Search answers against an exact faiss IndexFlatIP reference."""

from __future__ import annotations

import numpy as np
import pytest

from index import IndexConfig, build_index

from .conftest import IndexFactory
from .synthetic import exact_top, item_ids, overlap, unit_vectors

N, DIM, K = 3000, 16, 10


def reference_ids(k: int = K, *, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    items, queries = unit_vectors(N, DIM, seed=seed), unit_vectors(40, DIM, seed=99)
    scores, rows = exact_top(items, queries, k)
    return queries, np.array(item_ids(N))[rows], scores


def test_exact_backend_equals_indexflat(make_index: IndexFactory) -> None:
    queries, ids, scores = reference_ids()
    result = make_index("exact").search(queries, K)
    assert result.ids.tolist() == ids.tolist()
    np.testing.assert_allclose(result.scores, scores, rtol=1e-5, atol=1e-6)


def test_ivf_scanning_every_list_finds_the_exact_answer(make_index: IndexFactory) -> None:
    queries, ids, scores = reference_ids()
    result = make_index("ivf").search(queries, K)
    assert overlap(result.ids, ids) >= 0.99
    # re-scored candidates carry exact inner products, best first
    np.testing.assert_allclose(result.scores[:, 0], scores[:, 0], rtol=1e-5)
    assert (np.diff(result.scores, axis=1) <= 0).all()


def test_ivf_without_rerank_returns_approximate_scores(make_index: IndexFactory) -> None:
    queries, ids, _ = reference_ids()
    result = make_index("ivf", rerank=0).search(queries, K)
    assert 0.5 <= overlap(result.ids, ids) < 1.0


def test_hnsw_recall_against_exact(make_index: IndexFactory) -> None:
    queries, ids, _ = reference_ids()
    result = make_index("hnsw", hnsw_ef_search=128).search(queries, K)
    assert overlap(result.ids, ids) >= 0.95


@pytest.mark.parametrize("backend", ["exact", "ivf", "hnsw"])
def test_cosine_is_inner_product_of_normalised_vectors(backend: str) -> None:
    rng = np.random.default_rng(3)
    items = rng.standard_normal((1500, DIM)).astype(np.float32) * rng.uniform(0.1, 9, (1500, 1))
    queries = rng.standard_normal((20, DIM)).astype(np.float32) * 7
    index = build_index(item_ids(1500), items, version="c1",
                        config=IndexConfig(backend=backend, metric="cosine", probe_fraction=1.0))
    unit = items / np.linalg.norm(items, axis=1, keepdims=True)
    _, rows = exact_top(unit, queries / np.linalg.norm(queries, axis=1, keepdims=True), 5)
    result = index.search(queries, 5)
    assert overlap(result.ids, np.array(item_ids(1500))[rows]) >= 0.95
    assert result.scores.max() <= 1.0 + 1e-5


def test_k_is_clipped_to_the_catalogue() -> None:
    index = build_index(["a", "b", "c"], unit_vectors(3, 4, seed=1), version="small")
    result = index.search(unit_vectors(2, 4, seed=2), 10)
    assert result.ids.shape == result.scores.shape == (2, 3)
    assert sorted(result.ids[0].tolist()) == ["a", "b", "c"]


def test_search_of_an_emptied_index_returns_empty_rows(make_index: IndexFactory) -> None:
    index = make_index("exact", n=5)
    index.remove(item_ids(5))
    result = index.search(unit_vectors(3, DIM, seed=4), 5)
    assert result.ids.shape == (3, 0) and result.rows() == [[], [], []]


def test_unreachable_results_are_padded(make_index: IndexFactory) -> None:
    index = make_index("ivf", nlist=64, nprobe=1, rerank=0)
    result = index.search(unit_vectors(5, DIM, seed=5), 500)  # one list holds ~47 items
    assert (result.ids == "").any()
    assert np.isneginf(result.scores[result.ids == ""]).all()
    assert all(0 < len(row) < 500 for row in result.rows())


def test_result_names_the_version_and_rows_pair_ids_with_scores(make_index: IndexFactory) -> None:
    result = make_index("exact", version="v7").search(unit_vectors(2, DIM, seed=6), 3)
    assert result.version == "v7"
    rows = result.rows()
    assert [i for i, _ in rows[0]] == result.ids[0].tolist()
    assert rows[1][0][1] == pytest.approx(float(result.scores[1, 0]))


def test_unicode_ids_round_trip() -> None:
    ids = ["café", "東京-1", "plain", "emoji-🙂"]
    index = build_index(ids, np.eye(4, dtype=np.float32), version="u1")
    assert index.search(np.eye(4, dtype=np.float32), 1).ids[:, 0].tolist() == ids

"""Calibration picks the smallest search depth that reaches a recall target."""

from __future__ import annotations

import pytest

from index import calibrate, recall_at_k

from .conftest import IndexFactory
from .synthetic import unit_vectors

DIM = 16


@pytest.mark.parametrize(("backend", "param"), [("ivf", "nprobe"), ("hnsw", "ef_search")])
def test_calibration_reaches_the_target_on_fresh_queries(make_index: IndexFactory, backend: str,
                                                         param: str) -> None:
    index = make_index(backend, n=4000, probe_fraction=0.02, hnsw_ef_search=16)
    sample, fresh = unit_vectors(100, DIM, seed=1), unit_vectors(200, DIM, seed=2)
    result = calibrate(index, sample, k=10, target_recall=0.9)
    assert result.reached and result.param == param and result.recall >= 0.9
    assert index.search_params[param] == result.value
    achieved = recall_at_k(index.search(fresh, 10).ids, index.exact_search(fresh, 10).ids)
    assert achieved >= 0.85  # held-out queries land near the target
    index.set_search_params(**{param: max(1, result.value - 1)})
    assert recall_at_k(index.search(sample, 10).ids, index.exact_search(sample, 10).ids) < 0.9 \
        or result.value == (1 if param == "nprobe" else 10)


def test_unreachable_target_keeps_the_deepest_search(make_index: IndexFactory) -> None:
    index = make_index("ivf", n=3000, pq_dims=4, rerank=0)  # coarse codes, no re-scoring
    result = calibrate(index, unit_vectors(50, DIM, seed=3), k=10, target_recall=1.0)
    assert not result.reached and result.value == index.search_params["nlist"]


def test_exact_needs_no_calibration(make_index: IndexFactory) -> None:
    result = calibrate(make_index("exact"), unit_vectors(5, DIM, seed=4), k=10)
    assert (result.param, result.recall, result.reached) == ("", 1.0, True)


def test_recall_at_k_ignores_padding() -> None:
    import numpy as np
    found = np.array([["a", "b", ""], ["x", "", ""]])
    reference = np.array([["a", "c", "b"], ["x", "y", ""]])
    assert recall_at_k(found, reference) == pytest.approx((2 / 3 + 1 / 2) / 2)

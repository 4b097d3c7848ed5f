"""Metrics of docs/evaluation.md on hand-computed cases."""

from __future__ import annotations

import math

import numpy as np
import pytest

from streams.evaluation.metrics import hit_rate, ndcg, offline_metrics, recall

L3 = 1.0 / math.log2(3)  # discount of the second position

RANKINGS = [["a", "b", "c", "d"], ["x", "y"]]
TARGETS = [{"b", "z"}, {"q"}]


def test_hit_rate_counts_users_with_any_hit() -> None:
    assert hit_rate(RANKINGS, TARGETS, 1) == 0.0
    assert hit_rate(RANKINGS, TARGETS, 2) == 0.5
    assert hit_rate([["a"], ["q"]], [{"a"}, {"q"}], 1) == 1.0


def test_recall_divides_by_the_target_size() -> None:
    assert recall(RANKINGS, TARGETS, 1) == 0.0
    assert recall(RANKINGS, TARGETS, 2) == pytest.approx((1 / 2 + 0) / 2)
    assert recall([["a", "b", "c"]], [{"a", "c", "z"}], 3) == pytest.approx(2 / 3)


def test_ndcg_ideal_over_min_of_targets_and_k() -> None:
    # user 1: hit at position 2 of 2, two targets -> ideal 1 + 1/log2(3)
    assert ndcg(RANKINGS, TARGETS, 2) == pytest.approx((L3 / (1 + L3) + 0) / 2)
    assert ndcg(RANKINGS, TARGETS, 1) == 0.0
    # three targets but K = 2: the ideal holds two hits
    assert ndcg([["a", "x", "b"]], [{"a", "b", "c"}], 2) == pytest.approx(1 / (1 + L3))
    # one target: ideal is a single hit at the top
    assert ndcg([["x", "a"]], [{"a"}], 10) == pytest.approx(L3)
    assert ndcg([["a", "b"]], [{"a", "b"}], 2) == pytest.approx(1.0)


def test_offline_metrics_keys_and_values() -> None:
    out = offline_metrics(RANKINGS, TARGETS, (1, 2))
    assert out == {
        "HitRate@1": 0.0, "HitRate@2": 0.5, "Recall@1": 0.0, "Recall@2": 0.25,
        "NDCG@1": 0.0, "NDCG@2": pytest.approx(L3 / (1 + L3) / 2), "users": 2,
    }


def test_no_users_gives_zero() -> None:
    assert offline_metrics([], [], (10,)) == {"HitRate@10": 0.0, "Recall@10": 0.0,
                                              "NDCG@10": 0.0, "users": 0}


def test_offline_metrics_agree_with_the_single_metrics() -> None:
    rng = np.random.default_rng(3)
    items = [f"i{j}" for j in range(40)]
    rankings = [list(rng.choice(items, 30, replace=False)) for _ in range(50)]
    targets = [set(rng.choice(items, int(rng.integers(1, 12)), replace=False))
               for _ in range(50)]
    out = offline_metrics(rankings, targets, (5, 20))
    for k in (5, 20):
        assert out[f"HitRate@{k}"] == pytest.approx(hit_rate(rankings, targets, k))
        assert out[f"Recall@{k}"] == pytest.approx(recall(rankings, targets, k))
        assert out[f"NDCG@{k}"] == pytest.approx(ndcg(rankings, targets, k))

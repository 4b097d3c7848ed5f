"""Fusion of channel lists: reciprocal-rank and score fusion, weights, quotas, dedup."""

from __future__ import annotations

import pytest

from streams.errors import SettingsError
from streams.recall.merge import MergeConfig, merge

A = ("A", [("a", 3.0), ("b", 2.0), ("c", 1.0)])
B = ("B", [("b", 5.0), ("d", 4.0)])


def test_rrf_sums_reciprocal_ranks_and_dedups() -> None:
    out = merge([A, B], k=10, config=MergeConfig(rrf_k=0))
    # a 1/1, b 1/2 + 1/1, c 1/3, d 1/2
    assert out.items == ["b", "a", "d", "c"]
    assert out.scores == pytest.approx([1.5, 1.0, 0.5, 1 / 3])
    assert out.channels == ["B", "A", "B", "A"]


def test_rrf_offset_and_k() -> None:
    out = merge([A, B], k=2, config=MergeConfig(rrf_k=60))
    assert out.items == ["b", "a"]
    assert out.scores == pytest.approx([1 / 62 + 1 / 61, 1 / 61])


def test_weights_change_the_order_and_ties_keep_first_seen() -> None:
    out = merge([A, B], k=4, config=MergeConfig(rrf_k=0, weights={"A": 2.0}))
    # a 2, b 1 + 1 (tie with a: a was seen first), c 2/3, d 1/2
    assert out.items == ["a", "b", "c", "d"]
    assert out.channels == ["A", "A", "A", "B"]  # equal shares: the first channel keeps it


def test_score_fusion_scales_each_channel_by_its_best() -> None:
    out = merge([A, B], k=4, config=MergeConfig(method="score"))
    assert out.items == ["b", "a", "d", "c"]
    assert out.scores == pytest.approx([2 / 3 + 1.0, 1.0, 0.8, 1 / 3])


def test_quota_reserves_places_for_a_channel() -> None:
    plain = merge([A, B], k=2, config=MergeConfig(rrf_k=0))
    assert plain.items == ["b", "a"]
    quota = merge([A, B], k=2, config=MergeConfig(rrf_k=0, quotas={"B": 2}))
    assert quota.items == ["b", "d"]  # ordered by fused score


def test_quotas_count_only_items_a_channel_adds() -> None:
    # A reserves a and b; B's quota of one must then take d, not b again
    out = merge([A, B], k=3, config=MergeConfig(rrf_k=0, quotas={"A": 2, "B": 1}))
    assert set(out.items) == {"a", "b", "d"}


def test_quota_of_an_empty_channel_gives_its_places_away() -> None:
    out = merge([A, ("C", [])], k=3, config=MergeConfig(quotas={"C": 2}))
    assert out.items == ["a", "b", "c"]


def test_bad_method_is_refused() -> None:
    with pytest.raises(SettingsError, match="merge method"):
        MergeConfig(method="max")

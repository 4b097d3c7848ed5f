"""Popularity and repeat channels on hand-made logs (exact expected order)."""

from __future__ import annotations

import numpy as np
import pytest

from streams.recall.channels import (
    ItemIds,
    PopularityChannel,
    PopularityConfig,
    RepeatChannel,
    RepeatConfig,
    first_k,
)
from streams.recall.itemcf import ItemCFChannel, ItemCFConfig
from towers.data import Dataset, Interactions
from towers.sequence import DAY, UserHistory


def events(items: list[str], ts: list[float], *, users: list[str] | None = None,
           region: list[str] | None = None, quantity: list[float] | None = None
           ) -> Interactions:
    return Interactions.from_columns(user=users or ["u"] * len(items), item=items, ts=ts,
                                     region=region, quantity=quantity)


def fitted(config: PopularityConfig, log: Interactions) -> PopularityChannel:
    channel = PopularityChannel(config)
    channel.fit(Dataset(name="t", interactions=log), log)
    return channel


def history(items: list[str], ts: list[float], quantity: list[float] | None = None,
            region: str = "") -> UserHistory:
    h = UserHistory(user_id="u", region=region)
    for i, (item, t) in enumerate(zip(items, ts, strict=True)):
        h.append(item, t, quantity[i] if quantity else 1.0)
    return h


def ids(lists: list[list[tuple[str, float]]]) -> list[list[str]]:
    return [[i for i, _ in c] for c in lists]


POP = events(["a", "b", "a", "c", "a", "b"], [0.0] * 6)


def test_popularity_counts_lines_and_excludes() -> None:
    ch = fitted(PopularityConfig(), POP)
    out = ch.candidates([None, history(["a"], [0.0])], k=2, now=0.0, exclude=[set(), {"a"}])
    assert ids(out) == [["a", "b"], ["b", "c"]]
    assert out[0][0][1] == pytest.approx(3 / 6)


def test_popularity_quantity_weighting() -> None:
    log = events(["a", "a", "b"], [0.0] * 3, quantity=[1, 1, 5])
    assert ids(fitted(PopularityConfig(), log).candidates([None], k=2, now=0.0)) == [["a", "b"]]
    weighted = fitted(PopularityConfig(quantity_weighted=True), log)
    assert ids(weighted.candidates([None], k=2, now=0.0)) == [["b", "a"]]


def test_popularity_live_flag() -> None:
    frozen, live = fitted(PopularityConfig(), POP), fitted(PopularityConfig(live=True), POP)
    burst = events(["c"] * 5, [1.0] * 5)
    frozen.observe(burst)
    live.observe(burst)
    assert ids(frozen.candidates([None], k=3, now=1.0)) == [["a", "b", "c"]]
    assert ids(live.candidates([None], k=3, now=1.0)) == [["c", "a", "b"]]


def test_popularity_decay_prefers_recent_items() -> None:
    log = events(["a", "a", "a", "b", "b"], [0.0, 0.0, 0.0, 10 * DAY, 10 * DAY])
    plain = fitted(PopularityConfig(), log)
    decayed = fitted(PopularityConfig(half_life_s=DAY), log)
    assert ids(plain.candidates([None], k=2, now=10 * DAY)) == [["a", "b"]]
    out = decayed.candidates([None], k=2, now=10 * DAY)
    assert ids(out) == [["b", "a"]]
    assert out[0][0][1] == pytest.approx(2 / (2 + 3 * 2.0 ** -10))


def test_popularity_decay_survives_rebasing() -> None:
    # 1050 half-lives after the anchor: 2^1050 would overflow without rebasing
    ch = fitted(PopularityConfig(live=True, half_life_s=2.0), events(["a"], [0.0]))
    for t, item in ((2100.0, "b"), (2102.0, "c"), (2102.0, "b")):
        ch.observe(events([item], [t]))
    out = ch.candidates([None], k=3, now=2102.0)
    assert ids(out) == [["b", "c", "a"]]
    assert all(np.isfinite(s) and s > 0 for _, s in out[0])
    assert out[0][0][1] == pytest.approx(1.5 / 2.5)


def test_popularity_window_forgets_old_events() -> None:
    log = events(["a", "a", "a", "b"], [0.0, 0.0, 0.0, 10 * DAY])
    assert ids(fitted(PopularityConfig(window_s=DAY), log).candidates(
        [None], k=3, now=10 * DAY)) == [["b"]]
    live = fitted(PopularityConfig(live=True, window_s=2 * DAY), events(["a", "a"], [0.0, 0.0]))
    live.observe(events(["b"], [DAY]))
    assert ids(live.candidates([None], k=3, now=DAY)) == [["a", "b"]]
    live.observe(events(["c"], [5 * DAY]))  # a and b fall out of the window
    assert ids(live.candidates([None], k=3, now=5 * DAY)) == [["c"]]
    late = fitted(PopularityConfig(live=True, window_s=3 * DAY), events(["w"], [0.0]))
    late.observe(events(["x", "y"], [4 * DAY, 2 * DAY]))  # a batch out of time order
    late.observe(events(["z"], [5.5 * DAY]))  # y (2 days) leaves, x stays
    assert ids(late.candidates([None], k=3, now=5.5 * DAY)) == [["x", "z"]]


def test_popularity_region_blend() -> None:
    log = events(["a", "b", "b", "b"], [0.0] * 4, region=["r1", "r2", "r2", "r2"])
    ch = fitted(PopularityConfig(region_weight=0.5), log)
    out = ch.candidates([None, history(["z"], [0.0], region="r1")], k=2, now=0.0)
    assert ids(out) == [["b", "a"], ["a", "b"]]
    assert out[1][0][1] == pytest.approx(0.5 * 0.25 + 0.5 * 1.0)
    only_region = fitted(PopularityConfig(region_weight=1.0), log)
    assert ids(only_region.candidates([history(["z"], [0.0], region="r1")], k=2, now=0.0)
               ) == [["a"]]


def test_repeat_scores_recency_weighted_quantity() -> None:
    h = history(["a", "b", "a", "c"], [0.0, DAY, 2 * DAY, 3 * DAY], quantity=[1, 1, 1, 5])
    out = RepeatChannel(RepeatConfig(half_life_s=DAY)).candidates([h], k=10, now=3 * DAY)
    assert out == [[("c", 5.0), ("a", pytest.approx(0.125 + 0.5)), ("b", 0.25)]]


def test_repeat_quantity_weighting_can_flip_the_order() -> None:
    h = history(["c", "a"], [2 * DAY, 3 * DAY], quantity=[4, 1])
    weighted = RepeatChannel(RepeatConfig(half_life_s=DAY, quantity_weighted=True))
    plain = RepeatChannel(RepeatConfig(half_life_s=DAY, quantity_weighted=False))
    assert ids(weighted.candidates([h], k=5, now=3 * DAY)) == [["c", "a"]]
    assert ids(plain.candidates([h], k=5, now=3 * DAY)) == [["a", "c"]]


def test_repeat_excludes_truncates_and_skips_unknown_users() -> None:
    h = history(["a", "b", "c"], [0.0, 1.0, 2.0])
    out = RepeatChannel().candidates([h, None, h], k=1, now=2.0, exclude=[set(), set(), {"c"}])
    assert ids(out) == [["c"], [], ["b"]]


def test_first_k_skips_excluded_and_stops() -> None:
    items = np.array([f"i{j}" for j in range(300)], dtype=object)
    scores = np.arange(300, 0, -1, dtype=float)
    excluded = {f"i{j}" for j in range(0, 290)}
    assert [i for i, _ in first_k(items, scores, 5, excluded)] == [f"i{j}" for j in range(290, 295)]
    assert first_k(items, scores, 2, None) == [("i0", 300.0), ("i1", 299.0)]


def test_item_ids_keep_first_appearance_order() -> None:
    table = ItemIds()
    assert table.add_many(np.array(["b", "a", "b", "c"], dtype=object)).tolist() == [0, 1, 0, 2]
    assert table.add("a") == 1 and table.add("d") == 3
    assert table.ids().tolist() == ["b", "a", "c", "d"]


# --- item-to-item CF ---------------------------------------------------------------------

# u1: a b c, u2: a b, u3: b c d. Pairs: ab 2, ac 1, bc 2, bd 1, cd 1; n: a 2, b 3, c 2, d 1
CF = Interactions.from_columns(
    user=["u1", "u2", "u3", "u1", "u2", "u3", "u1", "u3"],
    item=["a", "a", "b", "b", "b", "c", "c", "d"],
    ts=[1.0, 1.0, 1.0, 2.0, 2.0, 2.0, 3.0, 3.0])
R6, R4, R2 = 2 / 6 ** 0.5, 0.5, 1 / 2 ** 0.5  # cosines 2/sqrt(2*3), 1/sqrt(2*2), 1/sqrt(2)
R3 = 1 / 3 ** 0.5


def cf(log: Interactions = CF, **options: object) -> ItemCFChannel:
    channel = ItemCFChannel(ItemCFConfig(**options))  # type: ignore[arg-type]
    channel.fit(Dataset(name="t", interactions=log), log)
    return channel


def as_dict(pairs: list[tuple[str, float]]) -> dict[str, float]:
    return dict(pairs)


def test_itemcf_cosine_neighbours() -> None:
    ch = cf()
    assert ch.neighbours("a") == [("b", pytest.approx(R6)), ("c", pytest.approx(R4))]
    # b's tie between a and c goes to the item seen first
    assert ch.neighbours("b") == [("a", pytest.approx(R6)), ("c", pytest.approx(R6)),
                                  ("d", pytest.approx(R3))]
    assert [i for i, _ in ch.neighbours("c")] == ["b", "d", "a"]
    assert [i for i, _ in ch.neighbours("d")] == ["c", "b"]
    assert ch.neighbours("unknown") == []
    assert [i for i, _ in cf(neighbours=1).neighbours("c")] == ["b"]


def test_itemcf_candidates_sum_recency_weighted_similarities() -> None:
    ch = cf(half_life_s=DAY)
    h = history(["a", "c"], [0.0, DAY])  # weights 0.5 and 1
    out = ch.candidates([h, None, history(["d"], [DAY])], k=10, now=DAY)
    assert ids(out) == [["b", "d", "a", "c"], [], ["c", "b"]]
    assert [s for _, s in out[0]] == pytest.approx([0.5 * R6 + R6, R2, R4, 0.5 * R4])
    excluded = ch.candidates([h], k=10, now=DAY, exclude=[{"a", "c"}])
    assert ids(excluded) == [["b", "d"]]
    assert ids(cf(recent=1).candidates([h], k=10, now=DAY)) == [["b", "d", "a"]]


def test_itemcf_window_and_gap_limit_the_pairs() -> None:
    adjacent = cf(window=1)  # ab 2, bc 2, cd 1 only
    assert [i for i, _ in adjacent.neighbours("a")] == ["b"]
    assert [i for i, _ in adjacent.neighbours("d")] == ["c"]
    log = Interactions.from_columns(user=["u"] * 3, item=["a", "b", "c"], ts=[0.0, 1.0, 5.0])
    gapped = cf(log, max_gap_s=1.5)
    assert [i for i, _ in gapped.neighbours("a")] == ["b"] and gapped.neighbours("c") == []


def test_itemcf_distinct_counts_a_user_once_and_alpha() -> None:
    log = Interactions.from_columns(user=["u"] * 3, item=["a", "b", "a"], ts=[1.0, 2.0, 3.0])
    assert cf(log).neighbours("a") == [("b", pytest.approx(1.0))]
    # every line: ab counted twice, n_a = 2 lines, n_b = 1
    assert cf(log, distinct=False).neighbours("a") == [("b", pytest.approx(2 / 2 ** 0.5))]
    conditional = cf(alpha=1.0)  # c_ij / n_i
    assert as_dict(conditional.neighbours("a"))["b"] == pytest.approx(2 / 2)
    assert as_dict(conditional.neighbours("b"))["a"] == pytest.approx(2 / 3)


def test_itemcf_frozen_ignores_events() -> None:
    ch = cf()
    before = ch.neighbours("a")
    ch.observe(Interactions.from_columns(user=["u9", "u9"], item=["a", "d"], ts=[9.0, 9.0]))
    assert ch.neighbours("a") == before


def test_itemcf_live_learns_new_items_and_pairs() -> None:
    ch = cf(live=True)
    ch.observe(Interactions.from_columns(user=["u2", "u9", "u9"], item=["z", "a", "d"],
                                         ts=[9.0, 9.0, 10.0]))
    # u2 had a, b: z pairs with both; u9 is new: a-d
    assert as_dict(ch.neighbours("z")) == {"a": pytest.approx(1 / 3 ** 0.5),
                                           "b": pytest.approx(1 / 3 ** 0.5)}
    assert as_dict(ch.neighbours("d"))["a"] == pytest.approx(1 / (3 * 2) ** 0.5)


@pytest.mark.parametrize("distinct", [True, False])
def test_itemcf_live_updates_match_a_rebuild(distinct: bool) -> None:
    rng = np.random.default_rng(7)
    n = 400
    log = Interactions.from_columns(
        user=[f"u{j}" for j in rng.integers(0, 25, n)],
        item=[f"i{j}" for j in rng.zipf(1.5, n) % 15], ts=np.sort(rng.integers(0, 60, n)))
    options = {"window": 4, "neighbours": 20, "distinct": distinct, "half_life_s": 10.0}
    live = cf(log.take(np.arange(240)), live=True, **options)
    for lo, hi in ((240, 300), (300, 301), (301, 400)):
        live.observe(log.take(np.arange(lo, hi)))
    rebuilt = cf(log, **options)
    for item in sorted(set(log.item.tolist())):
        assert as_dict(live.neighbours(item)) == pytest.approx(as_dict(rebuilt.neighbours(item)))
    users = [history([f"i{j}" for j in rng.integers(0, 15, 6)], list(range(50, 56)))
             for _ in range(5)]
    for a, b in zip(live.candidates(users, k=15, now=60.0), rebuilt.candidates(
            users, k=15, now=60.0), strict=True):
        assert as_dict(a) == pytest.approx(as_dict(b))

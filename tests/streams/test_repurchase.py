"""Time-aware repurchase: observations, rates, explore, storage, and the recipe around it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import orjson
import pytest

from streams.recall.channels import PopularityChannel
from streams.recall.merge import MergeConfig, merge
from streams.recall.profiles import PROFILES, channels_of, profile_from_json, profile_to_json
from streams.recall.recipe import RECIPE_FILE, Recipe, read_recipe
from streams.recall.repurchase import (
    ExploreChannel,
    RepurchaseChannel,
    RepurchaseConfig,
    RepurchaseModel,
)
from streams.recall.repurchase_fit import explore_rates
from towers.data import Dataset, Interactions, ItemInfo
from towers.errors import CheckpointError
from towers.sequence import DAY, UserHistory

# u: baskets on day 0 {a, b}, day 2 {a}, day 5 {a, c}; v: day 1 {a}, day 3 {b}
LOG = Interactions.from_columns(
    user=["u", "u", "u", "u", "u", "v", "v"],
    item=["a", "b", "a", "a", "c", "a", "b"],
    ts=[0.0, 0.0, 2 * DAY, 5 * DAY, 5 * DAY, 1 * DAY, 3 * DAY])


def test_each_transition_observes_every_item_bought_so_far() -> None:
    config = RepurchaseConfig(counts=(1, 2), gap_days=(0, 1, 3), baskets=(1, 2))
    model = RepurchaseModel.pooled(RepurchaseModel.observe(LOG, config), {}, config,
                                   new_rate=np.zeros(config.explore_shape))
    items, cells, hits = RepurchaseModel.observe(LOG, config)
    seen = sorted(zip(items.tolist(), cells.tolist(), hits.tolist(), strict=True))

    def cell(count: int, days: float, baskets: int) -> int:
        return int(model.cells(np.array([count]), np.array([days * DAY]), baskets,
                               np.array([0.0]))[0])

    # u 0->2: a (1 basket of 1, 0 d) bought again, b (1 of 1, 0 d) not; u 2->5: a (2 of 2,
    # 0 d) again, b (1 of 2, 2 d) not; v 1->3: a (1 of 1, 0 d) not
    assert seen == sorted([("a", cell(1, 0, 1), 1.0), ("b", cell(1, 0, 1), 0.0),
                           ("a", cell(2, 0, 2), 1.0), ("b", cell(1, 2, 2), 0.0),
                           ("a", cell(1, 0, 1), 0.0)])
    assert len({cell(1, 0, 1), cell(1, 0, 2), cell(2, 0, 2), cell(1, 2, 2)}) == 4


def test_explore_counts_new_items_of_the_next_basket_at_their_rank() -> None:
    # after day 0 the ranks are a, b (tied: first seen first) then c; u's day-2 basket
    # holds nothing new, day 5 holds c at rank 2 (after day 2: a 2, b 1, c 0); v's day-3
    # basket holds b, new to v, at rank 1 (after day 1: a 3, b 1)
    # one row of user buckets: no smoothing towards other rows can move it
    rates = explore_rates(LOG, [1], [0, 1, 2], half_life_s=1e12)
    transitions = 3
    assert rates[0].tolist() == pytest.approx([0.0, 1 / transitions, 1 / transitions])
    # by the user's baskets so far: v's transition (1 basket) found b at rank 1, u's second
    # (2 baskets) found c at rank 2; u's first found nothing new
    rows = explore_rates(LOG, [1, 2], [0, 1, 2], half_life_s=1e12)
    assert rows[0, 1] > rows[1, 1] and rows[1, 2] > rows[0, 2]
    # by novelty (distinct items / item-basket pairs): u after day 2 has 2 / 3, v and u
    # after day 0 have 1; c (rank 2) came to the rebuyer, b (rank 1) to a novelty of 1
    novel = explore_rates(LOG, [1], [0, 1, 2], half_life_s=1e12, novelty_edges=[0.0, 0.8])
    assert novel[0, 2] > novel[1, 2] and novel[1, 1] > novel[0, 1]


def _cyclic_log(n_users: int = 40, days: int = 120) -> Dataset:
    """Everyone shops every day; `weekly` is rebought every 7 days, `once` never again."""
    user, item, ts = [], [], []
    for u in range(n_users):
        for day in range(days):
            user.append(f"u{u}"), item.append("bread"), ts.append(day * DAY)
            if (day + u) % 7 == 0:
                user.append(f"u{u}"), item.append("weekly"), ts.append(day * DAY)
            if day == u % 5:
                user.append(f"u{u}"), item.append("once"), ts.append(day * DAY)
    log = Interactions.from_columns(user=user, item=item, ts=ts)
    return Dataset(name="cycle", interactions=log,
                   items={"bread": ItemInfo(category="daily"), "weekly": ItemInfo(category="x"),
                          "once": ItemInfo(category="x")})


def test_the_learned_rate_follows_each_items_cycle() -> None:
    data = _cyclic_log()
    categories = {i: info.category for i, info in data.items.items()}
    model = RepurchaseModel.fit(data.interactions, categories,
                                RepurchaseConfig(gap_days=(0, 1, 2, 4, 6, 7, 8, 14),
                                                 category_prior=0.0, item_prior=1.0))
    history = UserHistory("w")
    for day in (0, 7, 14):
        history.append("weekly", day * DAY)
    history.append("once", 15 * DAY)
    for day in range(21):
        history.append("bread", day * DAY)
    due = dict(model.score(history, now=20 * DAY))  # weekly: 6 days since the last
    early = dict(model.score(history, now=15 * DAY))  # weekly: 1 day since the last
    assert due["weekly"] > due["once"] and due["weekly"] > early["weekly"]
    assert due["bread"] == max(due.values())


def test_explore_channel_puts_new_items_on_the_repurchase_scale() -> None:
    data = _cyclic_log()
    model = RepurchaseModel.fit(data.interactions, {}, RepurchaseConfig())
    popularity = PopularityChannel()
    popularity.fit(data, data.interactions)
    history = UserHistory("new")
    history.append("bread", 0.0)
    [explore] = ExploreChannel(popularity, model).candidates([history], k=5, now=DAY)
    assert [i for i, _ in explore] == ["weekly", "once"]  # bread is the user's own
    assert [s for _, s in explore] == model.explore_rate(np.array([1, 2]), 1.0).tolist()
    [own] = RepurchaseChannel(model).candidates([history], k=5, now=DAY)
    fused = merge([("repurchase", own), ("explore", explore)], k=3,
                  config=MergeConfig(method="raw"))
    assert sorted(fused.scores, reverse=True) == fused.scores and len(fused.items) == 3


def test_a_model_survives_json_and_a_damaged_one_is_named() -> None:
    data = _cyclic_log()
    model = RepurchaseModel.fit(data.interactions, {"bread": "daily"}, RepurchaseConfig())
    again = RepurchaseModel.from_json(orjson.loads(orjson.dumps(model.to_json())))
    history = UserHistory("w")
    history.append("weekly", 0.0), history.append("bread", DAY)
    before, after = model.score(history, 3 * DAY), again.score(history, 3 * DAY)
    assert [i for i, _ in after] == [i for i, _ in before]
    assert [s for _, s in after] == pytest.approx([s for _, s in before], rel=1e-4)
    doc = model.to_json()
    with pytest.raises(ValueError, match="global_rate"):
        RepurchaseModel.from_json({**doc, "global_rate": doc["global_rate"][:-1]})
    with pytest.raises(ValueError, match="new_rate"):
        RepurchaseModel.from_json({**doc, "new_rate": [[-1.0] * len(doc["new_rate"][0])]
                                   * len(doc["new_rate"])})
    daily = doc["category_rate"]["daily"]
    assert 0 < len(daily["cells"]) < len(doc["global_rate"])  # observed cells only
    with pytest.raises(ValueError, match="outside"):
        RepurchaseModel.from_json({**doc, "category_rate": {"daily": {
            "cells": [len(doc["global_rate"])], "rates": [0.5]}}})
    with pytest.raises(ValueError, match="gap_days"):
        RepurchaseModel.from_json({**doc, "config": {**doc["config"], "gap_days": [3, 1]}})


def test_profiles_and_recipes_round_trip_and_a_bad_recipe_is_rejected(tmp_path: Path) -> None:
    for profile in PROFILES.values():
        assert profile_from_json(profile_to_json(profile)) == profile
    with pytest.raises(ValueError, match="unknown profile settings"):
        profile_from_json({**profile_to_json(PROFILES["retail"]), "colour": "red"})
    data = _cyclic_log()
    model = RepurchaseModel.fit(data.interactions, {}, RepurchaseConfig())
    profile = PROFILES["retail"]
    with pytest.raises(ValueError, match="no fitted repurchase model"):
        Recipe(profile=profile.__class__(**{**profile.__dict__,
                                            "repurchase": RepurchaseConfig()}))
    recipe = Recipe(profile=profile.__class__(**{**profile.__dict__,
                                                 "repurchase": model.config}),
                    repurchase=model, chosen_on={"valid HitRate@50": {"x": 0.5}})
    (tmp_path / RECIPE_FILE).write_bytes(recipe.to_bytes())
    loaded = read_recipe(tmp_path)
    assert loaded is not None and loaded.profile == recipe.profile
    assert loaded.chosen_on == recipe.chosen_on
    assert read_recipe(tmp_path / "nowhere") is None
    (tmp_path / RECIPE_FILE).write_bytes(b"{\"profile\": {\"merge\": 3}}")
    with pytest.raises(CheckpointError, match=RECIPE_FILE):
        read_recipe(tmp_path)


def test_channels_of_swaps_repeat_for_repurchase_and_explore() -> None:
    data = _cyclic_log()
    model = RepurchaseModel.fit(data.interactions, {}, RepurchaseConfig())
    profile = PROFILES["retail"]
    plain = channels_of(profile, tower=None, itemcf=[], popularity=PopularityChannel())
    assert [c.name for c in plain] == ["repeat", "popularity", "returning"]
    timed = profile.__class__(**{**profile.__dict__, "repurchase": model.config})
    names = [c.name for c in channels_of(timed, tower=None, itemcf=[],
                                         popularity=PopularityChannel(), repurchase=model)]
    assert names == ["repurchase", "explore"]
    with pytest.raises(ValueError, match="fitted repurchase model"):
        channels_of(timed, tower=None, itemcf=[], popularity=PopularityChannel())


def test_tifu_vector_decays_within_and_between_groups() -> None:
    from streams.recall.tifu import TifuConfig, tifu_vector

    history = UserHistory("u")
    for t, items in enumerate([["a"], ["a", "b"], ["c"], ["a"]]):
        for item in items:
            history.append(item, float(t))
    config = TifuConfig(within_decay=0.5, group_decay=0.25, groups=2)
    # groups [b0, b1] and [b2, b3]; inside: 0.5^(n-1-i) / 2; between: 0.25^(1-j) / 2
    v = tifu_vector(history, config)
    first, second = 0.25 / 2, 1 / 2
    assert v == pytest.approx({"a": first * (0.5 / 2 + 1 / 2) + second * (1 / 2),
                               "b": first * (1 / 2), "c": second * (0.5 / 2)})


def test_tifu_knn_borrows_from_the_nearest_users_only() -> None:
    from streams.recall.tifu import TifuConfig, TifuKNNChannel

    # twins buy {x, y}; strangers buy {p, q}; the query bought x only
    users = ["t1", "t2", "s1", "s2"]
    baskets = {"t1": ["x", "y"], "t2": ["x", "y"], "s1": ["p", "q"], "s2": ["p", "q"]}
    log = Interactions.from_columns(user=[u for u in users for _ in baskets[u]],
                                    item=[i for u in users for i in baskets[u]],
                                    ts=[0.0] * 8)
    channel = TifuKNNChannel(TifuConfig(neighbours=2, alpha=0.5))
    channel.fit(Dataset(name="t", interactions=log), log)
    query = UserHistory("q")
    query.append("x", 1.0)
    [ranked] = channel.candidates([query], k=5, now=2.0)
    assert [i for i, _ in ranked] == ["x", "y"]
    [blocked] = channel.candidates([query], k=5, now=2.0, exclude=[{"x"}])
    assert [i for i, _ in blocked] == ["y"]


def test_long_histories_are_observed_through_the_serving_window() -> None:
    from streams.recall.repurchase import parse
    from streams.recall.repurchase_fit import _long_user, _short_user

    rng = np.random.default_rng(3)
    items = np.array([f"i{int(x)}" for x in rng.integers(0, 6, 40)], dtype=object)
    ts = np.repeat(np.arange(10) * DAY, 4)  # 10 baskets of 4 lines
    config = RepurchaseConfig(cycle=(0.0, 0.5, 1.0, 2.0))
    model = RepurchaseModel.pooled(RepurchaseModel.observe(LOG, config), {}, config,
                                   new_rate=np.zeros(config.explore_shape))

    def as_set(part: tuple[np.ndarray, np.ndarray, np.ndarray]) -> list[tuple[str, int, bool]]:
        return sorted(zip(part[0].tolist(), part[1].tolist(), part[2].tolist(), strict=True))

    whole = _short_user(items.astype(str), ts, model.cells)
    assert whole is not None
    assert as_set(whole) == as_set(_long_user(items.astype(str), ts, model.cells, 10**6))
    # with a window of 10 lines: each transition sees what a worker reading 10 lines sees
    expected = []
    for k in range(9):
        history = UserHistory("u", max_len=10)
        for item, t in zip(items[: 4 * (k + 1)].tolist(), ts[: 4 * (k + 1)].tolist(),
                           strict=True):
            history.append(item, float(t))
        p = parse(history)
        cells = model.cells(p.counts, ts[4 * k] - p.last, p.baskets, p.last - p.first)
        nxt = set(items[4 * (k + 1): 4 * (k + 2)].tolist())
        expected += [(i, int(c), i in nxt) for i, c in zip(p.items, cells.tolist(),
                                                             strict=True)]
    got = _long_user(items.astype(str), ts, model.cells, 10)
    assert got is not None and as_set(got) == sorted(expected)


def test_a_history_changed_between_calls_is_parsed_again() -> None:
    data = _cyclic_log()
    model = RepurchaseModel.fit(data.interactions, {}, RepurchaseConfig())
    history = UserHistory("w", max_len=2)
    history.append("bread", 0.0), history.append("weekly", DAY)
    histories = [history]
    channel = RepurchaseChannel(model)
    first = channel.candidates(histories, k=5, now=2 * DAY)
    history.append("once", 2 * DAY)  # same list, same length (bounded), new newest line
    second = channel.candidates(histories, k=5, now=2 * DAY)
    assert {i for i, _ in first[0]} == {"bread", "weekly"}
    assert {i for i, _ in second[0]} == {"weekly", "once"}

"""The recall step: fallback for cold users, filling, filters, the RecallSystem adapter."""

from __future__ import annotations

from streams.recall.channels import PopularityChannel, RepeatChannel
from streams.recall.history import InMemoryHistories
from streams.recall.merge import MergeConfig
from streams.recall.recaller import Filters, Recaller, RecallerSystem
from towers.data import ContextRecord, Dataset, Interactions

# popularity: p1 (4 lines) > p2 (3) > p3 (2) = b (2, seen later) > a (1);
# u1 had a then b, u2 had b
LOG = Interactions.from_columns(
    user=["x"] * 9 + ["u1", "u1", "u2"],
    item=["p1"] * 4 + ["p2"] * 3 + ["p3"] * 2 + ["a", "b", "b"],
    ts=[0.0] * 9 + [1.0, 2.0, 3.0],
    region=[""] * 9 + ["north", "north", "south"])
DATA = Dataset(name="t", interactions=LOG)


def recaller(*, filters: Filters | None = None, fill: bool = True,
             channels: list | None = None) -> Recaller:  # type: ignore[type-arg]
    pop = PopularityChannel()
    pop.fit(DATA, LOG)
    return Recaller(channels=channels if channels is not None else [RepeatChannel()],
                    fallback=pop, histories=InMemoryHistories.from_interactions(LOG),
                    filters=filters, fill=fill)


def test_warm_users_get_channels_cold_users_the_fallback() -> None:
    u1, cold = recaller(fill=False).recall(["u1", "new"], k=3, now=2.0)
    assert (u1.user_id, u1.items, u1.channels) == ("u1", ["b", "a"], ["repeat", "repeat"])
    assert (cold.user_id, cold.items) == ("new", ["p1", "p2", "p3"])
    assert cold.channels == ["popularity"] * 3


def test_fill_tops_up_below_every_merged_item() -> None:
    [u2] = recaller().recall(["u2"], k=3, now=3.0)
    assert u2.items == ["b", "p1", "p2"]
    assert u2.channels == ["repeat", "popularity", "popularity"]
    assert u2.scores[0] > u2.scores[1] > u2.scores[2] > 0


def test_seen_filter_drops_everything_the_user_had() -> None:
    [u1] = recaller(filters=Filters(seen=True)).recall(["u1"], k=3, now=2.0)
    assert u1.items == ["p1", "p2", "p3"]


def test_unavailable_and_region_rules() -> None:
    rules = Filters(unavailable=frozenset({"p1"}), deny={"north": {"p2"}},
                    allow={"south": {"b", "p3"}})
    r = recaller(filters=rules)
    u1, u2, cold = r.recall(["u1", "u2", "new"], k=3, now=3.0)
    assert u1.items == ["b", "a", "p3"]  # north: no p2, nowhere p1
    assert u2.items == ["b", "p3"]  # south sells only b and p3
    assert cold.items == ["p2", "p3", "b"]  # no region: only the global rules
    deny_all = recaller(filters=Filters(deny={"": {"p1", "b"}}))
    assert deny_all.recall(["u2"], k=2, now=3.0)[0].items == ["p2", "p3"]
    # the workers pass the store's unavailable set per call
    assert r.rank(["new"], [None], None, k=1, now=3.0, unavailable=set())[0].items == ["p1"]


def test_several_channels_are_merged() -> None:
    pop = PopularityChannel()
    pop.fit(DATA, LOG)
    r = Recaller(channels=[RepeatChannel(), pop], fallback=pop,
                 histories=InMemoryHistories.from_interactions(LOG),
                 merge=MergeConfig(rrf_k=0, weights={"repeat": 2.0}))
    [u1] = r.recall(["u1"], k=3, now=2.0)
    # repeat b 2/1, a 2/2; popularity p1 1/1, p2 1/2, p3 1/3, b 1/4, a 1/5
    assert u1.items == ["b", "a", "p1"]
    assert u1.channels == ["repeat", "repeat", "popularity"]


def test_recaller_system_follows_the_data_set_and_stock() -> None:
    system = RecallerSystem(name="s", channels=[RepeatChannel()], fallback=PopularityChannel())
    seen_data = Dataset(name="t", interactions=LOG, seen_filter=True)
    system.fit(seen_data, LOG)
    assert system.recall(["u1"], k=2, now=2.0) == [["p1", "p2"]]
    system.observe_context([ContextRecord(ts=4.0, stock={"p1": False})])
    assert system.recall(["u1"], k=2, now=4.0) == [["p2", "p3"]]
    system.observe_context([ContextRecord(ts=5.0, stock={"p1": True})])
    system.observe(Interactions.from_columns(user=["u1"], item=["p2"], ts=[6.0]))
    assert system.recall(["u1"], k=2, now=6.0) == [["p1", "p3"]]
    system.fit(DATA, LOG)  # seen filter off: own items come back
    assert system.recall(["u1"], k=2, now=2.0) == [["b", "a"]]

"""The frozen item-to-item table survives a round trip through its file form."""

from __future__ import annotations

import orjson
import pytest

from streams.recall.history import InMemoryHistories
from streams.recall.itemcf import ItemCFChannel, ItemCFConfig
from towers.datasets import load_dataset


def test_round_trip_gives_the_same_candidates() -> None:
    data = load_dataset("market", days=15)
    channel = ItemCFChannel(ItemCFConfig(neighbours=20))
    channel.fit(data, data.interactions)
    copy = ItemCFChannel.from_json(orjson.loads(orjson.dumps(channel.to_json())))
    histories = InMemoryHistories.from_interactions(data.interactions)
    users = histories.users()[:30]
    now = float(data.interactions.ts.max())
    assert copy.candidates(histories.many(users), k=15, now=now) == \
        channel.candidates(histories.many(users), k=15, now=now)


@pytest.mark.parametrize("breakage", ["format", "index", "shape", "config"])
def test_bad_tables_are_rejected(breakage: str) -> None:
    data = load_dataset("market", days=5)
    channel = ItemCFChannel(ItemCFConfig(neighbours=5))
    channel.fit(data, data.interactions)
    table = channel.to_json()
    if breakage == "format":
        table["format"] = "pickle"
    elif breakage == "index":
        table["neighbours"][0][0] = 10**6  # type: ignore[index]
    elif breakage == "config":  # refused by a check that `python -O` keeps
        table["config"]["neighbours"] = 0  # type: ignore[index]
    else:
        table["n"] = table["n"][:-1]  # type: ignore[index]
    with pytest.raises(ValueError, match="neighbour table"):
        ItemCFChannel.from_json(table)

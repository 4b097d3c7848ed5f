"""A real worker process between the real broker and Redis: events in, recall lists out."""

from __future__ import annotations

import asyncio
import base64
import time

import orjson
import pytest

from streams.state.connect import open_state_store
from streams.state.contract import StateConfig
from tests.streams.harness import WorkerProcess, consume, deployment_env, get_json, produce

pytestmark = pytest.mark.services


def _event(i: int, user: str, item: str, ts: float, **extra: object) -> bytes:
    return orjson.dumps({"event_id": f"e{i}", "user_id": user, "item_id": item,
                         "type": "purchase", "quantity": 1 + i % 3, "ts": ts, **extra})


@pytest.fixture()
def deployment(broker, redis_server, tmp_path):  # type: ignore[no-untyped-def]
    env = deployment_env(broker.url, redis_server.url, tmp_path)
    worker = WorkerProcess(env, tmp_path / "worker.log").start()
    yield env, worker
    code = worker.stop()
    assert code == 0, worker.logs()


def test_events_in_recall_lists_out(broker, redis_server, deployment) -> None:  # type: ignore[no-untyped-def]
    env, worker = deployment
    t0 = time.time() - 3600
    users = [f"u{j}" for j in range(6)]
    good = []
    for i in range(60):
        user = users[i % len(users)]
        good.append((user.encode(), _event(i, user, f"sku{(i * 7) % 13}", t0 + i,
                                            region="north" if i % 2 else "south")))
    bad = [(b"u0", b"not json"), (b"u1", orjson.dumps({"event_id": "x1", "user_id": "u1"})),
           (b"u2", _event(1000, "u2", "sku1", time.time() + 10 * 86_400)),
           (b"u3", _event(1001, "u3", "sku1", t0, quantity=-1)),
           (b"u4", _event(1002, "u\x00x", "sku1", t0))]
    topic = env["NEARLINE_TOPIC_INTERACTIONS"]
    produce(broker.url, topic, good[:30] + bad + good[30:])
    produce(broker.url, topic, good[:10])  # redelivered: must change nothing

    last = {u: f"e{max(i for i in range(60) if users[i % 6] == u)}" for u in users}

    def complete(records: list) -> bool:  # type: ignore[type-arg]
        got = {orjson.loads(r.value)["user_id"]: orjson.loads(r.value)["last_event_id"]
               for r in records}
        return all(got.get(u) == e for u, e in last.items())

    recalls = consume(broker.url, env["NEARLINE_TOPIC_RECALLS"], partitions=2, done=complete)
    assert complete(recalls), worker.logs()
    result = orjson.loads(recalls[-1].value)
    assert set(result) >= {"user_id", "items", "scores", "channels", "version",
                           "last_event_id", "last_event_ts", "emitted_ts", "latency_ms"}
    assert len(result["items"]) == len(set(result["items"])) > 0
    assert all(recall.key == orjson.loads(recall.value)["user_id"].encode()
               for recall in recalls)

    dead = consume(broker.url, env["NEARLINE_TOPIC_DEAD_LETTER"], partitions=2,
                   done=lambda r: len(r) >= len(bad))
    letters = [orjson.loads(d.value) for d in dead]
    assert sorted(d["reason"] for d in letters) == sorted(
        ["not_json", "missing_field", "future_ts", "bad_value", "bad_value"])
    assert {base64.b64decode(d["original_b64"]) for d in letters} == {v for _, v in bad}

    store = open_state_store(redis_server.url,
                             config=StateConfig(prefix=env["NEARLINE_STATE_PREFIX"]))
    histories = asyncio.run(store.histories(users))
    assert [len(h) for h in histories] == [10] * 6  # 60 events, the 10 redelivered ignored

    status, body = get_json(f"{worker.web}/recall/u1?k=3")
    assert status == 200 and len(body["items"]) == 3 and body["user_id"] == "u1"
    assert get_json(f"{worker.web}/recall/u1?k=abc")[0] == 400
    assert get_json(f"{worker.web}/recall/nobody?k=2")[1]["items"]  # popularity
    assert get_json(f"{worker.web}/healthz")[1]["ok"] is True
    with __import__("urllib.request").request.urlopen(f"{worker.web}/metrics") as r:
        metrics = r.read().decode()
    assert "nearline_events_dead_lettered_total" in metrics


def test_context_and_item_updates_change_the_lists(broker, deployment) -> None:  # type: ignore[no-untyped-def]
    env, worker = deployment
    t0 = time.time() - 3600
    events = [(b"s1", _event(i, "s1", f"sku{i % 4}", t0 + i)) for i in range(8)]
    produce(broker.url, env["NEARLINE_TOPIC_INTERACTIONS"], events)
    recalls_topic = env["NEARLINE_TOPIC_RECALLS"]

    def lists(records: list) -> list[dict]:  # type: ignore[type-arg]
        return [orjson.loads(r.value) for r in records]

    first = consume(broker.url, recalls_topic, partitions=2,
                    done=lambda rs: any(x["last_event_id"] == "e7" for x in lists(rs)))
    top = lists(first)[-1]["items"][0]
    assert top.startswith("sku")

    # a store-level context event: the item is out of stock -> the store's list changes
    context = orjson.dumps({"event_id": "c1", "ts": t0 + 10, "user_id": "s1",
                            "weather": "rain", "temperature": 12.5, "stock": {top: False}})
    produce(broker.url, env["NEARLINE_TOPIC_CONTEXT"], [(b"s1", context)])
    second = consume(broker.url, recalls_topic, partitions=2,
                     done=lambda rs: len(rs) > len(first))
    assert top not in lists(second)[-1]["items"], worker.logs()

    # an item update taking another item off the catalogue: gone from on-demand lists too
    other = lists(second)[-1]["items"][0]
    update = orjson.dumps({"event_id": "i1", "ts": t0 + 11, "item_id": other,
                           "available": False})
    produce(broker.url, env["NEARLINE_TOPIC_ITEMS"], [(other.encode(), update)])
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        body = get_json(f"{worker.web}/recall/newcomer?k=10")[1]
        if other not in body["items"]:
            break
        time.sleep(0.2)
    assert other not in body["items"] and top not in body["items"]

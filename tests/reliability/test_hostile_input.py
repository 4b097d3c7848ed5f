"""Hostile input: every malformed message ends in the dead-letter topic with its reason,
weird but valid ids are applied and kept apart, and the worker keeps serving."""

from __future__ import annotations

import base64
import http.client
import signal
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import orjson
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from streams.errors import EventError
from streams.state.contract import StateKeys
from streams.worker.records import DEAD_LETTER_KEEP, dead_letter, decode_message, decode_record
from tests.reliability.conftest import (
    ACCOUNTS,
    Accounting,
    Deployment,
    Message,
    Worker,
    check_metrics,
)
from tests.streams.harness import consume, get_json

CORPUS = Path(__file__).parent / "corpus" / "hostile.jsonl"
MAX_BYTES = 64 * 1024  # the worker's default NEARLINE_MAX_EVENT_BYTES
NOW = time.time()

Case = tuple[str, bytes]  # (dead-letter reason, message value)


def _event(n: int) -> dict[str, Any]:
    return {"event_id": f"h{n}", "user_id": f"hu{n % 7}", "item_id": f"sku{n % 11}",
            "type": "purchase", "quantity": 1 + n % 3, "ts": 1.7e9 + n}


def _parses(raw: bytes) -> bool:
    try:
        orjson.loads(raw)
    except orjson.JSONDecodeError:
        return False
    return True


_NUMERIC = ("ts", "quantity", "price")
_TEXT = ("event_id", "user_id", "item_id", "type", "region")
_ANY_JSON = st.recursive(st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1)
                         | st.text(max_size=5),
                         lambda inner: st.lists(inner, max_size=3)
                         | st.dictionaries(st.text(max_size=3), inner, max_size=3), max_leaves=6)


@st.composite
def wrong_type(draw: st.DrawFn) -> Case:
    name = draw(st.sampled_from(_NUMERIC + _TEXT))
    if name in _TEXT:
        value = draw(_ANY_JSON.filter(lambda v: not isinstance(v, str)))
    else:  # numbers: bools, strings, containers; null only where it is not allowed
        value = draw(_ANY_JSON.filter(lambda v: isinstance(v, bool) or not isinstance(v, int)
                                      ).filter(lambda v: v is not None or name != "price"))
    return "bad_value", orjson.dumps({**_event(draw(st.integers(0, 10**6))), name: value})


@st.composite
def number_token(draw: st.DrawFn) -> Case:
    """NaN / Infinity / 1e400 as JSON tokens (not JSON), or as strings (wrong type)."""
    name = draw(st.sampled_from(_NUMERIC))
    token = draw(st.sampled_from(["NaN", "Infinity", "-Infinity", "1e400", "-1e999"]))
    raw = orjson.dumps({**_event(draw(st.integers(0, 10**6))), name: "@"})
    if draw(st.booleans()):
        return "not_json", raw.replace(b'"@"', token.encode())
    return "bad_value", raw.replace(b'"@"', orjson.dumps(token))


@st.composite
def out_of_range(draw: st.DrawFn) -> Case:
    base = _event(draw(st.integers(0, 10**6)))
    field, value, reason = draw(st.sampled_from([
        ("quantity", st.floats(max_value=0.0, allow_nan=False, allow_infinity=False),
         "bad_value"),
        ("quantity", st.floats(min_value=1e6, exclude_min=True, allow_infinity=False),
         "bad_value"),
        ("ts", st.floats(max_value=0.0, exclude_max=True, allow_infinity=False,
                         allow_nan=False), "bad_value"),
        ("ts", st.floats(min_value=1e11, exclude_min=True, allow_infinity=False), "bad_value"),
        ("ts", st.floats(min_value=NOW + 2 * 86_400, max_value=1e11), "future_ts"),
        ("price", st.floats(max_value=0.0, exclude_max=True, allow_infinity=False,
                            allow_nan=False), "bad_value")]))
    return reason, orjson.dumps({**base, field: draw(value)})


@st.composite
def bad_id(draw: st.DrawFn) -> Case:
    name = draw(st.sampled_from(("event_id", "user_id", "item_id")))
    base = _event(draw(st.integers(0, 10**6)))
    if draw(st.booleans()):  # a control character somewhere
        text = draw(st.text(min_size=0, max_size=20))
        control = draw(st.sampled_from([chr(c) for c in (*range(32), 127)]))
        at = draw(st.integers(0, len(text)))
        value = text[:at] + control + text[at:]
    else:  # far too long
        value = draw(st.sampled_from("xé🙂")) * draw(st.integers(257, 10_000))
    return "bad_value", orjson.dumps({**base, name: value})


@st.composite
def shape(draw: st.DrawFn) -> Case:
    base = _event(draw(st.integers(0, 10**6)))
    kind = draw(st.sampled_from(("missing", "unknown", "not_object", "deep", "huge", "bytes")))
    if kind == "missing":
        name = draw(st.sampled_from(("event_id", "user_id", "item_id", "type", "ts")))
        return "missing_field", orjson.dumps({k: v for k, v in base.items() if k != name})
    if kind == "unknown":
        name = draw(st.text(min_size=1, max_size=20).filter(lambda k: k not in base and k not in (
            "price", "region", "record")))
        return "unknown_field", orjson.dumps({**base, name: 1})
    if kind == "not_object":
        return "not_object", orjson.dumps(draw(_ANY_JSON.filter(  # an array is an envelope
            lambda v: not isinstance(v, dict | list))))
    if kind == "deep":  # deeper than any JSON parser here accepts, yet small
        depth = draw(st.integers(1025, 10_000))  # <= 60 KB
        return "not_json", b'{"a":' * depth + b"1" + b"}" * depth
    if kind == "huge":  # 1-3 times the limit, in bytes: "\x00" is 6 bytes of JSON
        char = draw(st.sampled_from("aé\x00"))
        size = draw(st.integers(MAX_BYTES, 3 * MAX_BYTES)) // len(orjson.dumps(char)[1:-1])
        return "too_large", orjson.dumps({**base, "user_id": char * size})
    raw = draw(st.binary(min_size=1, max_size=2000).filter(lambda b: not _parses(b)))
    return "not_json", raw


HOSTILE = st.one_of(wrong_type(), number_token(), out_of_range(), bad_id(), shape())


def corpus() -> list[tuple[str, str, bytes | None]]:
    """(topic kind, reason, value) of each fixed hostile input; value None is a null."""
    out = []
    for line in CORPUS.read_text().splitlines():
        if not line.strip():
            continue
        entry = orjson.loads(line)
        value = None if entry.get("null") else (
            base64.b64decode(entry["b64"]) if "b64" in entry else entry["text"].encode())
        out.append((entry["topic"], entry["reason"], value))
    return out


_RECORD = {"interactions": "interaction", "context": "context", "items": "item"}


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                  HealthCheck.data_too_large])
@given(case=HOSTILE)
def test_decoding_gives_each_hostile_payload_its_reason(case: Case) -> None:
    reason, raw = case
    error = _refusal(raw, "interaction")
    assert error.reason == reason, error
    letter = orjson.loads(dead_letter(raw, topic="t", partition=0, offset=1,
                                      error=error, now=NOW).dumps())
    kept = base64.b64decode(letter["original_b64"])
    assert kept == raw[:DEAD_LETTER_KEEP] and letter["original_bytes"] == len(raw)
    assert letter["truncated"] == (len(raw) > DEAD_LETTER_KEEP)


@pytest.mark.parametrize(("kind", "reason", "value"), corpus())
def test_corpus_entry_is_refused_with_its_reason(kind: str, reason: str, value: bytes | None
                                                 ) -> None:
    assert _refusal(value, _RECORD[kind]).reason == reason


def _refusal(raw: bytes | None, kind: str) -> EventError:
    """The one error the worker's decoding gives a whole message."""
    ((element, error, kept),) = decode_message(
        raw, kind=kind, now=NOW, max_bytes=MAX_BYTES, max_future_s=86_400.0,
        max_envelope_events=1000, max_envelope_bytes=1 << 20)
    assert isinstance(error, EventError) and element == -1 and kept == raw, error
    return error


# --- a worker fed hostile input -------------------------------------------------------

@pytest.fixture(scope="module")
def served(broker: Any, redis_server: Any, tmp_path_factory: pytest.TempPathFactory
           ) -> Iterator[tuple[Deployment, Worker]]:
    d = Deployment(broker.url, redis_server.url, tmp_path_factory.mktemp("hostile"))
    w = d.worker("w1", assigned=d.settings.partitions)
    yield d, w
    metrics, counters = w.metrics(), d.counters()
    assert w.stop() == 0, w.logs()  # it never died on what it was fed
    check_metrics(metrics)
    dead = int(metrics["nearline_events_dead_lettered_total"])
    letters = consume(d.settings.kafka_url, d.topic("dead_letter"),
                      partitions=d.settings.partitions, done=lambda r: len(r) >= dead)
    consumed = int(metrics["nearline_events_in_total"])
    row = Accounting("hostile input (generated + corpus), 1 worker", consumed, consumed,
                     counters["applied"], len(letters),
                     consumed - counters["applied"] - len(letters) - counters["duplicates"],
                     counters["duplicates"], counters)
    ACCOUNTS.append(row)
    assert row.lost == 0 and len(letters) == dead, row


def _feed(d: Deployment, w: Worker, cases: list[tuple[str, str, bytes | None]]
          ) -> dict[str, Any]:
    """Produce the cases, then one good event of a fresh user on the same partition;
    returns that user's recall list once it exists (every case before it was handled)."""
    user = f"sentinel-{uuid.uuid4().hex[:8]}"
    good = orjson.dumps({**_event(0), "event_id": user, "user_id": user})
    d.produce([Message(kind, user.encode(), value) for kind, _, value in cases]
              + [Message("interactions", user.encode(), good)])
    key, client = StateKeys(d.prefix).user(user, "recall"), d.redis()
    try:
        deadline = time.monotonic() + 60
        while (raw := client.get(key)) is None:
            assert "Crashed reason=" not in w.log.read_text(), w.logs()  # an agent died
            assert time.monotonic() < deadline, "the good event after the bad ones got no list"
            time.sleep(0.1)
    finally:
        client.close()
    return orjson.loads(raw)


def _expect_letters(d: Deployment, cases: list[tuple[str, str, bytes | None]]) -> None:
    """Every case in the dead-letter topic, from its topic, with its reason."""
    want = {(d.topic(kind), reason, (value or b"")[:DEAD_LETTER_KEEP])
            for kind, reason, value in cases}

    def seen(records: list[Any]) -> set[tuple[str, str, bytes]]:
        letters = [orjson.loads(r.value) for r in records]
        return {(x["topic"], x["reason"], base64.b64decode(x["original_b64"])) for x in letters}
    records = consume(d.settings.kafka_url, d.topic("dead_letter"),
                      partitions=d.settings.partitions, done=lambda r: want <= seen(r))
    missing = want - seen(records)
    assert not missing, [(t, r, v[:100]) for t, r, v in missing][:5]


def _still_serving(w: Worker) -> None:
    assert w.alive(), w.logs()
    status, body = get_json(w.web + "/healthz")
    assert status == 200 and body["ok"], body


@settings(max_examples=8, deadline=None, phases=[Phase.generate],
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(cases=st.lists(HOSTILE, min_size=10, max_size=25))
def test_worker_dead_letters_generated_hostile_input(served: tuple[Deployment, Worker],
                                                     cases: list[Case]) -> None:
    d, w = served
    fed = [("interactions", reason, raw) for reason, raw in cases]
    assert _feed(d, w, fed)["items"]
    _expect_letters(d, fed)
    _still_serving(w)


def test_worker_dead_letters_the_corpus(served: tuple[Deployment, Worker]) -> None:
    d, w = served
    cases = corpus()
    assert {kind for kind, _, _ in cases} == {"interactions", "context", "items"}
    assert _feed(d, w, cases)["items"]
    _expect_letters(d, cases)
    _still_serving(w)


def test_a_message_near_the_broker_size_limit_is_dead_lettered(deploy) -> None:  # type: ignore[no-untyped-def]
    """900 KB in (the broker takes it): a too_large dead letter, the worker goes on."""
    d = deploy()
    w = d.worker("w1", assigned=d.settings.partitions)
    raw = orjson.dumps({**_event(1), "user_id": "u" * 900_000})
    try:
        assert _feed(d, w, [("interactions", "too_large", raw)])["items"]
    finally:
        if "Crashed reason=" in w.log.read_text():
            w.stop(signal.SIGKILL)  # a crashed agent holds SIGTERM for 30 s
    (letter,) = [orjson.loads(r.value) for r in consume(
        d.settings.kafka_url, d.topic("dead_letter"), partitions=d.settings.partitions,
        done=lambda r: len(r) >= 1)]
    assert letter["reason"] == "too_large"
    assert raw.startswith(base64.b64decode(letter["original_b64"]))  # all of it, or its head
    _still_serving(w)


@pytest.mark.parametrize("char", ["\x85", "\x9b", "\x80"])
def test_c1_control_characters_in_ids_are_refused(char: str) -> None:
    raw = orjson.dumps({**_event(2), "user_id": f"u{char}1"})
    with pytest.raises(EventError, match="control"):
        decode_record(raw, kind="interaction", now=NOW, max_bytes=MAX_BYTES,
                      max_future_s=86_400.0)


WEIRD_IDS = ["a}:{u:b", "b", "}", "{", "%7D", "%", "*", "?", "[x]", "\\", "u:{ctx}", "ünï",
             "🙂" * 64, "x" * 256, " ", "a b", "..", "../../etc/passwd", "\u2028", "\u200b",
             "nl:{u:b}:seq", "'; DROP TABLE users; --", "$(touch /tmp/nearline-pwned)"]


def test_weird_but_valid_ids_are_applied_and_kept_apart(served: tuple[Deployment, Worker]
                                                       ) -> None:
    d, w = served
    msgs = [Message("interactions", user.encode(), orjson.dumps(
        {**_event(j), "event_id": f"weird{j}-{k}", "user_id": user, "item_id": f"w{j}-{k}"}),
        f"weird{j}-{k}", user=user) for j, user in enumerate(WEIRD_IDS) for k in range(2)]
    d.produce(msgs)
    snap = d.wait_applied(msgs, timeout=60)
    for j, user in enumerate(WEIRD_IDS):
        s = snap["users"][user]
        assert s["seen"] == [f"w{j}-0", f"w{j}-1"] and s["features"]["events"] == 2, user
        if not set(user) & set("/{}"):  # a slash cannot be in one path segment; braces: below
            status, body = get_json(f"{w.web}/recall/{_segment(user)}?k=5")
            assert status == 200 and body["user_id"] == user, (user, status, body)
    assert not Path("/tmp/nearline-pwned").exists()
    _still_serving(w)


def _segment(user_id: str) -> str:
    return quote(user_id, safe="").replace(".", "%2E")  # "..": not a dot segment


def test_http_serves_user_ids_with_braces(served: tuple[Deployment, Worker]) -> None:
    d, w = served
    user = "a}:{u:b"
    d.produce([Message("interactions", user.encode(), orjson.dumps(
        {**_event(3), "event_id": "brace1", "user_id": user}))])
    assert _get(w, f"/recall/{_segment(user)}") == 200


def _get(w: Worker, target: str, method: str = "GET") -> int:
    """Status of a raw request (the target is sent as given, no normalisation)."""
    conn = http.client.HTTPConnection("127.0.0.1", int(w.env["NEARLINE_WEB_PORT"]), timeout=10)
    try:
        conn.putrequest(method, target, skip_accept_encoding=True)
        conn.endheaders()
        response = conn.getresponse()
        response.read()
        return response.status
    finally:
        conn.close()


BAD_PARAMETERS = [
    "/recall/u1?k=0", "/recall/u1?k=-1", "/recall/u1?k=101", "/recall/u1?k=abc",
    "/recall/u1?k=", "/recall/u1?k=1.5", "/recall/u1?k=1e3", "/recall/u1?k=%205",
    "/recall/u1?k=0x10", "/recall/%00", "/recall/a%0Ab", "/recall/%1B%5B31m",
    "/recall/" + "x" * 257, "/recall/" + "x" * 10_000, "/recall/a/b", "/recall/", "/recall",
]


@pytest.mark.parametrize("target", BAD_PARAMETERS, ids=lambda t: t[:40])
def test_http_refuses_bad_parameters_with_4xx(served: tuple[Deployment, Worker],
                                              target: str) -> None:
    _, w = served
    assert 400 <= _get(w, target) < 500
    _still_serving(w)


@pytest.mark.parametrize("target", [
    "/recall/%2e%2e", "/recall/{u:x}", "/recall/u1?k=5&k=6", "/recall/%E2%80%A8",
    "/recall/%FF", "/recall/%ED%A0%80", "/recall/..%2F..%2Fetc%2Fpasswd",
    "/healthz?x=%00", "/version/../healthz"])
def test_http_odd_but_harmless_requests_are_answered(served: tuple[Deployment, Worker],
                                                     target: str) -> None:
    _, w = served
    assert _get(w, target) in (200, 404)
    _still_serving(w)


@pytest.mark.parametrize("k", ["%C2%B2", "9" * 5000, "%D9%A3"],
                         ids=["superscript-two", "5000-digits", "arabic-indic-three"])
def test_http_k_that_int_cannot_parse_is_a_4xx(served: tuple[Deployment, Worker], k: str
                                               ) -> None:
    _, w = served
    assert 400 <= _get(w, f"/recall/u1?k={k}") < 500
    _still_serving(w)


def test_an_envelope_applies_its_good_events_and_dead_letters_each_bad_one(
        served: tuple[Deployment, Worker]) -> None:
    """One message, a JSON array: the good events applied in order, every bad one its own
    dead letter naming its position, none lost."""
    d, w = served
    user = f"env-{uuid.uuid4().hex[:8]}"
    good = [{**_event(n), "event_id": f"{user}-{n}", "user_id": user, "item_id": f"sku{n}"}
            for n in range(3)]
    bad = [({**good[0], "event_id": f"{user}-neg", "quantity": -1}, "bad_value"),
           ("not an object", "not_object"),
           ({**good[0], "event_id": f"{user}-late", "ts": NOW + 10 * 86_400}, "future_ts")]
    envelope = [good[0], bad[0][0], good[1], bad[1][0], good[2], bad[2][0]]
    d.produce([Message("interactions", user.encode(), orjson.dumps(envelope))])
    snap = d.wait_applied([Message("interactions", user.encode(), None, e["event_id"],
                                   user=user) for e in good], timeout=60)
    state = snap["users"][user]
    assert state["seen"] == ["sku0", "sku1", "sku2"] and state["features"]["events"] == 3
    want = {(1, "bad_value", orjson.dumps(bad[0][0])), (3, "not_object", b'"not an object"'),
            (5, "future_ts", orjson.dumps(bad[2][0]))}

    def seen(records: list[Any]) -> set[tuple[int, str, bytes]]:
        letters = [orjson.loads(r.value) for r in records]
        return {(x["element"], x["reason"], base64.b64decode(x["original_b64"]))
                for x in letters if x["topic"] == d.topic("interactions")}
    records = consume(d.settings.kafka_url, d.topic("dead_letter"),
                      partitions=d.settings.partitions, done=lambda r: want <= seen(r))
    assert want <= seen(records)
    _still_serving(w)

"""Envelopes: one message holding a JSON array of events, decoded event by event."""

from __future__ import annotations

import orjson
import pytest

from streams.errors import EventError, SettingsError
from streams.settings import load_settings
from streams.worker.records import Interaction, decode_message

NOW = 1.7e9


def _event(n: int, **change: object) -> dict[str, object]:
    return {"event_id": f"e{n}", "user_id": f"u{n % 3}", "item_id": f"i{n}",
            "type": "purchase", "quantity": 1, "ts": NOW - 100 + n, **change}


def decode(raw: bytes | None, *, events: int = 1000, size: int = 1 << 20
           ) -> list[tuple[int, object, bytes | None]]:
    return decode_message(raw, kind="interaction", now=NOW, max_bytes=64 * 1024,
                          max_future_s=86_400.0, max_envelope_events=events,
                          max_envelope_bytes=size)


def test_a_one_event_message_is_one_entry_at_position_minus_one() -> None:
    raw = orjson.dumps(_event(1))
    ((element, record, kept),) = decode(raw)
    assert element == -1 and isinstance(record, Interaction) and kept == raw
    assert record.event_id == "e1"


def test_an_envelope_gives_its_events_in_order_and_each_bad_one_its_reason() -> None:
    items = [_event(0), _event(1, quantity=-2), "not an object", _event(3),
             _event(4, ts=NOW + 10 * 86_400), _event(5, surprise=1), [[1]]]
    out = decode(b"  \n" + orjson.dumps(items))  # leading whitespace is still an envelope
    assert [e for e, _, _ in out] == list(range(len(items)))
    good = [r.event_id for _, r, _ in out if isinstance(r, Interaction)]
    assert good == ["e0", "e3"]
    bad = {e: (r.reason, kept) for e, r, kept in out if isinstance(r, EventError)}
    assert {e: reason for e, (reason, _) in bad.items()} == {
        1: "bad_value", 2: "not_object", 4: "future_ts", 5: "unknown_field", 6: "not_object"}
    for e, (_, kept) in bad.items():  # each dead letter carries its own event, re-encoded
        assert kept is not None and orjson.loads(kept) == items[e]
    (detail,) = [r.detail for e, r, _ in out if e == 4]  # type: ignore[attr-defined]
    assert detail.startswith("envelope element 4:")


@pytest.mark.parametrize(("raw", "limits", "reason"), [
    (b"[]", {}, "bad_value"),
    (b"[" + b"1," * 10 + b"1]", {"events": 5}, "too_large"),
    (orjson.dumps([_event(n) for n in range(50)]), {"size": 1000}, "too_large"),
    (b"[{\"event_id\": ", {}, "not_json"),
    (b"[" * 5000 + b"]" * 5000, {}, "not_json"),
])
def test_an_envelope_refused_as_a_whole_is_one_entry_with_all_its_bytes(
        raw: bytes, limits: dict[str, int], reason: str) -> None:
    ((element, error, kept),) = decode(raw, **limits)
    assert element == -1 and isinstance(error, EventError) and error.reason == reason
    assert kept == raw


def test_envelopes_switched_off_refuse_an_array_as_not_an_object() -> None:
    raw = orjson.dumps([_event(0)])
    ((element, error, kept),) = decode(raw, events=0)
    assert element == -1 and isinstance(error, EventError) and error.reason == "not_object"
    assert kept == raw


def test_an_envelope_may_be_larger_than_one_event_may_be() -> None:
    items = [_event(n, region="r" * 200) for n in range(300)]  # ~90 KB > 64 KB per message
    raw = orjson.dumps(items)
    assert len(raw) > 64 * 1024
    assert all(isinstance(r, Interaction) for _, r, _ in decode(raw))


def test_settings_bound_envelopes() -> None:
    urls = {"NEARLINE_KAFKA_URL": "k:1", "NEARLINE_REDIS_URL": "redis://r:1"}
    assert load_settings(env=urls).max_envelope_events == 1000
    assert load_settings(env={**urls, "NEARLINE_MAX_ENVELOPE_EVENTS": "0"}
                         ).max_envelope_events == 0
    for name, value in (("EVENTS", "-1"), ("BYTES", "0")):
        with pytest.raises(SettingsError, match="NEARLINE_MAX_ENVELOPE_EVENTS"):
            load_settings(env={**urls, f"NEARLINE_MAX_ENVELOPE_{name}": value})


def test_settings_bound_a_step_in_events() -> None:
    urls = {"NEARLINE_KAFKA_URL": "k:1", "NEARLINE_REDIS_URL": "redis://r:1"}
    assert load_settings(env={**urls, "NEARLINE_BATCH_EVENTS": "512"}).batch_events == 512
    for name in ("BATCH_SIZE", "BATCH_EVENTS"):
        with pytest.raises(SettingsError, match="NEARLINE_BATCH_EVENTS must be at least 1"):
            load_settings(env={**urls, f"NEARLINE_{name}": "0"})

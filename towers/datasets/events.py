"""The project's event records: field names, validation and canonical form.

One event is one Kafka message value and one line of a JSON-lines file. The field rules
match `streams/schemas/*.json`. `validate_event` returns the canonical dict (fixed field
order, defaults filled in, numbers as floats), so equal events serialise to equal bytes.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import orjson

from towers.data import ContextRecord, ItemInfo
from towers.errors import DataError

__all__ = [
    "INTERACTION_TYPES", "RECORDS", "InvalidEvent", "context_event", "context_record",
    "decode_event", "encode_event", "interaction_event", "item_event", "item_info",
    "validate_event",
]

RECORDS = ("interaction", "context", "item")
INTERACTION_TYPES = ("view", "click", "cart", "purchase")


class InvalidEvent(DataError):
    """An event that breaks the schema; `reason` is a short code for the dead-letter topic.

    Reasons: not_json, not_object, missing_field, unknown_field, bad_value.
    """

    def __init__(self, reason: str, detail: str, *, path: str | None = None,
                 line: int | None = None) -> None:
        super().__init__(f"{reason}: {detail}", path=path, line=line)
        self.reason = reason
        self.detail = detail


_REQUIRED = object()  # no default: the field must be given
_OMIT = object()  # no default: left out of the canonical form when absent


def _text(max_len: int, *, min_len: int = 0) -> Callable[[str, Any], str]:
    def check(name: str, value: Any) -> str:
        if not isinstance(value, str) or not min_len <= len(value) <= max_len:
            raise InvalidEvent("bad_value", f"{name} must be a string of {min_len}-{max_len} "
                               f"characters, got {value!r:.80}")
        return value
    return check


def _number(low: float, high: float, *, nullable: bool = False,
            open_low: bool = False) -> Callable[[str, Any], float | None]:
    def check(name: str, value: Any) -> float | None:
        if value is None and nullable:
            return None
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        if not ok or not math.isfinite(value) or not (
                (value > low if open_low else value >= low) and value <= high):
            bound = f"{'>' if open_low else '>='} {low:g} and <= {high:g}"
            raise InvalidEvent("bad_value", f"{name} must be a number {bound}"
                               f"{' or null' if nullable else ''}, got {value!r:.80}")
        return float(value)
    return check


def _boolean(name: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise InvalidEvent("bad_value", f"{name} must be true or false, got {value!r:.80}")
    return value


def _interaction_type(name: str, value: Any) -> str:
    if value not in INTERACTION_TYPES:
        raise InvalidEvent("bad_value", f"{name} must be one of {INTERACTION_TYPES}, "
                           f"got {value!r:.80}")
    return value


def _stock(name: str, value: Any) -> dict[str, bool]:
    if not isinstance(value, dict) or not all(
            isinstance(k, str) and k and isinstance(v, bool) for k, v in value.items()):
        raise InvalidEvent("bad_value", f"{name} must map item ids to true/false")
    return dict(value)


_EVENT_ID, _ID, _AREA = _text(128, min_len=1), _text(256, min_len=1), _text(256)
_TS = _number(0.0, 1e11)
_PRICE = _number(0.0, 1e12, nullable=True)
_FIELDS: dict[str, tuple[tuple[str, Callable[[str, Any], Any], Any], ...]] = {
    "interaction": (
        ("event_id", _EVENT_ID, _REQUIRED), ("user_id", _ID, _REQUIRED),
        ("item_id", _ID, _REQUIRED), ("type", _interaction_type, _REQUIRED),
        ("quantity", _number(0.0, 1e6, open_low=True), 1.0), ("price", _PRICE, None),
        ("ts", _TS, _REQUIRED), ("region", _AREA, ""),
    ),
    "context": (
        ("event_id", _EVENT_ID, _REQUIRED), ("ts", _TS, _REQUIRED), ("region", _AREA, ""),
        ("user_id", _ID, _OMIT), ("weather", _text(64), ""),
        ("temperature", _number(-90.0, 60.0, nullable=True), None),
        ("holiday", _boolean, False), ("stock", _stock, _OMIT),
    ),
    "item": (
        ("event_id", _EVENT_ID, _REQUIRED), ("ts", _TS, _REQUIRED), ("item_id", _ID, _REQUIRED),
        ("category", _AREA, ""), ("price", _PRICE, None), ("available", _boolean, True),
    ),
}


def validate_event(obj: Any, *, record: str | None = None) -> dict[str, Any]:
    """The canonical form of an event, or InvalidEvent with a reason.

    `record` names the expected kind (a topic carries one kind); the `"record"` field may
    then be left out. Without it the field is required.
    """
    if not isinstance(obj, dict):
        raise InvalidEvent("not_object", f"an event is a JSON object, got {type(obj).__name__}")
    kind = obj.get("record", record)
    if kind is None:
        raise InvalidEvent("missing_field", f"record (one of {RECORDS})")
    if kind not in _FIELDS or (record is not None and kind != record):
        expected = record or f"one of {RECORDS}"
        raise InvalidEvent("bad_value", f"record must be {expected}, got {kind!r:.80}")
    spec = _FIELDS[kind]
    unknown = set(obj) - {name for name, _, _ in spec} - {"record"}
    if unknown:
        raise InvalidEvent("unknown_field", f"{sorted(unknown)} in a {kind} event")
    out: dict[str, Any] = {"record": kind}
    for name, check, default in spec:
        if name in obj:
            out[name] = check(name, obj[name])
        elif default is _REQUIRED:
            raise InvalidEvent("missing_field", f"{name} in a {kind} event")
        elif default is not _OMIT:
            out[name] = default
    return out


def decode_event(raw: bytes | str, *, record: str | None = None) -> dict[str, Any]:
    """Parse one message value or JSON line and validate it."""
    try:
        obj = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidEvent("not_json", str(exc)) from None
    return validate_event(obj, record=record)


def encode_event(event: dict[str, Any]) -> bytes:
    """The bytes of one message value (a JSON object, no newline)."""
    return orjson.dumps(event)


def interaction_event(*, event_id: str, user_id: str, item_id: str, ts: float,
                      type: str = "purchase", quantity: float = 1.0,
                      price: float | None = None, region: str = "") -> dict[str, Any]:
    return validate_event({"event_id": event_id, "user_id": user_id, "item_id": item_id,
                           "type": type, "quantity": quantity, "price": price, "ts": ts,
                           "region": region}, record="interaction")


def context_event(*, event_id: str, ts: float, region: str = "", weather: str = "",
                  temperature: float | None = None, holiday: bool = False,
                  stock: dict[str, bool] | None = None) -> dict[str, Any]:
    obj = {"event_id": event_id, "ts": ts, "region": region, "weather": weather,
           "temperature": temperature, "holiday": holiday}
    if stock:
        obj["stock"] = stock
    return validate_event(obj, record="context")


def item_event(*, event_id: str, ts: float, item_id: str, category: str = "",
               price: float | None = None, available: bool = True) -> dict[str, Any]:
    return validate_event({"event_id": event_id, "ts": ts, "item_id": item_id,
                           "category": category, "price": price, "available": available},
                          record="item")


def context_record(event: dict[str, Any]) -> ContextRecord:
    """A validated context event as the towers' ContextRecord."""
    temperature = event["temperature"]
    return ContextRecord(ts=event["ts"], region=event["region"],
                         user_id=event.get("user_id") or "", weather=event["weather"],
                         temperature=math.nan if temperature is None else temperature,
                         holiday=event["holiday"], stock=dict(event.get("stock", {})))


def item_info(event: dict[str, Any]) -> ItemInfo:
    """A validated item event as the towers' ItemInfo."""
    price = event["price"]
    return ItemInfo(category=event["category"], price=math.nan if price is None else price,
                    available=event["available"])

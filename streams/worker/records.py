"""Event records on the topics, and the decoding that turns message bytes into them.

Input topics carry the JSON objects of `streams/schemas/*.json` (the field rules live in
`towers.datasets.events`, shared with the JSON-lines readers), one per message, or an
envelope: a JSON array of such objects in one message, applied in array order. Decoding
adds the checks that only make sense on a live stream: the message size, the clock
(`max_future_s`) and control characters in ids. Whatever fails becomes a `DeadLetter`
with a short reason; in an envelope, each bad event on its own.
Output records are `faust.Record`s serialised with orjson, without Faust's metadata
field, so consumers in any language read plain JSON.
"""

from __future__ import annotations

import base64
import re
from typing import Any

import faust
import orjson
from faust.serializers import codecs

from streams.errors import EventError
from towers.datasets.events import InvalidEvent, validate_event
from towers.versions import VERSION_RE

__all__ = [
    "CheckpointAnnouncement",
    "ContextEvent",
    "DeadLetter",
    "Interaction",
    "ItemUpdate",
    "RecallResult",
    "Record",
    "dead_letter",
    "decode_announcement",
    "decode_message",
    "decode_record",
]


class _OrjsonCodec(codecs.Codec):
    def _dumps(self, obj: Any) -> bytes:
        return orjson.dumps(obj, option=orjson.OPT_SERIALIZE_NUMPY)

    def _loads(self, s: bytes) -> Any:
        return orjson.loads(s)


codecs.register("orjson", _OrjsonCodec())


class _Record(faust.Record, serializer="orjson", include_metadata=False):
    pass


class Interaction(_Record):
    event_id: str
    user_id: str
    item_id: str
    type: str  # view | click | cart | purchase
    ts: float  # unix seconds
    quantity: float = 1.0
    price: float | None = None
    region: str = ""


class ContextEvent(_Record):
    event_id: str
    ts: float
    region: str = ""  # "" = everywhere
    user_id: str | None = None  # set when the conditions concern one user (a store)
    weather: str = ""
    temperature: float | None = None
    holiday: bool = False
    stock: dict[str, bool] | None = None  # item -> in stock


class ItemUpdate(_Record):
    event_id: str
    ts: float
    item_id: str
    category: str = ""
    price: float | None = None
    available: bool = True


class RecallResult(_Record):
    user_id: str
    items: list[str]
    scores: list[float]
    channels: list[str]  # per item, the channel credited with it
    version: str  # model version whose towers and index produced it ("" = none live)
    last_event_id: str  # the last event applied to the state the list was computed from
    last_event_ts: float
    emitted_ts: float  # wall clock when published
    latency_ms: float  # emitted - arrival of the newest event of this user in the batch


class DeadLetter(_Record):
    topic: str
    partition: int
    offset: int
    reason: str  # not_json, not_object, missing_field, unknown_field, bad_value, ...
    detail: str
    original_b64: str  # the original value, base64, its first DEAD_LETTER_KEEP bytes
    ts: float
    original_bytes: int = 0  # size of the original value
    truncated: bool = False  # original_b64 holds only its first DEAD_LETTER_KEEP bytes
    element: int = -1  # the event's position in its envelope (-1: the whole message)


class CheckpointAnnouncement(_Record):
    kind: str  # "published" (index agent: build it) or "ready" (workers: go live)
    version: str
    path: str  # checkpoint directory in the store
    index_path: str = ""
    ts: float = 0.0


_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
DEAD_LETTER_KEEP = 64 * 1024  # bytes of the original a dead letter carries
_ID_FIELDS = ("event_id", "user_id", "item_id")
_ENVELOPE = re.compile(rb"[ \t\r\n]*\[")  # JSON whitespace, then an array
Record = Interaction | ContextEvent | ItemUpdate

_RECORD_OF: dict[str, type[Record]] = {"interaction": Interaction, "context": ContextEvent,
                                       "item": ItemUpdate}


def decode_record(raw: bytes | None, *, kind: str, now: float, max_bytes: int,
                  max_future_s: float) -> Record:
    """Validated record from a one-event message value, or EventError(reason, detail)."""
    if raw is None:
        raise EventError("empty", "the message has no value")
    if len(raw) > max_bytes:
        raise EventError("too_large", f"{len(raw)} bytes > {max_bytes}")
    return _record(_parse(raw), kind=kind, now=now, max_future_s=max_future_s)


def decode_message(raw: bytes | None, *, kind: str, now: float, max_bytes: int,
                   max_future_s: float, max_envelope_events: int, max_envelope_bytes: int
                   ) -> list[tuple[int, Record | EventError, bytes | None]]:
    """(position, record or error, bytes) per event of a message value.

    A one-event message gives one entry at position -1 with its own bytes. An envelope (a
    JSON array) gives one entry per element, its bytes re-encoded, or a single entry at -1
    when the envelope as a whole is refused (too large, not JSON, empty).
    """
    envelope = raw is not None and _ENVELOPE.match(raw) is not None
    if not envelope or max_envelope_events <= 0:  # envelopes off: an array is not_object
        try:
            return [(-1, decode_record(raw, kind=kind, now=now, max_bytes=max_bytes,
                                       max_future_s=max_future_s), raw)]
        except EventError as exc:
            return [(-1, exc, raw)]
    assert raw is not None
    try:
        if len(raw) > max_envelope_bytes:
            raise EventError("too_large", f"envelope of {len(raw)} bytes > {max_envelope_bytes}")
        events = _parse(raw)
        if not events:
            raise EventError("bad_value", "an envelope holds no events")
        if len(events) > max_envelope_events:
            raise EventError("too_large", f"envelope of {len(events)} events > "
                             f"{max_envelope_events}")
    except EventError as exc:
        return [(-1, exc, raw)]
    out: list[tuple[int, Record | EventError, bytes | None]] = []
    for j, obj in enumerate(events):
        try:
            record: Record | EventError = _record(obj, kind=kind, now=now,
                                                  max_future_s=max_future_s)
        except EventError as exc:
            record = EventError(exc.reason, f"envelope element {j}: {exc.detail}")
        out.append((j, record, None if isinstance(record, _Record) else _encode(obj)))
    return out


def _encode(obj: Any) -> bytes:
    """An envelope element's bytes for its dead letter (orjson refuses deep nesting)."""
    try:
        return orjson.dumps(obj)
    except orjson.JSONEncodeError:
        return repr(obj)[:DEAD_LETTER_KEEP].encode("utf-8", "backslashreplace")


def _parse(raw: bytes) -> Any:
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise EventError("not_json", str(exc)) from None
    except RecursionError:
        raise EventError("not_json", "nested too deeply") from None


def _record(obj: Any, *, kind: str, now: float, max_future_s: float) -> Record:
    try:
        event = validate_event(obj, record=kind)
    except InvalidEvent as exc:
        raise EventError(exc.reason, exc.detail) from None
    except RecursionError:
        raise EventError("not_json", "nested too deeply") from None
    for name in _ID_FIELDS:
        value = event.get(name)
        if isinstance(value, str) and _CONTROL.search(value):
            raise EventError("bad_value", f"{name} contains control characters")
    if event["ts"] > now + max_future_s:
        raise EventError("future_ts", f"ts {event['ts']:.0f} is more than {max_future_s:.0f} s "
                         f"ahead of the clock ({now:.0f})")
    event.pop("record", None)
    return _RECORD_OF[kind](**event)


def decode_announcement(raw: bytes | None) -> CheckpointAnnouncement:
    """A checkpoint announcement from the checkpoints topic, or EventError."""
    try:
        obj = orjson.loads(raw or b"")
    except orjson.JSONDecodeError as exc:
        raise EventError("not_json", str(exc)) from None
    if not isinstance(obj, dict) or obj.get("kind") not in ("published", "ready") \
            or not isinstance(obj.get("version"), str) or not isinstance(obj.get("path"), str) \
            or not VERSION_RE.match(obj["version"]):
        raise EventError("bad_value", "an announcement is {kind: published|ready, version "
                         f"({VERSION_RE.pattern}), path, index_path?, ts?}}")
    try:
        return CheckpointAnnouncement(kind=obj["kind"], version=obj["version"],
                                      path=obj["path"], index_path=str(obj.get("index_path", "")),
                                      ts=float(obj.get("ts", 0.0)))
    except (TypeError, ValueError) as exc:
        raise EventError("bad_value", str(exc)) from None


def dead_letter(raw: bytes | None, *, topic: str, partition: int, offset: int,
                error: EventError, now: float, element: int = -1) -> DeadLetter:
    raw = raw or b""
    return DeadLetter(topic=topic, partition=partition, offset=offset, reason=error.reason,
                      detail=error.detail[:1000],
                      original_b64=base64.b64encode(raw[:DEAD_LETTER_KEEP]).decode("ascii"),
                      ts=now, original_bytes=len(raw), truncated=len(raw) > DEAD_LETTER_KEEP,
                      element=element)

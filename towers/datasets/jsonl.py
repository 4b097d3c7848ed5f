"""JSON-lines files of the project's events, and the Dataset a stream of events makes."""

from __future__ import annotations

import gzip
import logging
import math
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from towers.data import ContextRecord, Dataset, Interactions, ItemInfo
from towers.datasets.events import (
    InvalidEvent,
    context_record,
    decode_event,
    item_info,
    validate_event,
)
from towers.datasets.source import BadRows, OnError, open_binary

__all__ = ["events_to_dataset", "iter_events_jsonl", "read_events_jsonl", "write_events_jsonl"]

logger = logging.getLogger(__name__)


def write_events_jsonl(path: str | Path, records: Iterable[dict[str, Any]]) -> int:
    """Validate and write one event per line (gzip when the name ends in .gz); returns the count.

    Output is byte-identical for identical events (canonical field order, gzip mtime 0).
    """
    path = Path(path)
    n = 0
    with open(path, "wb") as raw:
        sink = gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) \
            if path.suffix == ".gz" else raw
        for n, record in enumerate(records, start=1):
            try:
                sink.write(orjson.dumps(validate_event(record)) + b"\n")
            except InvalidEvent as exc:
                raise InvalidEvent(exc.reason, exc.detail, path=str(path), line=n) from None
        if sink is not raw:
            sink.close()
    logger.info("wrote %s events to %s", n, path)
    return n


def iter_events_jsonl(path: str | Path, *, on_error: OnError = "raise",
                      policy: BadRows | None = None) -> Iterator[dict[str, Any]]:
    """The valid events of a file in file order; bad lines raise or are counted in `policy`."""
    policy = policy or BadRows(path, on_error=on_error)
    with open_binary(path) as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                yield decode_event(line)
            except InvalidEvent as exc:
                policy.bad(number, exc.reason, exc.detail)


def read_events_jsonl(path: str | Path, *, on_error: OnError = "raise",
                      name: str | None = None) -> Dataset:
    """A Dataset from a JSON-lines event file (see `events_to_dataset`)."""
    path = Path(path)
    policy = BadRows(path, on_error=on_error)
    dataset = events_to_dataset(iter_events_jsonl(path, policy=policy),
                                name=name or path.name.split(".")[0])
    dataset.skipped = {**policy.report(), **dataset.skipped}
    return dataset


def events_to_dataset(events: Iterable[dict[str, Any]], *, name: str) -> Dataset:
    """Interactions in event order, items by their latest record (by ts, then order),
    contexts sorted by ts. Validated events only. Contexts addressed to one user have no
    place in a Dataset: they are counted in `skipped` as "user_context".
    """
    cols: dict[str, list[Any]] = {k: [] for k in ("user", "item", "ts", "qty", "price",
                                                  "kind", "region")}
    items: dict[str, tuple[float, ItemInfo]] = {}
    contexts: list[ContextRecord] = []
    skipped: dict[str, int] = {}
    for event in events:
        kind = event["record"]
        if kind == "interaction":
            _add_interaction(cols, event)
        elif kind == "item":
            seen = items.get(event["item_id"])
            if seen is None or event["ts"] >= seen[0]:
                items[event["item_id"]] = (event["ts"], item_info(event))
        elif "user_id" in event:
            skipped["user_context"] = skipped.get("user_context", 0) + 1
        else:
            contexts.append(context_record(event))
    contexts.sort(key=lambda c: c.ts)
    log = Interactions.from_columns(
        user=cols["user"], item=cols["item"], ts=cols["ts"], quantity=cols["qty"],
        price=cols["price"], kind=cols["kind"], region=cols["region"],
        rating=np.full(len(cols["user"]), np.nan, dtype=np.float32))
    return Dataset(name=name, interactions=log, items={k: v for k, (_, v) in items.items()},
                   contexts=contexts, seen_filter=False, skipped=skipped)


def _add_interaction(cols: dict[str, list[Any]], event: dict[str, Any]) -> None:
    cols["user"].append(event["user_id"])
    cols["item"].append(event["item_id"])
    cols["ts"].append(event["ts"])
    cols["qty"].append(event["quantity"])
    cols["price"].append(math.nan if event["price"] is None else event["price"])
    cols["kind"].append(event["type"])
    cols["region"].append(event["region"])

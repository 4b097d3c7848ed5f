"""Timestamp columns: unix seconds, ISO 8601, or an explicit strptime format."""

from __future__ import annotations

import math
from datetime import UTC, datetime

__all__ = ["TimestampParser"]

# Above this a numeric timestamp is read as milliseconds (1e11 s is the year 5138).
_MS_THRESHOLD = 1e11
_CACHE_LIMIT = 1 << 16


class TimestampParser:
    """Parse one column's timestamps into unix seconds; times without a zone are UTC.

    Without `fmt` the kind is decided by the first value: a number is unix seconds
    (milliseconds when above 1e11), otherwise ISO 8601 (`2000-11-01`, `2000-11-01T08:30Z`).
    Every later value must be of the same kind. Compact dates such as `20001101` look like
    numbers: pass a format for those. Day-level data repeats values, so results are cached.
    """

    def __init__(self, *, fmt: str | None = None) -> None:
        self.fmt = fmt
        self.kind: str | None = "format" if fmt else None
        self._cache: dict[str, float] = {}

    def __call__(self, text: str) -> float:
        """Unix seconds for `text`; ValueError when it is not a timestamp of this column's kind."""
        value = self._cache.get(text)
        if value is None:
            value = self._parse(text.strip())
            if len(self._cache) < _CACHE_LIMIT:
                self._cache[text] = value
        return value

    def _parse(self, text: str) -> float:
        if not text:
            raise ValueError("empty timestamp")
        if self.kind is None:
            self.kind = _detect(text)
        if self.kind == "unix":
            return _unix(text)
        if self.kind == "unix_ms":
            return _unix(text) / 1000.0
        if self.kind == "format":
            assert self.fmt is not None
            return _utc_seconds(datetime.strptime(text, self.fmt))
        return _utc_seconds(datetime.fromisoformat(text))


def _detect(text: str) -> str:
    try:
        return "unix_ms" if abs(_unix(text)) > _MS_THRESHOLD else "unix"
    except ValueError:
        pass
    try:
        datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(
            f"timestamp {text!r} is neither unix seconds nor ISO 8601: give its format "
            "(e.g. ts_format='%m/%d/%Y')") from None
    return "iso"


def _unix(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"timestamp {text!r} is not finite")
    return value


def _utc_seconds(moment: datetime) -> float:
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()

"""Errors raised by the streaming layer.

StreamsError
 ├── ServiceError          a broker or Redis process could not be started or reached
 ├── SettingsError         an environment variable or option has a bad value
 └── EventError            an event failed validation (carries the dead-letter reason)
"""

from __future__ import annotations


class StreamsError(Exception):
    """Base class for errors of the streaming layer."""


class ServiceError(StreamsError):
    """A broker or Redis process could not be started or reached."""


class SettingsError(StreamsError):
    """A setting has a value that cannot be used."""


class EventError(StreamsError):
    """An event failed validation; `reason` is a short machine-readable code."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail

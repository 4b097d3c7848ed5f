"""Errors raised by the towers layer.

TowersError
 ├── DataError            a data file or row cannot be read (names file and line)
 ├── FeatureError         an encoding does not fit the feature specification
 └── CheckpointError      a checkpoint is missing, corrupt or incompatible
"""

from __future__ import annotations


class TowersError(Exception):
    """Base class for errors of the towers layer."""


class DataError(TowersError):
    """A data file or one of its rows cannot be read."""

    def __init__(self, message: str, *, path: str | None = None, line: int | None = None) -> None:
        where = f"{path}:{line}: " if path and line else f"{path}: " if path else ""
        super().__init__(f"{where}{message}")
        self.path = path
        self.line = line


class FeatureError(TowersError):
    """An encoding does not fit the feature specification."""


class CheckpointError(TowersError):
    """A checkpoint is missing, corrupt, or does not match what it is loaded into."""

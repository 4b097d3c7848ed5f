"""Errors raised by the index layer.

IndexStoreError
 ├── IndexInputError      vectors, ids or settings that cannot be used (shape, NaN, duplicates)
 ├── IndexVersionError    an illegal version move (swap to a version that is not READY, ...)
 └── IndexFileError       a saved index is missing, truncated, corrupt or does not match its sidecar
"""

from __future__ import annotations


class IndexStoreError(Exception):
    """Base class for errors of the index layer."""


class IndexInputError(IndexStoreError):
    """Vectors, item ids or settings that cannot be indexed, searched or used."""


class IndexVersionError(IndexStoreError):
    """A version cannot make the requested move, or the requested version is not loaded."""


class IndexFileError(IndexStoreError):
    """A saved index cannot be used; the message names the file and what is wrong."""

    def __init__(self, message: str, *, path: str | None = None) -> None:
        super().__init__(f"{path}: {message}" if path else message)
        self.path = path

"""Index versions: the states a version moves through and the holder readers search.

    BUILDING ──► READY ──► LIVE ──► RETIRED
                             ▲         │
                             └─────────┘  rollback

A version is built aside (BUILDING), sealed (READY), swapped in by flipping one pointer
(LIVE), and kept as the previous version (RETIRED) for rollback. Any other move raises
`IndexVersionError`. A reader takes the pointer once per call, so it searches the old or
the new version in full, never a mix and never a half-built index.
"""

from __future__ import annotations

import enum
import logging
import threading
from typing import TYPE_CHECKING

import numpy as np

from index.errors import IndexVersionError

if TYPE_CHECKING:
    from index.items import ItemIndex, SearchResult

logger = logging.getLogger(__name__)


class VersionState(enum.Enum):
    BUILDING = "building"  # being filled; never searched by the holder
    READY = "ready"  # complete and sealed; may be swapped in
    LIVE = "live"  # answering searches
    RETIRED = "retired"  # replaced; kept for rollback and for readers still on it


MOVES: dict[VersionState, frozenset[VersionState]] = {
    VersionState.BUILDING: frozenset({VersionState.READY}),
    VersionState.READY: frozenset({VersionState.LIVE}),
    VersionState.LIVE: frozenset({VersionState.RETIRED}),
    VersionState.RETIRED: frozenset({VersionState.LIVE}),
}


def check_move(version: str, state: VersionState, to: VersionState) -> None:
    """Raise unless a version in `state` may move to `to`."""
    if to not in MOVES[state]:
        raise IndexVersionError(f"cannot move {version} from {state.name} to {to.name}")


class VersionedIndex:
    """The live item index of a worker, the previous one for rollback, and atomic swaps."""

    def __init__(self, initial: ItemIndex | None = None) -> None:
        self._lock = threading.Lock()  # serialises swap and rollback; readers never take it
        self._pair: tuple[ItemIndex | None, ItemIndex | None] = (None, None)  # (live, previous)
        if initial is not None:
            self.swap(initial)

    @property
    def live(self) -> ItemIndex | None:
        return self._pair[0]

    @property
    def previous(self) -> ItemIndex | None:
        return self._pair[1]

    @property
    def version(self) -> str | None:
        """Version tag of the live index (None before the first swap)."""
        live = self._pair[0]
        return live.version if live is not None else None

    def get(self, version: str | None = None) -> ItemIndex:
        """The live index, or the loaded index of `version` (live or previous)."""
        live, previous = self._pair  # one read: both belong to the same moment
        if live is None:
            raise IndexVersionError("no index is live yet: build or load one and swap it in")
        if version is None or live.version == version:
            return live
        if previous is not None and previous.version == version:
            return previous
        raise IndexVersionError(f"index version {version} is not loaded (live: {live.version}"
                                f", previous: {previous.version if previous else None}); "
                                "embed with the live tower or load that version")

    def search(self, vectors: np.ndarray, k: int, *, version: str | None = None) -> SearchResult:
        """Search the live index (or the loaded `version`); the result names its version."""
        return self.get(version).search(vectors, k)

    def swap(self, new: ItemIndex) -> ItemIndex | None:
        """Make a READY index live; the live one becomes the previous. Returns it."""
        with self._lock:
            live, _ = self._pair
            if new.state is not VersionState.READY:
                raise IndexVersionError(f"cannot swap to {new.version}: not READY "
                                        f"({new.state.name})")
            if live is not None and live.version == new.version:
                raise IndexVersionError(f"cannot swap to {new.version}: it is already live")
            new._move(VersionState.LIVE)
            self._pair = (new, live)  # the single step readers observe
            if live is not None:
                live._move(VersionState.RETIRED)
            logger.info("index swapped %s -> %s", live.version if live else None, new.version)
            return live

    def rollback(self) -> ItemIndex:
        """Make the previous version live again; the current one becomes the previous."""
        with self._lock:
            live, previous = self._pair
            if live is None or previous is None:
                raise IndexVersionError("cannot roll back: no previous version is kept")
            previous._move(VersionState.LIVE)
            self._pair = (previous, live)
            live._move(VersionState.RETIRED)
            logger.info("index rolled back %s -> %s", live.version, previous.version)
            return previous

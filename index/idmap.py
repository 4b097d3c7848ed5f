"""External item ids (strings) <-> int64 slots, kept compact for million-item catalogues.

Ids live as UTF-8 in one fixed-width bytes array indexed by slot (b"" marks a free slot):
about 12 bytes per item for ids like "item-0001234", where a million Python strings and
a dict would cost over 100 bytes each. Searches only index that array. The reverse
lookup (id -> slot), needed by add, upsert and remove, is a sorted copy of the keys plus
the slots in that order, built on first use and kept up to date afterwards.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np

from index.errors import IndexInputError

logger = logging.getLogger(__name__)

MAX_ID_BYTES = 256
CONVERT_CHUNK = 1 << 15  # ids converted per step while holding the GIL (a few ms)


def _examples(values: Sequence[object], limit: int = 3) -> str:
    shown = ", ".join(repr(str(v) if isinstance(v, str) else v) for v in list(values)[:limit])
    return shown + (", ..." if len(values) > limit else "")


def encode_ids(ids: Sequence[str]) -> np.ndarray:
    """Validate item ids and return them as a UTF-8 fixed-width bytes array."""
    if isinstance(ids, str | bytes):
        raise IndexInputError("ids must be a sequence of strings, not a single string")
    try:  # one Python pass; the checks below run in C (builders share the GIL with readers)
        encoded = [s.encode("utf-8") for s in ids]
    except AttributeError:
        encoded = []
    lengths = np.fromiter(map(len, encoded), dtype=np.int64, count=len(encoded))
    if len(encoded) != len(ids) or not lengths.all() or b"\x00" in b"".join(encoded):
        bad = [s for s in ids if not isinstance(s, str) or not s or "\x00" in s]
        raise IndexInputError(f"{len(bad)} item ids are not non-empty strings without NUL "
                              f"characters: {_examples(bad)}")
    if len(lengths) and lengths.max() > MAX_ID_BYTES:
        too_long = [ids[int(i)] for i in np.flatnonzero(lengths > MAX_ID_BYTES)]
        raise IndexInputError(f"{len(too_long)} item ids are longer than {MAX_ID_BYTES} UTF-8 "
                              f"bytes: {_examples(too_long)}")
    keys = np.empty(len(encoded), dtype=f"S{max(int(lengths.max(initial=1)), 1)}")
    for a in range(0, len(encoded), CONVERT_CHUNK):  # short steps: other threads get the GIL
        keys[a : a + CONVERT_CHUNK] = encoded[a : a + CONVERT_CHUNK]
    return keys


def decode_keys(keys: np.ndarray) -> np.ndarray:
    """Bytes keys -> unicode array; the ASCII fast path falls back to UTF-8 decoding."""
    try:
        return keys.astype(str)
    except UnicodeDecodeError:
        return np.char.decode(keys, "utf-8")


def sorted_order(keys: np.ndarray) -> np.ndarray:
    """Stable argsort of `keys`; a call that names the same id twice is rejected."""
    order = np.argsort(keys, kind="stable")
    ordered = keys[order]
    dup = ordered[1:][ordered[1:] == ordered[:-1]]
    if len(dup):
        names = decode_keys(np.unique(dup)).tolist()
        raise IndexInputError(f"{len(names)} item ids appear more than once in one call: "
                              f"{_examples(names)}; pass each id once")
    return order


def check_unique(keys: np.ndarray) -> None:
    sorted_order(keys)


class IdMap:
    """Slot-indexed external ids with a lazily built sorted lookup."""

    def __init__(self, keys: np.ndarray | None = None) -> None:
        keys = np.empty(0, dtype="S1") if keys is None else keys
        assert keys.ndim == 1 and keys.dtype.kind == "S", "keys are a 1-D bytes array"
        self._keys = keys
        self._count = int(np.count_nonzero(keys != b""))
        self._free = np.flatnonzero(keys == b"")[::-1].tolist()  # pop() takes the lowest
        self._sorted: np.ndarray | None = None  # live keys in sorted order
        self._order: np.ndarray | None = None  # their slots

    @classmethod
    def from_unique(cls, keys: np.ndarray, order: np.ndarray) -> IdMap:
        """Keys in slots 0..n-1, with the lookup built from their `sorted_order`."""
        idmap = cls(keys)
        idmap._order = order.astype(np.int64)
        idmap._sorted = keys[order]
        return idmap

    def __len__(self) -> int:
        return self._count

    @property
    def keys(self) -> np.ndarray:
        """Slot-indexed keys (b"" for a free slot); read-only view."""
        view = self._keys.view()
        view.flags.writeable = False
        return view

    @property
    def n_slots(self) -> int:
        return len(self._keys)

    def live_slots(self) -> np.ndarray:
        return np.flatnonzero(self._keys != b"")

    def external(self, slots: np.ndarray) -> np.ndarray:
        """Slots -> external ids (same shape); negative slots give ""."""
        safe = np.where(slots < 0, 0, slots)
        keys = self._keys[safe] if len(self._keys) else np.full(slots.shape, b"", dtype="S1")
        keys = np.where(slots < 0, b"", keys)
        return decode_keys(keys)

    def lookup(self, keys: np.ndarray) -> np.ndarray:
        """Keys -> slots, -1 where the key is not in the map."""
        self._ensure_sorted()
        assert self._sorted is not None and self._order is not None
        keys = self._fit(keys)
        if not len(self._sorted):
            return np.full(len(keys), -1, dtype=np.int64)
        pos = np.minimum(np.searchsorted(self._sorted, keys), len(self._sorted) - 1)
        found = self._sorted[pos] == keys
        return np.where(found, self._order[pos], -1).astype(np.int64)

    def insert(self, keys: np.ndarray, *, reuse_free: bool) -> np.ndarray:
        """Give absent `keys` slots (free ones first when `reuse_free`) and return them."""
        keys = self._fit(keys)
        n_reused = min(len(self._free), len(keys)) if reuse_free else 0
        reused = [self._free.pop() for _ in range(n_reused)]
        fresh = np.arange(len(self._keys), len(self._keys) + len(keys) - n_reused)
        slots = np.concatenate([np.array(reused, dtype=np.int64), fresh.astype(np.int64)])
        if len(fresh):
            self._keys = np.concatenate([self._keys, np.zeros(len(fresh), self._keys.dtype)])
        self._keys[slots] = keys
        self._count += len(keys)
        if self._sorted is not None and self._order is not None:
            by_key = np.argsort(keys, kind="stable")
            pos = np.searchsorted(self._sorted, keys[by_key])
            self._sorted = np.insert(self._sorted, pos, keys[by_key])
            self._order = np.insert(self._order, pos, slots[by_key])
        return slots

    def release(self, slots: np.ndarray, *, reuse: bool) -> None:
        """Forget the ids of `slots`; their slots are reused later only when `reuse`."""
        if self._sorted is not None and self._order is not None:
            pos = np.searchsorted(self._sorted, self._keys[slots])
            self._sorted = np.delete(self._sorted, pos)
            self._order = np.delete(self._order, pos)
        self._keys[slots] = b""
        self._count -= len(slots)
        if reuse:
            self._free.extend(int(s) for s in slots)
            self._free.sort(reverse=True)

    def copy(self) -> IdMap:
        return IdMap(self._keys.copy())

    def _fit(self, keys: np.ndarray) -> np.ndarray:
        """Same width for both sides, so comparisons never truncate."""
        if keys.dtype.itemsize > self._keys.dtype.itemsize:
            self._keys = self._keys.astype(keys.dtype)
            if self._sorted is not None:
                self._sorted = self._sorted.astype(keys.dtype)
        return keys.astype(self._keys.dtype)

    def _ensure_sorted(self) -> None:
        if self._sorted is not None:
            return
        live = self.live_slots()
        self._order = live[np.argsort(self._keys[live], kind="stable")].astype(np.int64)
        self._sorted = self._keys[self._order]
        logger.debug("built the sorted id lookup over %s items", len(live))

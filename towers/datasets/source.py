"""Opening source files and the bad-row policy shared by every reader."""

from __future__ import annotations

import gzip
import io
import logging
from pathlib import Path
from typing import IO, Literal

import numpy as np

from towers.data import ItemInfo
from towers.errors import DataError

__all__ = ["BadRows", "OnError", "item_table", "open_binary", "open_text"]

logger = logging.getLogger(__name__)

OnError = Literal["raise", "skip"]


def open_text(path: str | Path, *, encoding: str = "utf-8-sig") -> IO[str]:
    """Open a text file for the csv module (newline=""), gunzipping `*.gz` on the fly."""
    path = Path(path)
    if not path.is_file():
        raise DataError("no such file", path=str(path))
    if path.suffix == ".gz":
        raw = gzip.open(path, "rb")
        return io.TextIOWrapper(io.BufferedReader(raw, 1 << 20), encoding=encoding, newline="")
    return open(path, encoding=encoding, newline="")


def open_binary(path: str | Path) -> IO[bytes]:
    """Open a file for reading bytes, gunzipping `*.gz` on the fly."""
    path = Path(path)
    if not path.is_file():
        raise DataError("no such file", path=str(path))
    if path.suffix == ".gz":
        return io.BufferedReader(gzip.open(path, "rb"), 1 << 20)
    return open(path, "rb")


class BadRows:
    """What to do with a row that cannot be read: raise naming file and line, or count it."""

    def __init__(self, path: str | Path, *, on_error: OnError = "raise") -> None:
        assert on_error in ("raise", "skip"), f"on_error must be 'raise' or 'skip': {on_error!r}"
        self.path = str(path)
        self.on_error = on_error
        self.skipped: dict[str, int] = {}

    def bad(self, line: int, reason: str, detail: str) -> None:
        """A malformed row: raise DataError, or count it under `reason` when skipping."""
        if self.on_error == "raise":
            raise DataError(f"{reason}: {detail}", path=self.path, line=line)
        self.count(reason)
        logger.debug("%s:%s: skipped (%s: %s)", self.path, line, reason, detail)

    def count(self, reason: str) -> None:
        """A row skipped by design (no user, zero quantity): always counted, never raised."""
        self.skipped[reason] = self.skipped.get(reason, 0) + 1

    def report(self) -> dict[str, int]:
        if self.skipped:
            logger.info("%s: skipped rows %s", self.path, self.skipped)
        return dict(sorted(self.skipped.items()))


def item_table(codes: np.ndarray, unit_price: np.ndarray, ids: list[str],
               categories: list[str]) -> dict[str, ItemInfo]:
    """ItemInfo per item: its category and the median of its known unit prices."""
    median = _group_median(codes, unit_price.astype(np.float64), len(ids))
    return {item: ItemInfo(category=cat, price=float(p))
            for item, cat, p in zip(ids, categories, median, strict=True)}


def _group_median(codes: np.ndarray, values: np.ndarray, n_groups: int) -> np.ndarray:
    """Median of `values` per group code, NaN values ignored (NaN for groups with none)."""
    keep = np.isfinite(values)
    codes, values = codes[keep], values[keep]
    order = np.lexsort((values, codes))
    codes, values = codes[order], values[order]
    counts = np.bincount(codes, minlength=n_groups)
    starts = np.r_[0, np.cumsum(counts)[:-1]]
    out = np.full(n_groups, np.nan)
    has = counts > 0
    lo = starts[has] + (counts[has] - 1) // 2
    hi = starts[has] + counts[has] // 2
    out[has] = (values[lo] + values[hi]) / 2.0
    return out

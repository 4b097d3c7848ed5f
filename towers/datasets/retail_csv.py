"""A retail point-of-sale CSV: one purchased line per row, columns named by a `ColumnMap`."""

from __future__ import annotations

import csv
import math
from collections.abc import Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np

from towers.data import Dataset, Interactions
from towers.datasets.source import BadRows, OnError, item_table, open_text
from towers.datasets.timestamps import TimestampParser
from towers.errors import DataError

__all__ = ["ColumnMap", "read_retail_csv"]

_REQUIRED = ("user", "item", "ts", "qty")


@dataclass(frozen=True)
class ColumnMap:
    """Which CSV column (by header name) holds each field of a purchased line."""

    user: str
    item: str
    ts: str  # unix seconds, ISO 8601, or the reader's ts_format
    qty: str  # units bought; rows with qty <= 0 are skipped
    price: str | None = None  # unit price
    total: str | None = None  # line value instead of a unit price: unit = total / qty
    category: str | None = None  # item category (the first non-empty one per item wins)
    region: str | None = None  # store or residence area

    def __post_init__(self) -> None:
        if (self.price is None) == (self.total is None):
            raise DataError("column mapping: give exactly one of price=COL (unit price) "
                            "or total=COL (line value)")

    @classmethod
    def parse(cls, text: str) -> ColumnMap:
        """Parse the CLI form `user=COL,item=COL,ts=COL,qty=COL,price=COL[,category=COL,...]`."""
        known = [f.name for f in fields(cls)]
        values: dict[str, str] = {}
        for part in filter(None, (p.strip() for p in text.split(","))):
            key, sep, column = (s.strip() for s in part.partition("="))
            if key not in known:
                raise DataError(f"column mapping: unknown key {key!r} in {part!r} "
                                f"(known: {', '.join(known)})")
            if not sep or not column:
                raise DataError(f"column mapping: {part!r} needs the form {key}=COLUMN")
            if key in values:
                raise DataError(f"column mapping: {key!r} given twice")
            values[key] = column
        missing = [k for k in _REQUIRED if k not in values]
        if missing:
            raise DataError(f"column mapping: missing {', '.join(missing)} "
                            f"(required: {', '.join(_REQUIRED)} and price or total)")
        return cls(**values)

    def named(self) -> dict[str, str]:
        """Field -> column for the fields that are mapped."""
        return {f.name: getattr(self, f.name) for f in fields(self)
                if getattr(self, f.name) is not None}


def read_retail_csv(
    path: str | Path, *, columns: ColumnMap, ts_format: str | None = None,
    on_error: OnError = "raise", delimiter: str = ",", profile: Sequence[str] = (),
    name: str | None = None, encoding: str = "utf-8-sig",
) -> Dataset:
    """Every row is one purchase by `user` of `qty` units of `item`; `.gz` files are fine.

    Rows without a user or with a quantity <= 0 are always skipped and counted. Other bad
    rows (wrong field count, unparsable or negative number, bad time, no item) raise
    `DataError` naming file and line, or with `on_error="skip"` are counted per reason and
    skipped. `profile` names columns copied (first value seen) into the user's profile,
    keyed by the lower-cased column name. Item price is the median unit price of its lines.
    """
    path = Path(path)
    policy = BadRows(path, on_error=on_error)
    with open_text(path, encoding=encoding) as handle:
        reader = csv.reader(handle, delimiter=delimiter)
        header = next(reader, None)
        if header is None:
            raise DataError("empty file: expected a header row", path=str(path))
        index = _column_index(header, columns, profile, path)
        rows = _Columns()
        _read_rows(reader, index, len(header), TimestampParser(fmt=ts_format), policy, rows)
    return rows.dataset(name or path.name.split(".")[0], policy.report())


def _column_index(header: list[str], columns: ColumnMap, profile: Sequence[str],
                  path: Path) -> dict[str, int]:
    where = {col.strip(): i for i, col in enumerate(header)}
    wanted = {**columns.named(), **{f"profile:{col}": col for col in profile}}
    missing = sorted({col for col in wanted.values() if col not in where})
    if missing:
        raise DataError(f"columns {missing} not in the header {list(where)}",
                        path=str(path), line=1)
    return {key: where[col] for key, col in wanted.items()}


class _Columns:
    """Growing column lists; items get dense codes as they first appear."""

    def __init__(self) -> None:
        self.user: list[str] = []
        self.item: list[str] = []
        self.ts: list[float] = []
        self.qty: list[float] = []
        self.price: list[float] = []
        self.region: list[str] = []
        self.code: list[int] = []
        self.item_code: dict[str, int] = {}
        self.item_ids: list[str] = []
        self.category: list[str] = []
        self.profiles: dict[str, dict[str, str]] = {}

    def dataset(self, name: str, skipped: dict[str, int]) -> Dataset:
        n = len(self.user)
        price = np.asarray(self.price, dtype=np.float64)
        log = Interactions(
            user=np.asarray(self.user, dtype=object), item=np.asarray(self.item, dtype=object),
            ts=np.asarray(self.ts, dtype=np.float64),
            quantity=np.asarray(self.qty, dtype=np.float32), price=price.astype(np.float32),
            kind=np.full(n, "purchase", dtype=object),
            region=np.asarray(self.region, dtype=object),
            rating=np.full(n, np.nan, dtype=np.float32),
        )
        items = item_table(np.asarray(self.code, dtype=np.int64), price, self.item_ids,
                           self.category)
        return Dataset(name=name, interactions=log, items=items, users=self.profiles,
                       seen_filter=False, skipped=skipped)


def _read_rows(reader: Any, index: dict[str, int], width: int,  # a csv.reader
               parse_ts: TimestampParser, policy: BadRows, out: _Columns) -> None:
    # The hot loop of every CSV reader: names are bound locally for speed.
    iu, ii, it, iq = index["user"], index["item"], index["ts"], index["qty"]
    ip, is_total = (index["total"], True) if "total" in index else (index["price"], False)
    ic, ir = index.get("category"), index.get("region")
    profile = [(k.removeprefix("profile:").lower(), i) for k, i in index.items()
               if k.startswith("profile:")]
    isfinite, bad, nan = math.isfinite, policy.bad, math.nan
    item_code, item_ids, category, profiles = (out.item_code, out.item_ids, out.category,
                                               out.profiles)
    add_user, add_item, add_ts = out.user.append, out.item.append, out.ts.append
    add_qty, add_price, add_code = out.qty.append, out.price.append, out.code.append
    add_region = out.region.append
    for row in reader:
        if len(row) != width:
            if row:  # blank lines are not rows
                bad(reader.line_num, "wrong_columns", f"{len(row)} fields, header has {width}")
            continue
        user = row[iu].strip()
        if not user:
            policy.count("no_user")
            continue
        try:
            qty = float(row[iq])
            text = row[ip]
            price = float(text) if text else nan
            ts = parse_ts(row[it])
        except ValueError as exc:
            bad(reader.line_num, *_why(row, iq, ip, it, exc))
            continue
        if not qty > 0 and qty == qty:  # NaN is a bad number, not a zero
            policy.count("non_positive_quantity")
            continue
        if not (isfinite(qty) and ((isfinite(price) and price >= 0) or not text)):
            bad(reader.line_num, "bad_number", f"quantity {row[iq]!r}, price {text!r}")
            continue
        item = row[ii].strip()
        if not item:
            bad(reader.line_num, "no_item", "empty item id")
            continue
        code = item_code.get(item)
        if code is None:
            code = item_code[item] = len(item_ids)
            item_ids.append(item)
            category.append(row[ic].strip() if ic is not None else "")
        elif ic is not None and not category[code]:
            category[code] = row[ic].strip()
        if profile and user not in profiles:
            profiles[user] = {key: row[i].strip() for key, i in profile}
        add_user(user)
        add_item(item)
        add_ts(ts)
        add_qty(qty)
        add_price(price / qty if is_total else price)
        add_code(code)
        add_region(row[ir].strip() if ir is not None else "")


def _why(row: list[str], iq: int, ip: int, it: int, exc: ValueError) -> tuple[str, str]:
    """Which field of a row failed to parse, as (reason, detail)."""
    for i, what in ((iq, "quantity"), (ip, "price")):
        try:
            if i != ip or row[i]:
                float(row[i])
        except ValueError:
            return "bad_number", f"{what} {row[i]!r}"
    return "bad_ts", str(exc)

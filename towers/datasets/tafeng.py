"""The Ta-Feng grocery point-of-sale file (Nov 2000 - Feb 2001), read as a retail CSV."""

from __future__ import annotations

from pathlib import Path

from towers.data import Dataset
from towers.datasets.retail_csv import ColumnMap, read_retail_csv
from towers.datasets.source import OnError
from towers.errors import DataError

__all__ = ["TAFENG_COLUMNS", "TAFENG_TS_FORMAT", "read_tafeng"]

# SALES_PRICE is the line value, so the unit price is SALES_PRICE / AMOUNT.
TAFENG_COLUMNS = ColumnMap(
    user="CUSTOMER_ID", item="PRODUCT_ID", ts="TRANSACTION_DT", qty="AMOUNT",
    total="SALES_PRICE", category="PRODUCT_SUBCLASS", region="PIN_CODE",
)
TAFENG_TS_FORMAT = "%m/%d/%Y"  # a day, no time: midnight UTC
_PROFILE = ("AGE_GROUP", "PIN_CODE")
_FILES = ("ta_feng_all_months_merged.csv", "ta_feng_all_months_merged.csv.gz")


def read_tafeng(path: str | Path, *, on_error: OnError = "raise") -> Dataset:
    """Read the merged CSV (plain or `.gz`), or the folder holding it.

    Ids stay strings (customer ids are zero-padded); region and the user profile's
    `pin_code` are PIN_CODE, the profile's `age_group` is AGE_GROUP, item category is
    PRODUCT_SUBCLASS, item price the median unit price.
    """
    return read_retail_csv(_locate(Path(path)), columns=TAFENG_COLUMNS,
                           ts_format=TAFENG_TS_FORMAT, on_error=on_error, profile=_PROFILE,
                           name="tafeng")


def _locate(path: Path) -> Path:
    if not path.is_dir():
        return path
    for name in _FILES:
        if (path / name).is_file():
            return path / name
    raise DataError(f"no Ta-Feng file in this folder (looked for {', '.join(_FILES)})",
                    path=str(path))

"""Datasets by name, as the CLI, the benchmarks and the replay tool name them."""

from __future__ import annotations

import os
from pathlib import Path

from towers.data import Dataset
from towers.datasets.jsonl import read_events_jsonl
from towers.datasets.market import MarketConfig
from towers.datasets.movielens import read_movielens
from towers.datasets.retail_csv import ColumnMap, read_retail_csv
from towers.datasets.simulator import market_dataset
from towers.datasets.source import OnError
from towers.datasets.tafeng import read_tafeng
from towers.errors import DataError

__all__ = ["DATASETS", "data_root", "default_data_path", "load_dataset"]

DATASETS = ("ml100k", "ml1m", "tafeng", "retail-csv", "jsonl", "market")

# Where each public data set lies under $NEARLINE_DATA (or ../shared/data).
_DEFAULT_PATHS = {"ml100k": "movielens/ml-100k", "ml1m": "movielens/ml-1m",
                  "tafeng": "retail/ta_feng"}


def data_root() -> Path | None:
    """$NEARLINE_DATA, else ../shared/data next to the working directory or the source tree."""
    env = os.environ.get("NEARLINE_DATA")
    if env:
        return Path(env)
    for base in (Path.cwd(), Path(__file__).resolve().parents[2]):
        candidate = base.parent / "shared" / "data"
        if candidate.is_dir():
            return candidate
    return None


def default_data_path(name: str) -> Path | None:
    """The folder of a public data set under the data root, when it is there."""
    root = data_root()
    if root is None or name not in _DEFAULT_PATHS:
        return None
    path = root / _DEFAULT_PATHS[name]
    return path if path.exists() else None


def load_dataset(name: str, path: str | Path | None = None, *, on_error: OnError = "raise",
                 columns: str | None = None, ts_format: str | None = None,
                 seed: int = 0, days: int = 90) -> Dataset:
    """Read a data set by name; `market` simulates one (seeded) instead of reading a path.

    `columns` is the `retail-csv` column mapping (`user=COL,item=COL,ts=COL,qty=COL,...`).
    """
    if name not in DATASETS:
        raise DataError(f"unknown dataset {name!r} (known: {', '.join(DATASETS)})")
    if name == "market":
        if path is not None:
            return read_events_jsonl(path, on_error=on_error, name="market")
        return market_dataset(MarketConfig(seed=seed, days=days))
    if path is None:
        path = default_data_path(name)
        if path is None:
            raise DataError(f"dataset {name!r} needs --data PATH (or $NEARLINE_DATA holding "
                            f"{_DEFAULT_PATHS.get(name, 'it')})")
    if name in ("ml100k", "ml1m"):
        return read_movielens(path, on_error=on_error)
    if name == "tafeng":
        return read_tafeng(path, on_error=on_error)
    if name == "jsonl":
        return read_events_jsonl(path, on_error=on_error)
    if columns is None:
        raise DataError("dataset 'retail-csv' needs a column mapping, e.g. "
                        "user=customer,item=product,ts=time,qty=quantity,price=price")
    return read_retail_csv(path, columns=ColumnMap.parse(columns), ts_format=ts_format,
                           on_error=on_error)

"""Data readers (MovieLens, retail CSV, Ta-Feng, the project's JSON-lines events) and the
seeded market simulator. Every reader returns a `towers.data.Dataset`."""

from towers.datasets.events import (
    INTERACTION_TYPES,
    RECORDS,
    InvalidEvent,
    context_event,
    context_record,
    decode_event,
    encode_event,
    interaction_event,
    item_event,
    item_info,
    validate_event,
)
from towers.datasets.jsonl import (
    events_to_dataset,
    iter_events_jsonl,
    read_events_jsonl,
    write_events_jsonl,
)
from towers.datasets.market import CATEGORIES, Market, MarketConfig, build_market
from towers.datasets.movielens import read_movielens
from towers.datasets.registry import DATASETS, data_root, default_data_path, load_dataset
from towers.datasets.retail_csv import ColumnMap, read_retail_csv
from towers.datasets.simulator import market_dataset, simulate_market, write_market_jsonl
from towers.datasets.source import OnError
from towers.datasets.tafeng import TAFENG_COLUMNS, read_tafeng

__all__ = [
    "CATEGORIES",
    "DATASETS",
    "INTERACTION_TYPES",
    "RECORDS",
    "TAFENG_COLUMNS",
    "ColumnMap",
    "InvalidEvent",
    "Market",
    "MarketConfig",
    "OnError",
    "build_market",
    "context_event",
    "context_record",
    "data_root",
    "decode_event",
    "default_data_path",
    "encode_event",
    "events_to_dataset",
    "interaction_event",
    "item_event",
    "item_info",
    "iter_events_jsonl",
    "load_dataset",
    "market_dataset",
    "read_events_jsonl",
    "read_movielens",
    "read_retail_csv",
    "read_tafeng",
    "simulate_market",
    "validate_event",
    "write_events_jsonl",
    "write_market_jsonl",
]

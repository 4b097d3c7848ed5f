"""index: item vectors under stable string ids, searched with faiss, versioned and saved atomically.

Pure faiss + NumPy (and `diskio` for durable writes); imported by `streams`, never
importing it or `towers`.
"""

from index.build import build_aside, build_index
from index.calibrate import Calibration, calibrate, recall_at_k
from index.config import IndexConfig
from index.errors import IndexFileError, IndexInputError, IndexStoreError, IndexVersionError
from index.items import ItemIndex, SearchResult
from index.store import index_info, load_index, save_index
from index.versions import VersionedIndex, VersionState

__all__ = [
    "Calibration",
    "IndexConfig",
    "IndexFileError",
    "IndexInputError",
    "IndexStoreError",
    "IndexVersionError",
    "ItemIndex",
    "SearchResult",
    "VersionState",
    "VersionedIndex",
    "build_aside",
    "build_index",
    "calibrate",
    "index_info",
    "load_index",
    "recall_at_k",
    "save_index",
]

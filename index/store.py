"""Saving and loading an index directory atomically, never unpickling anything.

    <directory>/
        index.json               sidecar: version, checkpoint, dim, metric, backend, counts,
                                 config, and the name, size and sha256 of each file below
        items-<token>.faiss      the faiss index (faiss's own format)
        ids-<token>.npy          slot-indexed UTF-8 ids, fixed-width bytes (b"" = free slot)
        vectors-<token>.npy      ivf only: float32 vectors re-scored after the fast scan

Every file is written under a temporary name, fsynced and renamed; the sidecar goes last,
so its rename is the commit: a reader sees the previous complete save or the new one.
Files of older saves are deleted after the commit. Loading checks sizes and checksums
before parsing anything, and builds a new `ItemIndex`: a failed load leaves whatever
index is live untouched.
"""

from __future__ import annotations

import logging
import time
import uuid
from pathlib import Path
from typing import Any

import faiss
import numpy as np
import orjson

from diskio import replace_synced, sha256_file
from index.backends import BACKEND_NAMES, backend_class
from index.config import IndexConfig
from index.errors import IndexFileError, IndexStoreError
from index.idmap import IdMap
from index.items import ItemIndex
from index.versions import VersionState

logger = logging.getLogger(__name__)

FORMAT = 1
SIDECAR = "index.json"
MAX_SIDECAR_BYTES = 1 << 20
SIDECAR_KEYS = ("format", "version", "checkpoint", "dim", "metric", "backend", "items", "slots",
                "config", "search_params", "id_map_sha256", "files")


def _commit(tmp: Path, final: Path) -> dict[str, Any]:
    """fsync a written temporary file, rename it into place, describe it for the sidecar."""
    replace_synced(tmp, final)
    return {"name": final.name, "bytes": final.stat().st_size, "sha256": sha256_file(final)}


def save_index(index: ItemIndex, directory: Path | str) -> Path:
    """Write `index` into `directory` atomically; returns the sidecar path."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    token = uuid.uuid4().hex[:12]
    started = time.perf_counter()
    with index._lock.read():  # no mutation while the files are written
        files = {"index": _write_faiss(index, directory, token),
                 "ids": _write_npy(index._idmap.keys, directory, f"ids-{token}.npy")}
        for name, array in index._backend.arrays().items():
            files[name] = _write_npy(array, directory, f"{name}-{token}.npy")
        sidecar = {
            "format": FORMAT, "version": index.version, "checkpoint": index.checkpoint,
            "dim": index.dim, "metric": index.metric, "backend": index.backend,
            "items": len(index), "slots": index._idmap.n_slots, "config": index.config.to_dict(),
            "search_params": index.search_params, "id_map_sha256": files["ids"]["sha256"],
            "files": files, "saved_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
    tmp = directory / f".tmp-{token}-{SIDECAR}"
    tmp.write_bytes(orjson.dumps(sidecar, option=orjson.OPT_INDENT_2))
    _commit(tmp, directory / SIDECAR)
    _remove_stale(directory, {f["name"] for f in files.values()})
    logger.info("saved index %s (%s items) to %s in %.1f s", index.version, len(index), directory,
                time.perf_counter() - started)
    return directory / SIDECAR


def _write_faiss(index: ItemIndex, directory: Path, token: str) -> dict[str, Any]:
    tmp = directory / f".tmp-items-{token}.faiss"
    faiss.write_index(index._backend.index, str(tmp))
    return _commit(tmp, directory / f"items-{token}.faiss")


def _write_npy(array: np.ndarray, directory: Path, name: str) -> dict[str, Any]:
    tmp = directory / f".tmp-{name}"
    with open(tmp, "wb") as fh:
        np.save(fh, np.ascontiguousarray(array), allow_pickle=False)
    return _commit(tmp, directory / name)


def _remove_stale(directory: Path, keep: set[str]) -> None:
    for path in directory.iterdir():
        stale_data = path.suffix in (".faiss", ".npy") and "-" in path.stem
        if (stale_data or path.name.startswith(".tmp-")) and path.name not in keep:
            path.unlink(missing_ok=True)
            logger.debug("removed stale index file %s", path)


def read_sidecar(directory: Path | str) -> dict[str, Any]:
    """The sidecar of `directory`, checked for shape; raises `IndexFileError`."""
    path = Path(directory) / SIDECAR
    if not path.is_file():
        raise IndexFileError("no saved index here (index.json is missing): build and save one",
                             path=str(path))
    if path.stat().st_size > MAX_SIDECAR_BYTES:
        raise IndexFileError("sidecar is implausibly large; it is not an index sidecar",
                             path=str(path))
    try:
        sidecar = orjson.loads(path.read_bytes())
    except orjson.JSONDecodeError as exc:
        raise IndexFileError(f"sidecar is not valid JSON ({exc}); re-save the index",
                             path=str(path)) from exc
    missing = [k for k in SIDECAR_KEYS if not isinstance(sidecar, dict) or k not in sidecar]
    if missing:
        raise IndexFileError(f"sidecar lacks {missing}; re-save the index", path=str(path))
    if sidecar["format"] != FORMAT:
        raise IndexFileError(f"format {sidecar['format']} is not {FORMAT}: re-save the index "
                             "with this version of nearline", path=str(path))
    files = sidecar["files"]
    if sidecar["backend"] not in BACKEND_NAMES or not isinstance(files, dict) \
            or not {"index", "ids"} <= set(files) or not all(map(_file_entry, files.values())):
        raise IndexFileError(f"unknown backend {sidecar['backend']!r} or malformed files "
                             f"{files!r:.200}; re-save the index", path=str(path))
    return sidecar


def _file_entry(entry: object) -> bool:
    return (isinstance(entry, dict) and isinstance(entry.get("name"), str)
            and type(entry.get("bytes")) is int and isinstance(entry.get("sha256"), str))


def _check_file(directory: Path, entry: dict[str, Any], *, checksum: bool) -> Path:
    path = directory / str(entry["name"])
    if path.parent != directory or not path.is_file():
        raise IndexFileError("missing: the save is incomplete or was replaced while loading; "
                             "retry, or re-save the index", path=str(path))
    size = path.stat().st_size
    if size != entry["bytes"]:
        raise IndexFileError(f"is {size} bytes, the sidecar says {entry['bytes']}: truncated "
                             "or from another save; re-save the index", path=str(path))
    if checksum and sha256_file(path) != entry["sha256"]:
        raise IndexFileError("sha256 does not match the sidecar: the file is corrupt or from "
                             "another save; re-save the index", path=str(path))
    return path


def index_info(directory: Path | str) -> dict[str, Any]:
    """The sidecar of a saved index, after checking that every file has its recorded size."""
    directory = Path(directory)
    sidecar = read_sidecar(directory)
    for entry in sidecar["files"].values():
        _check_file(directory, entry, checksum=False)
    return {**sidecar, "path": str(directory)}


def load_index(directory: Path | str, *, expect_version: str | None = None) -> ItemIndex:
    """Load a saved index as a READY `ItemIndex`, refusing anything that does not match."""
    directory = Path(directory)
    started = time.perf_counter()
    sidecar = read_sidecar(directory)
    if expect_version is not None and sidecar["version"] != expect_version:
        raise IndexFileError(f"holds version {sidecar['version']}, not {expect_version}: load "
                             "the directory of that version", path=str(directory))
    paths = {name: _check_file(directory, entry, checksum=True)
             for name, entry in sidecar["files"].items()}
    if sidecar["id_map_sha256"] != sidecar["files"]["ids"]["sha256"]:
        raise IndexFileError("id map checksum disagrees with the ids file entry; re-save",
                             path=str(directory / SIDECAR))
    try:
        index = _assemble(sidecar, paths)
    except (ValueError, RuntimeError, IndexStoreError) as exc:
        raise IndexFileError(f"does not match its sidecar: {exc}; re-save the index",
                             path=str(directory)) from exc
    logger.info("loaded index %s (%s, %s items) from %s in %.1f s", index.version, index.backend,
                len(index), directory, time.perf_counter() - started)
    return index


def _assemble(sidecar: dict[str, Any], paths: dict[str, Path]) -> ItemIndex:
    keys = np.load(paths["ids"], allow_pickle=False)
    if keys.ndim != 1 or keys.dtype.kind != "S" or len(keys) != sidecar["slots"]:
        raise ValueError(f"ids array {keys.dtype}{keys.shape} is not {sidecar['slots']} slots")
    idmap = IdMap(keys)
    if len(idmap) != sidecar["items"]:
        raise ValueError(f"{len(idmap)} ids, sidecar says {sidecar['items']} items")
    arrays = {name: np.load(path, allow_pickle=False) for name, path in paths.items()
              if name not in ("index", "ids")}
    for name, array in arrays.items():
        if array.dtype != np.float32 or array.ndim != 2 or array.shape[1] != sidecar["dim"]:
            raise ValueError(f"{name} array {array.dtype}{array.shape} is not float32 (n, dim)")
    faiss_index = faiss.read_index(str(paths["index"]))
    if faiss_index.d != sidecar["dim"] or faiss_index.metric_type != faiss.METRIC_INNER_PRODUCT:
        raise ValueError(f"faiss index has dim {faiss_index.d}, metric {faiss_index.metric_type}")
    config = IndexConfig.from_dict(sidecar["config"])
    if config.metric != sidecar["metric"]:
        raise ValueError(f"config metric {config.metric}, sidecar metric {sidecar['metric']}")
    backend = backend_class(sidecar["backend"]).restore(faiss_index, arrays, config=config,
                                                   live_slots=idmap.live_slots())
    if backend.count() != len(idmap):
        raise ValueError(f"faiss index holds {backend.count()} items, id map {len(idmap)}")
    return ItemIndex(backend=backend, idmap=idmap, config=config, version=sidecar["version"],
                     checkpoint=sidecar["checkpoint"], state=VersionState.READY)

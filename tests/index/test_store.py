"""Save and load round trips, atomic replacement, and every refused file."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import orjson
import pytest

from diskio import sha256_file
from index import (
    IndexFileError,
    VersionedIndex,
    VersionState,
    build_index,
    index_info,
    load_index,
    save_index,
)

from .conftest import IndexFactory
from .synthetic import item_ids, unit_vectors

DIM = 16


def sidecar(directory: Path) -> dict:
    return orjson.loads((directory / "index.json").read_bytes())


def data_file(directory: Path, kind: str) -> Path:
    return directory / sidecar(directory)["files"][kind]["name"]


@pytest.mark.parametrize("backend", ["exact", "ivf", "hnsw"])
def test_round_trip_answers_the_same(make_index: IndexFactory, tmp_path: Path,
                                     backend: str) -> None:
    index = make_index(backend, n=2000, probe_fraction=0.25)
    index.upsert(["item-00005", "extra"], unit_vectors(2, DIM, seed=1))
    index.remove(["item-00009"])
    index.set_search_params(**({"nprobe": 7} if backend == "ivf" else
                               {"ef_search": 40} if backend == "hnsw" else {}))
    save_index(index, tmp_path)
    loaded = load_index(tmp_path, expect_version="v1")
    assert (loaded.version, loaded.backend, len(loaded), loaded.dim, loaded.state) == (
        "v1", backend, 2000, DIM, VersionState.READY)
    assert loaded.search_params == index.search_params
    queries = unit_vectors(30, DIM, seed=2)
    a, b = index.search(queries, 10), loaded.search(queries, 10)
    assert a.ids.tolist() == b.ids.tolist()
    np.testing.assert_allclose(a.scores, b.scores)
    loaded.upsert(["item-00009"], unit_vectors(1, DIM, seed=3))  # the loaded index is mutable
    assert len(loaded) == 2001


def test_info_reads_only_the_sidecar(make_index: IndexFactory, tmp_path: Path) -> None:
    index = build_index(item_ids(500), unit_vectors(500, DIM, seed=4), version="v3",
                        checkpoint="ckpt-9")
    save_index(index, tmp_path)
    info = index_info(tmp_path)
    assert {k: info[k] for k in ("version", "checkpoint", "dim", "metric", "backend", "items")} == {
        "version": "v3", "checkpoint": "ckpt-9", "dim": DIM, "metric": "ip", "backend": "exact",
        "items": 500}
    assert info["id_map_sha256"] == info["files"]["ids"]["sha256"]


def test_saving_again_replaces_the_files_atomically(make_index: IndexFactory,
                                                    tmp_path: Path) -> None:
    save_index(make_index("ivf", n=1000), tmp_path)
    first = {p.name for p in tmp_path.iterdir()}
    save_index(make_index("exact", n=800, version="v2"), tmp_path)
    second = {p.name for p in tmp_path.iterdir()}
    assert first & second == {"index.json"}  # older data files are gone, no temp files remain
    assert not [n for n in second if n.startswith(".tmp-")]
    assert len(load_index(tmp_path)) == 800


def test_missing_directory_or_sidecar(tmp_path: Path) -> None:
    with pytest.raises(IndexFileError, match=r"index\.json is missing"):
        load_index(tmp_path)
    with pytest.raises(IndexFileError, match=r"index\.json is missing"):
        index_info(tmp_path / "nowhere")


@pytest.mark.parametrize("kind", ["index", "ids"])
def test_truncated_file(make_index: IndexFactory, tmp_path: Path, kind: str) -> None:
    save_index(make_index("exact", n=500), tmp_path)
    path = data_file(tmp_path, kind)
    path.write_bytes(path.read_bytes()[:-100])
    for read in (load_index, index_info):
        with pytest.raises(IndexFileError, match="truncated"):
            read(tmp_path)


def test_checksum_mismatch(make_index: IndexFactory, tmp_path: Path) -> None:
    save_index(make_index("ivf", n=1000), tmp_path)
    path = data_file(tmp_path, "vectors")
    data = bytearray(path.read_bytes())
    data[-5] ^= 0xFF  # same size, different content
    path.write_bytes(bytes(data))
    index_info(tmp_path)  # sizes still match: info does not hash
    with pytest.raises(IndexFileError, match="sha256 does not match"):
        load_index(tmp_path)


@pytest.mark.parametrize(("key", "value", "message"), [
    ("dim", 8, "faiss index has dim"),
    ("items", 499, "sidecar says 499 items"),
    ("slots", 10, "is not 10 slots"),
    ("backend", "hnsw", "expected a IndexHNSWFlat"),
    ("metric", "cosine", "config metric ip, sidecar metric cosine"),
    ("format", 99, "format 99"),
    ("id_map_sha256", "0" * 64, "id map checksum"),
    ("files", {"index": {"name": "x"}, "ids": 3}, "malformed files"),
    ("backend", "annoy", "unknown backend"),
])
def test_sidecar_mismatch(make_index: IndexFactory, tmp_path: Path, key: str, value: object,
                          message: str) -> None:
    save_index(make_index("exact", n=500), tmp_path)
    meta = sidecar(tmp_path)
    meta[key] = value
    (tmp_path / "index.json").write_bytes(orjson.dumps(meta))
    with pytest.raises(IndexFileError, match=message):
        load_index(tmp_path)


def test_wrong_version_and_broken_sidecar(make_index: IndexFactory, tmp_path: Path) -> None:
    save_index(make_index("exact", n=500), tmp_path)
    with pytest.raises(IndexFileError, match="holds version v1, not v2"):
        load_index(tmp_path, expect_version="v2")
    (tmp_path / "index.json").write_bytes(b'{"version": "v1"')
    with pytest.raises(IndexFileError, match="not valid JSON"):
        load_index(tmp_path)
    (tmp_path / "index.json").write_bytes(b'{"version": "v1"}')
    with pytest.raises(IndexFileError, match="sidecar lacks"):
        load_index(tmp_path)


def test_sidecar_cannot_point_outside_the_directory(make_index: IndexFactory,
                                                    tmp_path: Path) -> None:
    save_index(make_index("exact", n=500), tmp_path / "a")
    meta = sidecar(tmp_path / "a")
    meta["files"]["ids"]["name"] = "../outside.npy"
    (tmp_path / "outside.npy").write_bytes(data_file(tmp_path / "a", "ids").read_bytes())
    (tmp_path / "a" / "index.json").write_bytes(orjson.dumps(meta))
    with pytest.raises(IndexFileError, match="missing"):
        load_index(tmp_path / "a")


def test_pickled_arrays_are_refused_not_unpickled(make_index: IndexFactory,
                                                  tmp_path: Path) -> None:
    """An object array with a matching checksum still fails: np.load never unpickles."""
    save_index(make_index("exact", n=500), tmp_path)
    path = data_file(tmp_path, "ids")
    np.save(path, np.array(item_ids(500), dtype=object), allow_pickle=True)
    meta = sidecar(tmp_path)
    meta["files"]["ids"].update(bytes=path.stat().st_size, sha256=sha256_file(path))
    meta["id_map_sha256"] = meta["files"]["ids"]["sha256"]
    (tmp_path / "index.json").write_bytes(orjson.dumps(meta))
    with pytest.raises(IndexFileError, match=r"pickled|allow_pickle"):
        load_index(tmp_path)


def test_a_failed_load_leaves_the_live_index_serving(make_index: IndexFactory,
                                                     tmp_path: Path) -> None:
    holder = VersionedIndex(make_index("exact", n=500, version="v1"))
    save_index(make_index("exact", n=600, version="v2"), tmp_path)
    path = data_file(tmp_path, "index")
    path.write_bytes(path.read_bytes()[:1000])
    with pytest.raises(IndexFileError):
        holder.swap(load_index(tmp_path))
    assert holder.version == "v1"
    assert holder.search(unit_vectors(2, DIM, seed=5), 3).ids.shape == (2, 3)

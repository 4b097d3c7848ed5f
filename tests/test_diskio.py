"""diskio: a path is either its old content or its new one, and nothing is left behind."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from diskio import commit_dir, replace_synced, sha256_file, temp_sibling, write_atomic


def test_write_atomic_replaces_and_leaves_no_temporary(tmp_path: Path) -> None:
    path = tmp_path / "services.json"
    write_atomic(path, b"old")
    write_atomic(path, b"new")
    assert path.read_bytes() == b"new"
    assert [p.name for p in tmp_path.iterdir()] == ["services.json"]


def test_write_atomic_into_a_missing_folder_fails_and_writes_nothing(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        write_atomic(tmp_path / "missing" / "x", b"data")
    assert list(tmp_path.iterdir()) == []


def test_replace_synced_moves_the_file_into_place(tmp_path: Path) -> None:
    tmp, final = temp_sibling(tmp_path / "index.json"), tmp_path / "index.json"
    assert tmp.parent == tmp_path and tmp.name.startswith(".")
    tmp.write_bytes(b"sidecar")
    replace_synced(tmp, final)
    assert final.read_bytes() == b"sidecar" and not tmp.exists()


def test_commit_dir_publishes_a_whole_directory_once(tmp_path: Path) -> None:
    tmp = tmp_path / ".tmp-v1"
    (tmp / "sub").mkdir(parents=True)
    (tmp / "a.json").write_bytes(b"a")
    (tmp / "sub" / "b.bin").write_bytes(b"b")
    commit_dir(tmp, tmp_path / "v1")
    assert (tmp_path / "v1" / "sub" / "b.bin").read_bytes() == b"b"
    again = tmp_path / ".tmp-v1-again"
    again.mkdir()
    (again / "a.json").write_bytes(b"other")
    with pytest.raises(OSError):  # a committed directory is never overwritten
        commit_dir(again, tmp_path / "v1")
    assert (tmp_path / "v1" / "a.json").read_bytes() == b"a"


def test_sha256_file_matches_hashlib_across_blocks(tmp_path: Path) -> None:
    data = bytes(range(256)) * 5000
    (tmp_path / "f").write_bytes(data)
    assert sha256_file(tmp_path / "f", block=1000) == hashlib.sha256(data).hexdigest()

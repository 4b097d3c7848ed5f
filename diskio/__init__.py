"""diskio: durable file writes and file hashes, shared by towers, index and streams.

Standard library only, so every layer may import it. A reader of a path written here
sees the old content or the new, never a part: data goes to a temporary sibling, is
fsynced, renamed into place, and the directory is fsynced so the rename survives a crash.
"""

from __future__ import annotations

import hashlib
import os
import uuid
from pathlib import Path

__all__ = ["commit_dir", "fsync_path", "replace_synced", "sha256_file", "temp_sibling",
           "write_atomic", "write_synced"]


def sha256_file(path: Path | str, *, block: int = 1 << 22) -> str:
    """Hex sha256 of a file's bytes, read in blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(block), b""):
            digest.update(chunk)
    return digest.hexdigest()


def fsync_path(path: Path | str) -> None:
    """fsync a file or a directory (a directory's fsync makes renames inside it durable)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def temp_sibling(path: Path | str) -> Path:
    """A unique hidden name beside `path`, on the same file system (renames stay atomic)."""
    path = Path(path)
    return path.with_name(f".tmp-{uuid.uuid4().hex[:12]}-{path.name}")


def write_synced(path: Path | str, data: bytes) -> None:
    """Write and fsync, in place: for files of a directory that is committed as a whole."""
    with open(path, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())


def replace_synced(tmp: Path | str, final: Path | str) -> None:
    """Move a written temporary file into place durably (fsync, rename, fsync the folder)."""
    fsync_path(tmp)
    os.replace(tmp, final)
    fsync_path(Path(final).parent)


def write_atomic(path: Path | str, data: bytes) -> None:
    """Replace `path` with `data` in one step."""
    tmp = temp_sibling(path)
    try:
        write_synced(tmp, data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    fsync_path(Path(path).parent)


def commit_dir(tmp: Path | str, final: Path | str) -> None:
    """Make a fully written temporary directory appear as `final` in one step.

    Every file below `tmp` and `tmp` itself are fsynced first. The rename fails if `final`
    exists and is not empty: a committed directory is never overwritten.
    """
    tmp = Path(tmp)
    for entry in sorted(tmp.rglob("*"), reverse=True):  # files before their folders
        fsync_path(entry)
    fsync_path(tmp)
    os.rename(tmp, final)
    fsync_path(Path(final).parent)

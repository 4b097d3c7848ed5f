"""The checkpoint store: published checkpoints and their indexes, one directory per version.

    <store>/<version>/checkpoint/   the published checkpoint (copied, validated)
    <store>/<version>/index/        the item index the index agent built from it
    <store>/<version>/READY         written last: the version may go live
    <store>/<version>/REJECTED      the reason, when validation or the build failed

Every write lands in a temporary name first and is renamed into place, so a reader sees
a version either complete or not at all.
"""

from __future__ import annotations

import logging
import shutil
import time
from pathlib import Path
from typing import Literal, TypedDict

from diskio import commit_dir, temp_sibling, write_atomic
from towers.errors import CheckpointError
from towers.versions import VERSION_RE

__all__ = ["CheckpointStore", "VersionInfo"]

logger = logging.getLogger(__name__)


VersionState = Literal["ready", "rejected", "published"]


class VersionInfo(TypedDict):
    """One version in the store, as `CheckpointStore.versions` lists it."""

    version: str
    state: VersionState
    reason: str | None  # the reason recorded in REJECTED; None without one


class CheckpointStore:
    """Published checkpoints under one root directory."""

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root)

    def version_dir(self, version: str) -> Path:
        if not VERSION_RE.match(version):
            raise CheckpointError(f"version {version!r} must match {VERSION_RE.pattern}")
        return self.root / version

    def checkpoint_dir(self, version: str) -> Path:
        return self.version_dir(version) / "checkpoint"

    def index_dir(self, version: str) -> Path:
        return self.version_dir(version) / "index"

    def publish(self, source: Path | str) -> str:
        """Validate a checkpoint directory and copy it in; returns its version."""
        from towers.checkpoint import load_checkpoint  # torch: only when publishing

        source = Path(source)
        version = load_checkpoint(source).version  # hashes, shapes, spec: before any copy
        target = self.checkpoint_dir(version)
        if target.exists():
            logger.info("checkpoint %s is already in the store", version)
            return version
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = temp_sibling(target)
        try:
            shutil.copytree(source, tmp)
            commit_dir(tmp, target)
        except OSError:
            # Another publisher of the same version committed first: a version names its
            # content (hashes checked below), so theirs is as good as ours.
            if not target.exists():
                raise
            logger.info("checkpoint %s was published concurrently", version)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        load_checkpoint(target)  # the copy is what serving reads: check it too
        return version

    def mark_ready(self, version: str) -> None:
        write_atomic(self.version_dir(version) / "READY", f"{time.time():.3f}\n".encode())

    def mark_rejected(self, version: str, reason: str) -> None:
        self.version_dir(version).mkdir(parents=True, exist_ok=True)
        write_atomic(self.version_dir(version) / "REJECTED", (reason + "\n").encode())

    def is_ready(self, version: str) -> bool:
        return (self.version_dir(version) / "READY").is_file()

    def rejection(self, version: str) -> str | None:
        path = self.version_dir(version) / "REJECTED"
        return path.read_text().strip() if path.is_file() else None

    def versions(self) -> list[VersionInfo]:
        """Every version in the store, oldest first, with its state."""
        out: list[VersionInfo] = []
        if not self.root.is_dir():
            return out
        for d in sorted(self.root.iterdir(), key=lambda p: p.stat().st_mtime):
            if d.name.startswith(".") or not d.is_dir() or not VERSION_RE.match(d.name):
                continue
            state: VersionState = ("ready" if self.is_ready(d.name) else
                                   "rejected" if self.rejection(d.name) else "published")
            out.append({"version": d.name, "state": state, "reason": self.rejection(d.name)})
        return out

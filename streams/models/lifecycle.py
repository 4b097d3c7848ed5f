"""Model lifecycle: build the index of a published checkpoint, and load a ready version.

- The index agent (one worker: it owns the single partition of the checkpoints topic)
  validates an announced checkpoint, embeds every item with its item tower, builds the
  index aside, saves it into the store, marks the version ready and makes it live (the
  live version is a Redis key, so it survives restarts). A checkpoint that fails any
  check is marked rejected with the reason; the live version does not change.
  `nearline publish` runs the same build (`build_version`) before announcing, by
  default, so the agent usually finds the version ready and only makes it live.
- Every worker follows the live version (`streams.worker.watcher`) and loads it with
  `load_version` and `live_model`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import orjson

from index import IndexConfig, IndexFileError, IndexInputError, save_index
from streams.models.live import LiveModel
from streams.models.store import CheckpointStore
from streams.recall.channels import Channel
from streams.recall.itemcf import ItemCFChannel
from streams.recall.recipe import read_recipe
from streams.state.contract import UserStateStore
from towers.errors import CheckpointError, TowersError
from towers.versions import VERSION_RE

if TYPE_CHECKING:
    from streams.recall.two_tower import TowerBundle

__all__ = ["BUILD_ERRORS", "IndexBuilder", "build_version",
           "load_live_model", "reject"]

logger = logging.getLogger(__name__)

# a checkpoint is data from outside: whatever it makes torch or faiss raise rejects it
BUILD_ERRORS = (CheckpointError, TowersError, IndexFileError, IndexInputError, OSError,
                ValueError, TypeError, RuntimeError, KeyError)


def live_model(bundle: TowerBundle, checkpoint_dir: Path) -> LiveModel:
    """The version's channels: two-tower, plus item-to-item when the checkpoint has it, and
    its recipe (settings chosen on the valid window) when it has one."""
    from streams.recall.two_tower import TwoTowerChannel

    extra: tuple[Channel, ...] = ()
    table = checkpoint_dir / "neighbours.json"
    if table.is_file():  # hashed with the rest of the checkpoint when it was loaded
        try:
            extra = (ItemCFChannel.from_json(orjson.loads(table.read_bytes())),)
        except (ValueError, orjson.JSONDecodeError) as exc:
            raise CheckpointError(f"neighbours.json: {exc}") from exc
    return LiveModel(version=bundle.version, channel=TwoTowerChannel(bundle), extra=extra,
                     index_items=len(bundle.index), recipe=read_recipe(checkpoint_dir))


def load_version(store: CheckpointStore, version: str) -> TowerBundle:
    """A ready version's towers and saved index (both validated)."""
    from streams.recall.two_tower import TowerBundle

    if not store.is_ready(version):
        raise CheckpointError(f"version {version} is not ready in {store.root}")
    return TowerBundle.from_checkpoint(store.checkpoint_dir(version),
                                       index_dir=store.index_dir(version))


def load_live_model(store: CheckpointStore, version: str | None) -> LiveModel | None:
    """The live model at start-up; None (repeat + popularity only) when none is live."""
    if not version:
        return None
    try:
        return live_model(load_version(store, version), store.checkpoint_dir(version))
    except BUILD_ERRORS as exc:
        logger.error("live version %s cannot be loaded, serving without a model: %s",
                     version, exc)
        return None


@dataclass
class IndexBuilder:
    """Turns a published checkpoint into a ready (and live) version."""

    store: CheckpointStore
    state: UserStateStore
    on_rejected: Callable[[str, str], None] = field(default=lambda version, reason: None)
    config: IndexConfig | None = None  # how the index is built (None: IndexConfig())

    async def build(self, version: str, *, make_live: bool = True) -> bool:
        """True when `version` is ready (built now or before); False when rejected."""
        if not VERSION_RE.match(version):
            reason = f"version {version!r:.80} must match {VERSION_RE.pattern}"
            logger.error("announcement rejected: %s", reason)
            self.on_rejected(version, reason)
            return False
        if self.store.is_ready(version):
            logger.info("version %s is already ready", version)
        else:
            try:
                await asyncio.to_thread(build_version, self.store, version, config=self.config)
            except BUILD_ERRORS as exc:
                reason = reject(self.store, version, exc)
                logger.error("checkpoint %s rejected: %s", version, reason)
                self.on_rejected(version, reason)
                return False
        if make_live:
            await self.state.set_live_version(version)
            logger.info("version %s is live", version)
        return True


def build_version(store: CheckpointStore, version: str, *,
                  config: IndexConfig | None = None) -> int:
    """Embed every item of a stored checkpoint, save its index and mark it ready.

    The index agent runs this; so does `nearline publish` (by default), on the machine
    that publishes, so that the hosts serving recall only load the index. Raises one of
    `BUILD_ERRORS` for a checkpoint that cannot be served. Returns the items indexed.
    """
    from streams.recall.two_tower import TowerBundle

    started = time.perf_counter()
    bundle = TowerBundle.from_checkpoint(store.checkpoint_dir(version), config=config)
    live_model(bundle, store.checkpoint_dir(version))  # every artefact must load
    save_index(bundle.index, store.index_dir(version))
    store.mark_ready(version)
    logger.info("version %s ready: %s items indexed in %.1f s", version, len(bundle.index),
                time.perf_counter() - started)
    return len(bundle.index)


def reject(store: CheckpointStore, version: str, exc: BaseException) -> str:
    """Mark `version` rejected because of `exc` (one of `BUILD_ERRORS`); the reason."""
    reason = f"{type(exc).__name__}: {exc}"
    store.mark_rejected(version, reason)
    return reason

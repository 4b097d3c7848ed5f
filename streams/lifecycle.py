"""Model lifecycle: build the index of a published checkpoint, and follow the live version.

- The index agent (one worker: it owns the single partition of the checkpoints topic)
  validates an announced checkpoint, embeds every item with its item tower, builds the
  index aside, saves it into the store, marks the version ready and makes it live (the
  live version is a Redis key, so it survives restarts). A checkpoint that fails any
  check is marked rejected with the reason; the live version does not change.
  `nearline publish` runs the same build (`build_version`) before announcing, by
  default, so the agent usually finds the version ready and only makes it live.
- Every worker polls the live version and, when it changes, loads that version's user
  tower and index together in a background thread, then swaps them in one assignment
  (`RecallEngine.swap`). Batches already running finish on the version they read.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import orjson

from index import IndexConfig, IndexFileError, IndexInputError, save_index
from streams.channels import Channel
from streams.checkpoint_store import CheckpointStore
from streams.engine import LiveModel, RecallEngine
from streams.itemcf import ItemCFChannel
from streams.state import UserStateStore
from towers.checkpoint import VERSION_RE
from towers.errors import CheckpointError, TowersError
from towers.sequence import UserHistory

if TYPE_CHECKING:
    from streams.two_tower import TowerBundle

__all__ = ["BUILD_ERRORS", "IndexBuilder", "LiveVersionWatcher", "build_version",
           "load_live_model", "reject"]

logger = logging.getLogger(__name__)

# a checkpoint is data from outside: whatever it makes torch or faiss raise rejects it
BUILD_ERRORS = (CheckpointError, TowersError, IndexFileError, IndexInputError, OSError,
                ValueError, TypeError, RuntimeError, KeyError)


def live_model(bundle: TowerBundle, checkpoint_dir: Path) -> LiveModel:
    """The version's channels: two-tower, plus item-to-item when the checkpoint has it."""
    from streams.two_tower import TwoTowerChannel

    extra: tuple[Channel, ...] = ()
    table = checkpoint_dir / "neighbours.json"
    if table.is_file():  # hashed with the rest of the checkpoint when it was loaded
        try:
            extra = (ItemCFChannel.from_json(orjson.loads(table.read_bytes())),)
        except (ValueError, orjson.JSONDecodeError) as exc:
            raise CheckpointError(f"neighbours.json: {exc}") from exc
    return LiveModel(version=bundle.version, channel=TwoTowerChannel(bundle), extra=extra,
                     index_items=len(bundle.index))


def load_version(store: CheckpointStore, version: str) -> TowerBundle:
    """A ready version's towers and saved index (both validated)."""
    from streams.two_tower import TowerBundle

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
    from streams.two_tower import TowerBundle

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


class LiveVersionWatcher:
    """Follows the live version key and swaps the engine's model when it changes."""

    def __init__(self, engine: RecallEngine, store: CheckpointStore, *,
                 on_swap: Callable[[LiveModel], None] | None = None) -> None:
        self.engine = engine
        self.store = store
        self.on_swap = on_swap
        self.failed: set[str] = set()  # versions that could not be loaded: not retried
        # one thread of its own, at a lower CPU priority: a load competes with the batches
        # being served for the cores, and those come first
        self._loader = ThreadPoolExecutor(max_workers=1, thread_name_prefix="model-load",
                                          initializer=_lower_priority)

    async def check(self) -> bool:
        """One poll; True when a new version went live in this worker."""
        version = await self.engine.store.live_version()
        current = self.engine.model.version if self.engine.model is not None else None
        if not version or version == current or version in self.failed:
            return False
        try:  # off the event loop: loading, parsing and the first search take a while
            model = await asyncio.get_running_loop().run_in_executor(self._loader, self._load,
                                                                     version)
        except BUILD_ERRORS as exc:
            self.failed.add(version)
            logger.error("live version %s cannot be loaded, keeping %s: %s", version,
                         current, exc)
            return False
        self.engine.swap(model)
        if self.on_swap is not None:
            self.on_swap(model)
        return True

    def _load(self, version: str) -> LiveModel:
        bundle = load_version(self.store, version)
        model = live_model(bundle, self.store.checkpoint_dir(version))
        if len(bundle.index):
            warm_up(model)
        return model


def _lower_priority(nice: int = 19) -> None:
    """Lower the calling thread's priority (Linux schedules threads one by one).

    The lowest: a load then takes a little longer, and the batches served meanwhile keep
    their latency (bench/swap.py: p99 during a swap 1.4-2.0x steady against 2.5-4.4x at
    nice 5). The load holds the GIL only in short stretches (JSON parsing), so a starved
    loader does not hold the serving threads up.
    """
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), nice)
    except (OSError, AttributeError):  # not Linux, or not allowed: run at the same priority
        pass


def warm_up(model: LiveModel, item_id: str = "warm-up") -> None:
    """One recall through the new towers and index, so the first batch served after the
    swap does not pay the first-call costs (allocations, lazy initialisation); an unknown
    item takes the same path (its out-of-vocabulary bucket)."""
    history = UserHistory("warm-up")
    history.append(item_id, 0.0)
    model.channel.candidates([history], k=10, now=0.0)

"""Following the live version: each worker polls it and swaps its model when it changes.

The new version's user tower and index load together in a background thread, then
replace the engine's model in one assignment (`RecallEngine.swap`). Batches already
running finish on the version they read.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from streams.models.lifecycle import BUILD_ERRORS, live_model, load_version
from streams.models.live import LiveModel, warm_up
from streams.models.store import CheckpointStore
from streams.worker.engine import RecallEngine

__all__ = ["LiveVersionWatcher"]

logger = logging.getLogger(__name__)


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

"""Building an index aside: validate, train, fill, seal."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from concurrent.futures import Future

import numpy as np

from index.backends import Backend, backend_class
from index.concurrency import lower_thread_priority, omp_threads
from index.config import IndexConfig
from index.errors import IndexInputError
from index.idmap import IdMap, encode_ids, sorted_order
from index.items import ItemIndex, as_vectors, check_version

logger = logging.getLogger(__name__)


def build_index(ids: Sequence[str], vectors: np.ndarray, *, version: str, checkpoint: str = "",
                config: IndexConfig | None = None,
                trained_from: ItemIndex | None = None) -> ItemIndex:
    """Build a READY index of `ids` and `vectors` (one row per id).

    `trained_from` reuses the trained state (IVF lists and codebooks) of an index of the
    same backend, dimension and metric instead of training again.
    """
    config = config or IndexConfig()
    check_version(version)
    started = time.perf_counter()
    keys = encode_ids(ids)
    if not len(keys):
        raise IndexInputError("cannot build an index of no items")
    vectors = np.asarray(vectors)
    dim = vectors.shape[1] if vectors.ndim == 2 else -1
    x = as_vectors(vectors, dim, metric=config.metric, what="item vectors")
    if len(keys) != len(x):
        raise IndexInputError(f"{len(keys)} ids for {len(x)} vectors: pass one id per row")
    idmap = IdMap.from_unique(keys, sorted_order(keys))
    with omp_threads(config.build_threads):
        if trained_from is None:
            backend = backend_class(config.resolve_backend(len(x))).create(dim, len(x), config)
            backend.train(x, config=config)
        else:
            backend = _reuse_training(trained_from, dim, config)
        backend.add(np.arange(len(keys), dtype=np.int64), x)
    index = ItemIndex(backend=backend, idmap=idmap, config=config, version=version,
                      checkpoint=checkpoint)
    index.mark_ready()
    logger.info("built index %s (%s, %s items, dim %s) in %.1f s", version, backend.name,
                len(x), dim, time.perf_counter() - started)
    return index


def build_aside(ids: Sequence[str], vectors: np.ndarray, *, version: str, checkpoint: str = "",
                config: IndexConfig | None = None,
                trained_from: ItemIndex | None = None) -> Future[ItemIndex]:
    """`build_index` in a background thread of lower CPU priority; the future holds the result.

    Searches running meanwhile keep their latency: the builder uses `build_threads`
    OpenMP threads and, being niced by `build_nice`, yields the cores to them.
    """
    config = config or IndexConfig()
    future: Future[ItemIndex] = Future()

    def run() -> None:
        if not future.set_running_or_notify_cancel():
            return
        lower_thread_priority(config.build_nice)
        try:
            index = build_index(ids, vectors, version=version, checkpoint=checkpoint,
                                config=config, trained_from=trained_from)
        except BaseException as exc:  # handed to whoever waits on the future
            future.set_exception(exc)
        else:
            future.set_result(index)

    threading.Thread(target=run, name=f"index-build-{version}", daemon=True).start()
    return future


def _reuse_training(trained: ItemIndex, dim: int, config: IndexConfig) -> Backend:
    if trained.dim != dim or trained.metric != config.metric:
        raise IndexInputError(f"cannot reuse the training of index {trained.version} "
                              f"(dim {trained.dim}, {trained.metric}) for dim {dim}, "
                              f"{config.metric}")
    return trained._backend.empty_like()

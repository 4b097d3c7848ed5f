"""The readers-writer lock, per-thread OpenMP settings, and building aside."""

from __future__ import annotations

import os
import sys
import threading

import faiss
import pytest

from index import IndexInputError, VersionState, build_aside, build_index
from index.concurrency import ReadWriteLock, lower_thread_priority, omp_threads

from .synthetic import item_ids, unit_vectors


def test_writer_waits_for_readers_and_blocks_new_ones() -> None:
    lock = ReadWriteLock()
    wrote, late_read = threading.Event(), threading.Event()

    def writer() -> None:
        with lock.write():
            wrote.set()

    def late_reader() -> None:
        with lock.read():
            late_read.set()

    with lock.read(), lock.read():  # readers share the lock
        w = threading.Thread(target=writer)
        w.start()
        assert not wrote.wait(0.2)
        r = threading.Thread(target=late_reader)
        r.start()
        assert not late_read.wait(0.2)  # the waiting writer goes first
    w.join(2)
    r.join(2)
    assert wrote.is_set() and late_read.is_set()


def test_omp_threads_is_per_thread_and_restored() -> None:
    before = faiss.omp_get_max_threads()
    seen: list[int] = []

    def other() -> None:
        seen.append(faiss.omp_get_max_threads())

    with omp_threads(1):
        assert faiss.omp_get_max_threads() == 1
        t = threading.Thread(target=other)
        t.start()
        t.join()
    assert faiss.omp_get_max_threads() == before
    assert seen == [before]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="per-thread nice is Linux's")
def test_lower_thread_priority_touches_only_the_calling_thread() -> None:
    main_before = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
    seen: list[tuple[int, int]] = []

    def worker() -> None:
        tid = threading.get_native_id()
        before = os.getpriority(os.PRIO_PROCESS, tid)
        lower_thread_priority(5)
        seen.append((before, os.getpriority(os.PRIO_PROCESS, tid)))

    t = threading.Thread(target=worker)
    t.start()
    t.join()
    assert seen == [(main_before, min(19, main_before + 5))]
    assert os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) == main_before


def test_build_aside_returns_the_index_or_the_error() -> None:
    future = build_aside(item_ids(300), unit_vectors(300, 8, seed=1), version="bg1")
    index = future.result(timeout=30)
    assert index.state is VersionState.READY and len(index) == 300
    direct = build_index(item_ids(300), unit_vectors(300, 8, seed=1), version="fg1")
    queries = unit_vectors(3, 8, seed=2)
    assert index.search(queries, 5).ids.tolist() == direct.search(queries, 5).ids.tolist()
    failed = build_aside(["a", "a"], unit_vectors(2, 8, seed=3), version="bg2")
    with pytest.raises(IndexInputError, match="more than once"):
        failed.result(timeout=30)

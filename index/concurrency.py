"""Thread helpers: a readers-writer lock, per-thread OpenMP counts, build-thread priority."""

from __future__ import annotations

import logging
import os
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import faiss

logger = logging.getLogger(__name__)


class ReadWriteLock:
    """Many concurrent readers or one writer; a waiting writer blocks new readers.

    Faiss searches may run concurrently, but adding or removing while a search runs is
    unsafe, so searches take the read side and mutations the write side.
    """

    def __init__(self) -> None:
        self._cond = threading.Condition(threading.Lock())
        self._readers = 0
        self._writer = False
        self._writers_waiting = 0

    @contextmanager
    def read(self) -> Iterator[None]:
        with self._cond:
            while self._writer or self._writers_waiting:
                self._cond.wait()
            self._readers += 1
        try:
            yield
        finally:
            with self._cond:
                self._readers -= 1
                if not self._readers:
                    self._cond.notify_all()

    @contextmanager
    def write(self) -> Iterator[None]:
        with self._cond:
            self._writers_waiting += 1
            try:
                while self._writer or self._readers:
                    self._cond.wait()
            finally:
                self._writers_waiting -= 1
            self._writer = True
        try:
            yield
        finally:
            with self._cond:
                self._writer = False
                self._cond.notify_all()


@contextmanager
def omp_threads(n: int) -> Iterator[None]:
    """Run faiss calls of this thread with `n` OpenMP threads (0 leaves the setting alone).

    OpenMP keeps the thread count per calling thread, so a builder thread limited to one
    thread leaves the other cores to the threads that serve searches.
    """
    if n <= 0:
        yield
        return
    before = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(n)
    try:
        yield
    finally:
        faiss.omp_set_num_threads(before)


def lower_thread_priority(nice: int) -> None:
    """Lower the CPU priority of the calling thread only (Linux); elsewhere do nothing.

    Linux applies `setpriority` on a thread id to that thread alone, so a builder thread
    yields the cores to the threads serving searches. Raising it back needs privileges:
    call this only from a thread that exists for the background work.
    """
    if nice <= 0 or not sys.platform.startswith("linux"):
        return
    tid = threading.get_native_id()
    try:
        os.setpriority(os.PRIO_PROCESS, tid, min(19, os.getpriority(os.PRIO_PROCESS, tid) + nice))
    except OSError as exc:  # e.g. a sandbox that forbids it: building still works
        logger.debug("could not lower the priority of thread %s: %s", tid, exc)

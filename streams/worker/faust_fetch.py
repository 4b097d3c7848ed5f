"""Faust's consumer fetch wait, made a setting.

faust-streaming creates its aiokafka consumer with `fetch_max_wait_ms=1500` fixed. A
broker that honours long polls answers as soon as data arrives, but the embedded Tansu
build holds every fetch for the whole wait: events would sit up to 1.5 s before a worker
sees them (measured: p50 415 ms at 1500 ms, 4 ms at 10 ms). Faust reads the consumer
class from its `aiokafka` module global, so the worker swaps that for a view of aiokafka
whose consumer applies the configured wait. Nothing else changes.
"""

from __future__ import annotations

import types
from typing import Any

import aiokafka
from faust.transport.drivers import aiokafka as faust_driver

__all__ = ["set_fetch_max_wait"]


class _AiokafkaView(types.ModuleType):
    AIOKafkaConsumer: type[aiokafka.AIOKafkaConsumer]  # set per view; the rest is aiokafka's

    def __getattr__(self, name: str) -> Any:
        return getattr(aiokafka, name)


def set_fetch_max_wait(ms: int) -> None:
    """Every Faust consumer created from now on in this process waits at most `ms`."""

    class Consumer(aiokafka.AIOKafkaConsumer):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            kwargs["fetch_max_wait_ms"] = ms
            super().__init__(*args, **kwargs)

    view = _AiokafkaView("aiokafka")
    view.AIOKafkaConsumer = Consumer
    faust_driver.aiokafka = view

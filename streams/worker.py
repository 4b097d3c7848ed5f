"""Starting a worker process: settings -> topics, state, engine, Faust app -> run."""

from __future__ import annotations

import logging
from collections.abc import Callable

import faust
import redis.asyncio as aioredis

from streams.app import create_app
from streams.channels import RepeatConfig
from streams.engine import EngineConfig, LiveModel, RecallEngine
from streams.popularity import PopularityBoard
from streams.settings import Settings
from streams.state import StateConfig, open_state_store
from streams.topics import ensure_topics

__all__ = ["build_engine", "run_worker"]

logger = logging.getLogger(__name__)


def engine_config(settings: Settings) -> EngineConfig:
    return EngineConfig(top_k=settings.top_k, seen_filter=settings.seen_filter,
                        repeat=RepeatConfig(half_life_s=settings.half_life_s))


def build_engine(settings: Settings, *, model: LiveModel | None = None) -> RecallEngine:
    """The engine over Redis (or `memory://`) state and the shared popularity board."""
    store = open_state_store(settings.redis_url, config=StateConfig(prefix=settings.state_prefix))
    client = aioredis.Redis.from_url(settings.redis_url)
    board = PopularityBoard(client, prefix=settings.state_prefix,
                            half_life_s=settings.popularity_half_life_s or None)
    return RecallEngine(store, board, config=engine_config(settings), model=model)


def run_worker(settings: Settings, *, model_loader: Callable[[], LiveModel | None]
               | None = None, loglevel: str = "info") -> None:
    """Create the topics, load the live model, then consume until stopped."""
    ensure_topics(settings)
    model = model_loader() if model_loader is not None else None
    engine = build_engine(settings, model=model)
    app, pipeline = create_app(settings, engine)
    if model is not None:
        pipeline.metrics.model_version.set(1, version=model.version)
    logger.info("worker %s: kafka %s, model %s", settings.app_id, settings.kafka_url,
                model.version if model else "none (repeat + popularity only)")
    worker = faust.Worker(app, loglevel=loglevel, redirect_stdouts=False)
    worker.execute_from_commandline()



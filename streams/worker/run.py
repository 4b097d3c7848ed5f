"""Starting a worker process: settings -> topics, state, engine, Faust app -> run."""

from __future__ import annotations

import importlib
import logging
import os
from collections.abc import Sequence
from dataclasses import replace

import faust
import redis.asyncio as aioredis
import torch

from streams.errors import SettingsError
from streams.logs import logging_config
from streams.models.lifecycle import load_live_model
from streams.models.live import LiveModel
from streams.models.store import CheckpointStore
from streams.recall.profiles import Profile, profile_named
from streams.settings import Settings
from streams.state.connect import live_version_now, open_state_store
from streams.state.contract import StateConfig
from streams.state.popularity import PopularityBoard
from streams.topics import ensure_topics
from streams.worker.app import ROLES, create_app
from streams.worker.engine import EngineConfig, RecallEngine

__all__ = ["build_engine", "run_worker"]

logger = logging.getLogger(__name__)


def served_profile(settings: Settings) -> Profile:
    """The profile named by the settings, with the settings that override it applied."""
    try:
        profile = profile_named(settings.profile)
    except ValueError as exc:
        raise SettingsError(f"NEARLINE_PROFILE: {exc}") from None
    if settings.half_life_s:
        profile = replace(profile, repeat=replace(profile.repeat,
                                                  half_life_s=settings.half_life_s))
    if settings.popularity_half_life_s:
        profile = replace(profile, popularity=replace(
            profile.popularity, half_life_s=settings.popularity_half_life_s))
    if settings.seen_filter:
        profile = replace(profile, seen_filter=True)
    return profile


def build_engine(settings: Settings, *, model: LiveModel | None = None) -> RecallEngine:
    """The engine over Redis (or `memory://`) state and the shared popularity board."""
    config = StateConfig(prefix=settings.state_prefix,
                         embedding_ttl_s=settings.embedding_ttl_s or StateConfig.embedding_ttl_s)
    store = open_state_store(settings.redis_url, config=config)
    client = aioredis.Redis.from_url(settings.redis_url)
    profile = served_profile(settings)
    board = PopularityBoard(client, prefix=settings.state_prefix,
                            half_life_s=profile.popularity.half_life_s)
    return RecallEngine(store, board, config=EngineConfig(profile=profile, top_k=settings.top_k),
                        model=model)


def run_worker(settings: Settings, *, roles: Sequence[str] = ROLES,
               loglevel: str = "info") -> None:
    """Create the topics, load the live model, then consume until stopped."""
    served_profile(settings)  # a wrong profile name stops the worker before anything starts
    # one intra-op thread: the event loop, faiss and torch share few cores, and spinning
    # OpenMP pools fighting each other cost far more than they parallelise small batches
    torch.set_num_threads(max(1, settings.torch_threads))
    if "recall" not in roles and settings.index_nice > 0:
        os.nice(settings.index_nice)  # background builds: recall latency comes first
    if "index" in roles:
        # loading a checkpoint builds its model on the meta device, which imports
        # torch._dynamo the first time (about 1 s of CPU): pay it now, not during the first
        # build, while the recall workers are serving
        try:
            importlib.import_module("torch._dynamo")
        except ImportError:  # another torch: nothing to warm
            pass
    ensure_topics(settings)
    store = CheckpointStore(settings.checkpoint_dir())
    model = None
    if "recall" in roles:
        model = load_live_model(store, live_version_now(settings.redis_url,
                                                        prefix=settings.state_prefix))
    engine = build_engine(settings, model=model)
    app, pipeline = create_app(settings, engine, roles=roles, store=store)
    if model is not None:
        pipeline.metrics.live_model(model.version, model.index_items)
    logger.info("worker %s (%s): kafka %s, model %s", settings.app_id, ",".join(roles),
                settings.kafka_url, model.version if model else "none")
    worker = faust.Worker(app, loglevel=loglevel, redirect_stdouts=False,
                          logging_config=logging_config(loglevel, json=settings.log_json))
    worker.execute_from_commandline()

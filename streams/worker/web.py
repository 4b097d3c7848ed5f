"""A worker's HTTP endpoints: lists and embeddings on demand, health, version, metrics.

`GET /recall/{user}` serves the user's stored list while it is of the live version and
computes one (without storing it) otherwise; `GET /embedding/{user}` the vector that list
was searched with; `/healthz` checks Redis and reports the partitions consumed.
"""

from __future__ import annotations

import logging
import time

import faust
from faust.web import Request, Response, View

from streams.settings import Settings
from streams.worker.metrics import CONTENT_TYPE
from streams.worker.pipeline import Pipeline, to_result

__all__ = ["add_endpoints"]

logger = logging.getLogger(__name__)


def add_endpoints(app: faust.App, settings: Settings, pipeline: Pipeline) -> None:
    """/recall, /embedding, /healthz, /version and /metrics on the worker's web server."""
    engine = pipeline.engine

    @app.page("/recall/{user_id:[^/]+}")  # ids may hold braces; aiohttp's default refuses
    class RecallView(View):
        async def get(self, request: Request, user_id: str) -> Response:
            k = request.query.get("k", str(settings.top_k))
            if not (k.isascii() and k.isdigit() and len(k) <= 6) \
                    or not 1 <= int(k) <= settings.top_k:
                return self.json({"error": f"k must be an integer in 1..{settings.top_k}"},
                                 status=400)
            if why := _bad_user_id(user_id):
                return self.json({"error": why}, status=400)
            stored = await engine.store.get_recall(user_id)
            live = engine.model.version if engine.model else ""
            if stored is None or stored.get("version") != live:  # none yet, or stale
                # computed on demand, not stored: unknown ids must not grow the state
                feats = (await engine.store.features([user_id]))[0]
                fresh = await engine.recall([user_id], now=feats.max_ts if feats else 0.0)
                stored = to_result(fresh[0], emitted=time.time(), arrival=None).asdict()
            out = dict(stored)
            for key in ("items", "scores", "channels"):
                out[key] = out[key][: int(k)]
            return self.json(out)

    @app.page("/embedding/{user_id:[^/]+}")
    class EmbeddingView(View):
        async def get(self, request: Request, user_id: str) -> Response:
            if why := _bad_user_id(user_id):
                return self.json({"error": why}, status=400)
            live = engine.model.version if engine.model else ""
            if not live:
                return self.json({"error": "no model is live"}, status=404)
            (vector,) = await engine.store.get_embeddings([user_id], version=live)
            if vector is None:
                return self.json({"error": f"no embedding of {user_id!r} under version "
                                           f"{live} (no list computed since, or expired)"},
                                 status=404)
            return self.json({"user_id": user_id, "version": live,
                              "vector": vector.astype(float).tolist()})

    @app.page("/healthz")
    class Health(View):
        async def get(self, request: Request) -> Response:
            try:
                await engine.store.counters()
            except Exception as exc:  # report, never raise: this is the probe
                return self.json({"ok": False, "redis": str(exc)[:200]}, status=503)
            try:  # partitions of the input topics this worker consumes (0 until assigned)
                tps = app.consumer.assignment()
            except Exception:  # the consumer is not started yet
                tps = set()
            mine = [tp for tp in tps if tp.topic == settings.topics.interactions]
            return self.json({"ok": True, "interaction_partitions": len(mine)})

    @app.page("/version")
    class Version(View):
        async def get(self, request: Request) -> Response:
            return self.json({"model_version": engine.model.version if engine.model else "",
                              "app_id": settings.app_id})

    @app.page("/metrics")
    class Metrics(View):
        async def get(self, request: Request) -> Response:
            return self.bytes(pipeline.metrics.render(), content_type=CONTENT_TYPE)

    logger.debug("web views: %s", [RecallView, EmbeddingView, Health, Version, Metrics])


def _bad_user_id(user_id: str) -> str:
    """Why `user_id` is refused ("" when it is fine)."""
    if not 1 <= len(user_id) <= 256 or any(ord(c) < 32 or 127 <= ord(c) <= 159
                                           for c in user_id):
        return "user_id must be 1-256 printable characters"
    return ""

"""The Faust application of a worker: topics and agents (HTTP endpoints: `web`).

Agents are loops of a few lines; the work is in `streams.worker.pipeline.Pipeline`. Each
consumes raw bytes (so a malformed message reaches the pipeline and the dead-letter
topic instead of crashing a deserialiser), takes micro-batches without acking, and acks
a batch only once it is applied and published: a crash replays unacked messages, which
the idempotent state turns into no-ops.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, cast

import faust

from index import IndexConfig
from streams.errors import EventError, ServiceError, SettingsError
from streams.models.lifecycle import IndexBuilder
from streams.models.live import LiveModel
from streams.models.store import CheckpointStore
from streams.settings import Settings
from streams.worker.engine import RecallEngine
from streams.worker.faust_fetch import set_fetch_max_wait
from streams.worker.pipeline import Incoming, Pipeline
from streams.worker.records import DeadLetter, RecallResult, dead_letter, decode_announcement
from streams.worker.watcher import LiveVersionWatcher
from streams.worker.web import add_endpoints

__all__ = ["ROLES", "KafkaSink", "create_app"]

logger = logging.getLogger(__name__)


def _credentials(settings: Settings) -> Any:
    protocol = settings.kafka_security_protocol.upper()
    if protocol == "PLAINTEXT":
        return None
    context = ssl.create_default_context(cafile=settings.kafka_ssl_cafile or None)
    if protocol == "SSL":
        return context
    return faust.SASLCredentials(username=settings.kafka_sasl_username,
                                 password=settings.kafka_sasl_password,
                                 mechanism=settings.kafka_sasl_mechanism or "PLAIN",
                                 ssl_context=context if protocol == "SASL_SSL" else None)


def faust_app(settings: Settings) -> faust.App:
    """A bare Faust app configured from settings (no agents yet)."""
    set_fetch_max_wait(settings.fetch_max_wait_ms)
    servers = ";".join(f"kafka://{h}" for h in settings.kafka_url.split(","))
    return faust.App(
        settings.app_id, broker=servers, broker_credentials=_credentials(settings),
        store="memory://", topic_partitions=settings.partitions, topic_disable_leader=True,
        topic_allow_declare=False,  # `ensure_topics` creates them with the right partitions
        broker_rebalance_timeout=settings.rebalance_timeout_s,
        broker_session_timeout=max(6.0, 2 * settings.rebalance_timeout_s),
        broker_heartbeat_interval=0.5, consumer_auto_offset_reset="earliest",
        broker_commit_interval=1.0, web_enabled=settings.web_port > 0,
        datadir=str(Path(settings.home) / f"{settings.app_id}-data"),
        web_bind=settings.web_host, web_host=settings.web_host,
        web_port=max(settings.web_port, 1), producer_linger=0.0,
    )


class KafkaSink:
    """Publishes recall lists and dead letters; waits for the broker's acks."""

    def __init__(self, recalls: faust.TopicT, dead: faust.TopicT) -> None:
        self.recalls_topic = recalls
        self.dead_topic = dead

    async def recalls(self, results: Sequence[RecallResult]) -> None:
        # straight to the producer: Faust's topic.send wraps every message in futures and
        # callbacks that cost more than the send itself at thousands of lists a second
        producer, name = self.recalls_topic.app.producer, self.recalls_topic.get_topic_name()
        futures = [await producer.send(name, r.user_id.encode(), r.dumps(), None, None, None)
                   for r in results]
        for fut in futures:
            await fut

    async def dead_letters(self, letters: Sequence[DeadLetter]) -> None:
        for letter in letters:  # delivered before the batch is acked: nothing is lost
            try:
                await (await self.dead_topic.send(value=letter.dumps()))
            except Exception as exc:  # e.g. over the broker's message size: keep the facts
                logger.warning("dead letter of %s:%s:%s refused (%s); sent without the "
                               "original", letter.topic, letter.partition, letter.offset, exc)
                slim = letter.derive(original_b64="", truncated=True)
                await (await self.dead_topic.send(value=slim.dumps()))


def _incoming(event: Any) -> Incoming:
    m = event.message
    return Incoming(value=m.value, topic=m.topic, partition=m.partition, offset=m.offset,
                    arrival=(m.timestamp or 0.0))


ROLES = ("recall", "index")


def create_app(settings: Settings, engine: RecallEngine, *, roles: Sequence[str] = ROLES,
               store: CheckpointStore | None = None) -> tuple[faust.App, Pipeline]:
    """The worker app: the agents of its roles plus the HTTP endpoints.

    recall: interactions, context and items agents, and the live-version watcher;
    index: the checkpoints agent that builds indexes and makes versions live.
    """
    unknown = set(roles) - set(ROLES)
    if unknown or not roles:
        raise SettingsError(f"worker roles {sorted(unknown) or 'none'}: use {ROLES}")
    app = faust_app(settings)
    names = settings.topics
    topic = {name: _raw_topic(app, getattr(names, name)) for name in
             ("interactions", "context", "items", "checkpoints", "recalls", "dead_letter")}
    sink = KafkaSink(topic["recalls"], topic["dead_letter"])
    pipeline = Pipeline(engine, sink, max_event_bytes=settings.max_event_bytes,
                        max_future_s=settings.max_future_s, depth=settings.pipeline_depth,
                        cache_embeddings=settings.embedding_ttl_s > 0,
                        max_envelope_events=settings.max_envelope_events,
                        max_envelope_bytes=settings.max_envelope_bytes,
                        batch_events=settings.batch_events)
    store = store or CheckpointStore(settings.checkpoint_dir())
    n, within = settings.batch_size, settings.batch_within_s
    if "recall" in roles:
        _staged_agent(app, topic["interactions"], pipeline.begin_interactions, n, within,
                      name="interactions_agent")
        for name, handle in (("context", pipeline.on_context), ("items", pipeline.on_items)):
            _batched_agent(app, topic[name], handle, n, within, name=f"{name}_agent")
        _watch_live_version(app, pipeline, store)
    if "index" in roles:
        _index_agent(app, topic["checkpoints"], pipeline, store,
                     IndexConfig(backend=settings.index_backend))
    _lag_gauge(app, pipeline)
    add_endpoints(app, settings, pipeline)

    @app.on_before_shutdown.connect
    async def close_state(app: faust.App, /, *args: Any, **kwargs: Any) -> None:
        await engine.store.close()  # flushes the pending counters

    return app, pipeline


def _raw_topic(app: faust.App, name: str) -> faust.TopicT:
    """A topic of raw bytes, keys and values: decoding is the pipeline's."""
    return app.topic(name, key_type=bytes, value_type=bytes, key_serializer="raw",
                     value_serializer="raw")


def _stream(stream: faust.StreamT) -> faust.Stream:
    """The stream an agent is given. Faust types agents' streams as `StreamT`, which lacks
    `noack` and `noack_take`; what it passes is always a `faust.Stream`, which has them."""
    return cast(faust.Stream, stream)


def _lag_gauge(app: faust.App, pipeline: Pipeline) -> None:
    """Consumer lag per topic: newest offset seen by fetches minus the committed one."""

    @app.timer(interval=2.0, name="nearline.consumer_lag")
    async def report_lag() -> None:
        consumer = app.consumer
        committed = getattr(consumer, "_committed_offset", {})  # faust keeps no public view
        lag: dict[str, int] = {}
        try:
            for tp in consumer.assignment():
                high = consumer.highwater(tp)
                if high is None:
                    continue
                done = committed.get(tp)
                lag[tp.topic] = lag.get(tp.topic, 0) + max(0, high - (done + 1 if done is not
                                                                       None else 0))
        except Exception as exc:  # not assigned yet, or rebalancing: report next time
            logger.debug("consumer lag unavailable: %s", exc)
            return
        for name, value in lag.items():
            pipeline.metrics.consumer_lag.labels(topic=name).set(value)


def _watch_live_version(app: faust.App, pipeline: Pipeline, store: CheckpointStore) -> None:
    def swapped(model: LiveModel) -> None:
        pipeline.metrics.live_model(model.version, model.index_items)
        pipeline.metrics.swaps.inc()

    watcher = LiveVersionWatcher(pipeline.engine, store, on_swap=swapped)

    @app.timer(interval=0.5, name="nearline.live_version")
    async def follow_live_version() -> None:
        try:
            await watcher.check()
        except ServiceError as exc:  # Redis away: keep serving the current version
            logger.warning("live version check failed: %s", exc)
        except Exception:  # never let a bad version stop the timer
            logger.exception("live version check failed")


def _index_agent(app: faust.App, topic: faust.TopicT, pipeline: Pipeline,
                 store: CheckpointStore, config: IndexConfig) -> None:
    builder = IndexBuilder(store, pipeline.engine.store,
                           on_rejected=lambda v, r: pipeline.metrics.rejected.inc(),
                           config=config)

    async def index_agent(stream: faust.StreamT) -> None:
        async for event in _stream(stream).noack().events():
            incoming = _incoming(event)
            try:
                note = decode_announcement(incoming.value)
            except EventError as exc:
                await pipeline.sink.dead_letters([dead_letter(
                    incoming.value, topic=incoming.topic, partition=incoming.partition,
                    offset=incoming.offset, error=exc, now=time.time())])
            else:
                if note.kind == "published":
                    try:
                        await builder.build(note.version)
                    except ServiceError:
                        raise  # Redis away: the announcement is redelivered after restart
                    except Exception:  # a checkpoint must never stop the agent
                        logger.exception("building version %s failed", note.version)
            await stream.ack(event)

    app.agent(topic, name="nearline.index_agent")(index_agent)


def _batched_agent(app: faust.App, topic: faust.TopicT, handle: Any, n: int, within: float,
                   *, name: str) -> None:
    async def agent(stream: faust.StreamT) -> None:
        async for events in _stream(stream).noack_take(n, within=within):
            await handle([_incoming(e) for e in events])
            for e in events:  # acked only once applied and published
                await stream.ack(e)

    agent.__name__ = name
    app.agent(topic, name=f"nearline.{name}")(agent)


def _staged_agent(app: faust.App, topic: faust.TopicT, begin: Any, n: int, within: float,
                  *, name: str) -> None:
    """Like `_batched_agent`, but takes the next batch while this one's lists are computed.

    `begin` applies a batch and returns an awaitable that ends once its lists are
    published; the batch is acked then, never before.
    """
    async def agent(stream: faust.StreamT) -> None:
        acking: set[asyncio.Task[None]] = set()  # referenced until done

        async def ack_when_done(done: Any, events: Sequence[Any]) -> None:
            try:
                await done
            except Exception:  # the next batch re-raises it in the agent
                logger.exception("lists of a batch failed: its %s events stay unacked",
                                 len(events))
                return
            for e in events:
                await stream.ack(e)

        async for events in _stream(stream).noack_take(n, within=within):
            done = await begin([_incoming(e) for e in events])
            task = asyncio.create_task(ack_when_done(done, events))
            acking.add(task)
            task.add_done_callback(acking.discard)

    agent.__name__ = name
    app.agent(topic, name=f"nearline.{name}")(agent)

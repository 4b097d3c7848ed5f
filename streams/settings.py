"""Settings of a nearline worker, read once from environment variables at the entry point.

Every field has an environment variable `NEARLINE_<FIELD>` (upper case). With nothing set,
the worker talks to the embedded broker and Redis that `nearline up` started (their
addresses are in the state file under `NEARLINE_HOME`).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, cast

import orjson

from streams.errors import SettingsError

__all__ = ["Settings", "TopicNames", "load_settings"]


@dataclass(frozen=True)
class TopicNames:
    interactions: str = "nearline.interactions"
    context: str = "nearline.context"
    items: str = "nearline.items"
    checkpoints: str = "nearline.checkpoints"
    recalls: str = "nearline.recalls"
    dead_letter: str = "nearline.dead-letter"

    def all(self) -> list[str]:
        return [getattr(self, f.name) for f in fields(self)]


# index.config.BACKENDS, spelt out: importing `index` here would load faiss into every
# command that reads the settings (tests/reliability/test_checkpoints.py checks they agree)
INDEX_BACKENDS = ("auto", "exact", "ivf", "hnsw")


@dataclass(frozen=True)
class Settings:
    kafka_url: str = ""  # host:port[,host:port]; "" = the embedded broker of `nearline up`
    redis_url: str = field(default="", repr=False)  # redis://[user:password@]host:port/db
    home: str = ".nearline"  # local state: embedded services' addresses, logs, checkpoints
    app_id: str = "nearline"  # Kafka consumer group of the workers
    partitions: int = 4  # partitions of every topic created at start
    topics: TopicNames = field(default_factory=TopicNames)
    checkpoint_store: str = ""  # directory of published checkpoints; "" = <home>/checkpoints
    top_k: int = 100  # length of each published recall list
    batch_size: int = 256  # micro-batch: at most this many messages ...
    batch_within_s: float = 0.005  # ... or whatever arrived within this many seconds;
    # its events (more than messages with envelopes) are applied and recalled this many
    # at a time
    batch_events: int = 4096
    # interaction batches in flight: later ones are applied while earlier lists compute
    pipeline_depth: int = 2
    # each list's user embedding is kept in Redis under (user, model version) this long,
    # for `GET /embedding/<user>` and rankers downstream; 0 keeps none
    embedding_ttl_s: float = 86_400.0
    # recall recipe: "retail" (repeat purchases) or "films" (streams/recall/profiles.py)
    profile: str = "retail"
    half_life_s: float = 0.0  # recency half-life of the repeat channel; 0 = the profile's
    popularity_half_life_s: float = 0.0  # decay of live popularity; 0 = the profile's
    state_prefix: str = "nl"  # every Redis key starts with "<prefix>:"
    seen_filter: bool = False  # true: drop items the user already had, whatever the profile
    max_event_bytes: int = 64 * 1024  # larger messages go to the dead-letter topic
    max_future_s: float = 86_400.0  # events timestamped further ahead are rejected
    # a message may also be an envelope, a JSON array of events: at most this many (0: no
    # envelopes) and this many bytes
    max_envelope_events: int = 1000
    max_envelope_bytes: int = 1 << 20
    web_host: str = "127.0.0.1"  # HTTP endpoint binds to loopback unless told otherwise
    web_port: int = 6066
    torch_threads: int = 1  # intra-op threads of the user tower in a worker
    # an index-only worker (`--agents index`) runs this much nicer than the recall
    # workers: its builds yield the CPU to recall on a shared host (0 = same priority)
    index_nice: int = 10
    # the item index the index agent builds: "auto" (exact up to 100,000 items, IVF above),
    # "exact", "ivf" or "hnsw" (index/config.py)
    index_backend: str = "auto"
    fetch_max_wait_ms: int = 10  # consumer long-poll; the embedded broker holds it in full
    rebalance_timeout_s: float = 3.0  # the embedded broker waits this long on every join
    kafka_security_protocol: str = "PLAINTEXT"  # PLAINTEXT, SSL, SASL_PLAINTEXT, SASL_SSL
    kafka_sasl_mechanism: str = ""  # PLAIN, SCRAM-SHA-256, SCRAM-SHA-512
    kafka_sasl_username: str = ""
    kafka_sasl_password: str = field(default="", repr=False)
    kafka_ssl_cafile: str = ""
    log_json: bool = False  # one JSON object per log line

    def checkpoint_dir(self) -> Path:
        return Path(self.checkpoint_store or Path(self.home) / "checkpoints")

    def state_file(self) -> Path:
        return Path(self.home) / "services.json"


def _convert(name: str, raw: str, kind: type) -> object:
    try:
        if kind is bool:
            if raw.lower() not in {"1", "0", "true", "false", "yes", "no", "on", "off"}:
                raise ValueError(raw)
            return raw.lower() in {"1", "true", "yes", "on"}
        return kind(raw)
    except ValueError as exc:
        raise SettingsError(f"NEARLINE_{name.upper()}={raw!r} is not a valid {kind.__name__}"
                            ) from exc


def load_settings(env: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
    """Settings from `NEARLINE_*` variables, then embedded services' addresses if unset."""
    env = os.environ if env is None else env
    kinds = {"str": str, "int": int, "float": float, "bool": bool}
    values: dict[str, object] = {}
    for f in fields(Settings):
        raw = env.get(f"NEARLINE_{f.name.upper()}")
        if raw is not None and f.name != "topics":
            values[f.name] = _convert(f.name, raw, kinds[str(f.type)])
    topics = {t.name: env[f"NEARLINE_TOPIC_{t.name.upper()}"] for t in fields(TopicNames)
              if f"NEARLINE_TOPIC_{t.name.upper()}" in env}
    # each value was converted to its own field's type (`kinds[str(f.type)]`): a relation
    # between key and value that no dict type states, so the fields are passed as Any
    from_env = cast(dict[str, Any], values)
    settings = replace(Settings(**from_env), topics=TopicNames(**topics), **overrides)
    if settings.index_backend not in INDEX_BACKENDS:
        raise SettingsError(f"NEARLINE_INDEX_BACKEND={settings.index_backend!r}: use one of "
                            f"{', '.join(INDEX_BACKENDS)}")
    if settings.partitions < 1:
        raise SettingsError("NEARLINE_PARTITIONS must be at least 1")
    if settings.embedding_ttl_s < 0:
        raise SettingsError("NEARLINE_EMBEDDING_TTL_S must be 0 (no cache) or positive")
    if settings.batch_size < 1 or settings.batch_events < 1:
        raise SettingsError("NEARLINE_BATCH_SIZE and NEARLINE_BATCH_EVENTS must be at least 1")
    if settings.pipeline_depth < 1:
        raise SettingsError("NEARLINE_PIPELINE_DEPTH must be at least 1")
    if settings.max_envelope_events < 0 or settings.max_envelope_bytes < 1:
        raise SettingsError("NEARLINE_MAX_ENVELOPE_EVENTS must be 0 (no envelopes) or more, "
                            "NEARLINE_MAX_ENVELOPE_BYTES positive")
    if not settings.kafka_url or not settings.redis_url:
        settings = _with_embedded(settings)
    return settings


def _with_embedded(settings: Settings) -> Settings:
    state = settings.state_file()
    if not state.is_file():
        raise SettingsError(
            "NEARLINE_KAFKA_URL / NEARLINE_REDIS_URL are not set and no embedded services "
            f"are running ({state} is missing): run `nearline up` first or set both")
    info = orjson.loads(state.read_bytes())
    return replace(settings, kafka_url=settings.kafka_url or info["kafka_url"],
                   redis_url=settings.redis_url or info["redis_url"])


def environment_names() -> list[str]:
    """Every environment variable the settings read (for docs and the compose check)."""
    names = [f"NEARLINE_{f.name.upper()}" for f in fields(Settings) if f.name != "topics"]
    return names + [f"NEARLINE_TOPIC_{t.name.upper()}" for t in fields(TopicNames)]

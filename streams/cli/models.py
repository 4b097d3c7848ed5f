"""`nearline model publish|versions|rollback`: the model lifecycle."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import click
import orjson

from streams.cli.options import F, log_level_option, service_options, settings_from
from streams.errors import ServiceError
from streams.logs import configure_logging
from streams.models.store import CheckpointStore
from streams.settings import INDEX_BACKENDS, Settings

__all__ = ["model", "publish", "publish_positional", "rollback", "versions"]

_CHECKPOINT = click.Path(path_type=Path)


@click.group("model")
def model() -> None:
    """Published model versions: publish a checkpoint, list versions, roll back.

    \b
    Example:
      nearline model publish --checkpoint runs/<version> --wait 120
    """


def _newest_checkpoint(root: Path) -> Path:
    found = [d for d in root.iterdir() if (d / "manifest.json").is_file()] \
        if root.is_dir() else []
    if not found:
        raise click.ClickException(f"no checkpoint directory (with manifest.json) in {root}; "
                                   "train one with `nearline train`")
    return max(found, key=lambda d: d.stat().st_mtime)


def announce(settings: Settings, payload: dict[str, object]) -> None:
    """Send one announcement to the checkpoints topic and wait for the broker's ack."""
    from kafka import KafkaProducer

    from streams.topics import admin_options, ensure_topics

    ensure_topics(settings)
    producer = KafkaProducer(**admin_options(settings))
    try:
        producer.send(settings.topics.checkpoints, key=b"checkpoints",
                      value=orjson.dumps(payload)).get(timeout=30)
    finally:
        producer.close()


def _publish(settings: Settings, checkpoint: Path, *, latest: bool, wait_s: float,
             build_index: bool) -> None:
    if latest:
        checkpoint = _newest_checkpoint(checkpoint)
    store = CheckpointStore(settings.checkpoint_dir())
    version = store.publish(checkpoint)  # a TowersError names what is wrong with it
    if build_index and not store.is_ready(version):
        _build_here(store, version, settings)
    announce(settings, {"kind": "published", "version": version,
                        "path": str(store.checkpoint_dir(version)), "ts": time.time()})
    click.echo(f"published {version} to {store.root}")
    if wait_s > 0:
        _wait_live(settings, store, version, wait_s)


def _publish_options(f: F) -> F:
    f = click.option("--latest", is_flag=True,
                     help="The checkpoint path holds checkpoint directories: publish the "
                          "newest one.")(f)
    f = click.option("--wait", "wait_s", type=click.FloatRange(min=0), default=0.0,
                     help="Wait up to this many seconds until the version is live.")(f)
    f = click.option("--build-index/--no-build-index", default=True, show_default=True,
                     help="Build the item index here before announcing (the index agent "
                          "then only makes it live), or leave the build to the index agent.")(f)
    f = click.option("--backend", type=click.Choice(INDEX_BACKENDS), default=None,
                     help="Index backend of the build (NEARLINE_INDEX_BACKEND; auto: exact "
                          "up to 100k items, approximate above).")(f)
    return log_level_option("warning")(service_options(f))


@model.command("publish")
@click.option("--checkpoint", type=_CHECKPOINT, required=True,
              help="Checkpoint directory (or, with --latest, a folder of them).")
@_publish_options
def publish(checkpoint: Path, latest: bool, wait_s: float, build_index: bool,
            backend: str | None, log_level: str, home: str | None, kafka_url: str | None,
            redis_url: str | None) -> None:
    """Copy a checkpoint into the store and announce it to the index agent.

    The checkpoint is validated first (manifest hashes, shapes, feature spec, no
    pickles). By default its item index is built here, on the machine that publishes,
    so the hosts serving recall only load it; the index agent makes it live. With
    --no-build-index the index agent builds it.

    \b
    Examples:
      nearline model publish --checkpoint runs/ml100k-20261122T101500Z-1a2b3c4d
      nearline model publish --latest --checkpoint runs/ --wait 120
      nearline model publish --checkpoint runs/<version> --no-build-index
    """
    configure_logging(log_level)
    settings = settings_from(home, kafka_url, redis_url, index_backend=backend)
    _publish(settings, checkpoint, latest=latest, wait_s=wait_s, build_index=build_index)


@click.command("publish", hidden=True)
@click.argument("checkpoint", type=_CHECKPOINT)
@_publish_options
def publish_positional(checkpoint: Path, latest: bool, wait_s: float, build_index: bool,
                       backend: str | None, log_level: str, home: str | None,
                       kafka_url: str | None, redis_url: str | None) -> None:
    """`nearline publish CHECKPOINT`: the previous name of `nearline model publish`.

    \b
    Example:
      nearline publish runs/<version> --wait 120
    """
    configure_logging(log_level)
    settings = settings_from(home, kafka_url, redis_url, index_backend=backend)
    _publish(settings, checkpoint, latest=latest, wait_s=wait_s, build_index=build_index)


def _build_here(store: CheckpointStore, version: str, settings: Settings) -> None:
    from index import IndexConfig
    from streams.models.lifecycle import BUILD_ERRORS, build_version, reject

    started = time.perf_counter()
    try:
        items = build_version(store, version,
                              config=IndexConfig(backend=settings.index_backend))
    except BUILD_ERRORS as exc:
        raise click.ClickException(f"{version} rejected: {reject(store, version, exc)}") from exc
    click.echo(f"built the index of {version}: {items} items in "
               f"{time.perf_counter() - started:.1f} s")


def _wait_live(settings: Settings, store: CheckpointStore, version: str, wait_s: float) -> None:
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        if store.rejection(version):
            raise click.ClickException(f"{version} rejected: {store.rejection(version)}")
        if _live(settings) == version:
            click.echo(f"{version} is live")
            return
        time.sleep(0.5)
    raise click.ClickException(f"{version} not live after {wait_s:.0f} s: is a worker with "
                               "the index role running? (`nearline worker`)")


def _live(settings: Settings) -> str | None:
    from streams.state.connect import live_version_now

    return live_version_now(settings.redis_url, prefix=settings.state_prefix)


@model.command("rollback")
@click.argument("version")
@service_options
def rollback(version: str, home: str | None, kafka_url: str | None,
             redis_url: str | None) -> None:
    """Make a previous ready VERSION live again on every worker.

    \b
    Example:
      nearline model versions && nearline model rollback ml100k-20261121T101500Z-9f8e7d6c
    """
    from streams.state.connect import open_state_store
    from streams.state.contract import StateConfig, StateStoreError

    settings = settings_from(home, kafka_url, redis_url)
    store = CheckpointStore(settings.checkpoint_dir())
    if not store.is_ready(version):
        raise click.ClickException(f"{version} is not a ready version in {store.root} "
                                   "(see `nearline model versions`)")

    async def make_live() -> None:
        state = open_state_store(settings.redis_url,
                                 config=StateConfig(prefix=settings.state_prefix))
        try:
            await state.set_live_version(version)
        except StateStoreError as exc:
            raise ServiceError(f"cannot set the live version in Redis: {exc.__cause__ or exc}"
                               ) from exc
        finally:
            await state.close()

    asyncio.run(make_live())
    click.echo(f"{version} is live")


@model.command("versions")
@service_options
def versions(home: str | None, kafka_url: str | None, redis_url: str | None) -> None:
    """List the versions in the checkpoint store and which one is live (marked *).

    \b
    Example:
      nearline model versions
    """
    settings = settings_from(home, kafka_url, redis_url)
    live = _live(settings)
    rows = CheckpointStore(settings.checkpoint_dir()).versions()
    if not rows:
        click.echo(f"no versions in {settings.checkpoint_dir()}")
    for row in rows:
        mark = "*" if row["version"] == live else " "
        reason = f"  ({row['reason']})" if row["reason"] else ""
        click.echo(f"{mark} {row['version']}  {row['state']}{reason}")

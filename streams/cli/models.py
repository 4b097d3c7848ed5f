"""`nearline publish`, `nearline rollback`, `nearline versions`: the model lifecycle."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import click
import orjson

from streams.errors import StreamsError
from streams.models.store import CheckpointStore
from streams.settings import Settings, load_settings
from towers.errors import TowersError

__all__ = ["publish", "rollback", "versions"]


def _settings() -> Settings:
    try:
        return load_settings()
    except StreamsError as exc:
        raise click.ClickException(str(exc)) from exc


def _newest_checkpoint(root: Path) -> Path:
    found = [d for d in root.iterdir() if (d / "manifest.json").is_file()] \
        if root.is_dir() else []
    if not found:
        raise click.ClickException(f"no checkpoint directory (with manifest.json) in {root}")
    return max(found, key=lambda d: d.stat().st_mtime)


def announce(settings: Settings, payload: dict[str, object]) -> None:
    """Send one announcement to the checkpoints topic and wait for the broker's ack."""
    from kafka import KafkaProducer

    from streams.topics import admin_options, ensure_topics

    ensure_topics(settings)
    producer = KafkaProducer(**admin_options(settings))  # type: ignore[arg-type]
    try:
        producer.send(settings.topics.checkpoints, key=b"checkpoints",
                      value=orjson.dumps(payload)).get(timeout=30)
    finally:
        producer.close()


@click.command("publish")
@click.argument("checkpoint", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--latest", is_flag=True,
              help="CHECKPOINT holds checkpoint directories: publish the newest one.")
@click.option("--wait", "wait_s", type=float, default=0.0,
              help="Wait up to this many seconds until the version is live.")
@click.option("--build-index/--no-build-index", default=True, show_default=True,
              help="Build the item index here before announcing (with this environment's "
                   "NEARLINE_INDEX_BACKEND; the index agent then only makes it live), or "
                   "leave the build to the index agent.")
def publish(checkpoint: Path, latest: bool, wait_s: float, build_index: bool) -> None:
    """Copy a checkpoint into the store and announce it to the index agent.

    The checkpoint is validated first (manifest hashes, shapes, feature spec, no
    pickles). By default its item index is built here, on the machine that publishes,
    so the hosts serving recall only load it; the index agent makes it live. With
    --no-build-index the index agent builds it.

    \b
    Examples:
      nearline publish runs/ml100k-20261122T101500Z-1a2b3c4d
      nearline publish --latest runs/ --wait 120
      nearline publish runs/<version> --no-build-index
    """
    settings = _settings()
    if latest:
        checkpoint = _newest_checkpoint(checkpoint)
    store = CheckpointStore(settings.checkpoint_dir())
    try:
        version = store.publish(checkpoint)
    except TowersError as exc:
        raise click.ClickException(f"{checkpoint} rejected: {exc}") from exc
    if build_index and not store.is_ready(version):
        _build_here(store, version, settings)
    announce(settings, {"kind": "published", "version": version,
                        "path": str(store.checkpoint_dir(version)), "ts": time.time()})
    click.echo(f"published {version} to {store.root}")
    if wait_s > 0:
        _wait_live(settings, store, version, wait_s)


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
    raise click.ClickException(f"{version} not live after {wait_s:.0f} s")


def _live(settings: Settings) -> str | None:
    from streams.state.connect import live_version_now

    return live_version_now(settings.redis_url, prefix=settings.state_prefix)


@click.command("rollback")
@click.argument("version")
def rollback(version: str) -> None:
    """Make a previous ready VERSION live again on every worker.

    \b
    Example:
      nearline versions && nearline rollback ml100k-20261121T101500Z-9f8e7d6c
    """
    from streams.state.connect import open_state_store
    from streams.state.contract import StateConfig

    settings = _settings()
    store = CheckpointStore(settings.checkpoint_dir())
    try:
        ready = store.is_ready(version)
    except TowersError as exc:
        raise click.ClickException(str(exc)) from exc
    if not ready:
        raise click.ClickException(f"{version} is not a ready version in {store.root} "
                                   "(see `nearline versions`)")

    async def make_live() -> None:
        state = open_state_store(settings.redis_url,
                                 config=StateConfig(prefix=settings.state_prefix))
        try:
            await state.set_live_version(version)
        finally:
            await state.close()

    asyncio.run(make_live())
    click.echo(f"{version} is live")


@click.command("versions")
def versions() -> None:
    """List the versions in the checkpoint store and which one is live (marked *).

    \b
    Example:
      nearline versions
    """
    settings = _settings()
    live = _live(settings)
    rows = CheckpointStore(settings.checkpoint_dir()).versions()
    if not rows:
        click.echo(f"no versions in {settings.checkpoint_dir()}")
    for row in rows:
        mark = "*" if row["version"] == live else " "
        reason = f"  ({row['reason']})" if row["reason"] else ""
        click.echo(f"{mark} {row['version']}  {row['state']}{reason}")

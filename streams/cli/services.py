"""`nearline services up|down|status`: the local broker and Redis for development."""

from __future__ import annotations

from pathlib import Path

import click

from streams.errors import StreamsError

__all__ = ["down", "services", "status", "up"]

_HOME = click.option("--home", type=click.Path(file_okay=False, path_type=Path),
                     envvar="NEARLINE_HOME", default=".nearline", show_default=True,
                     help="Where the services' addresses and data live (NEARLINE_HOME).")


@click.group("services")
def services() -> None:
    """The embedded Kafka-protocol broker and Redis, in the background.

    \b
    Example:
      nearline services up && nearline worker
    """


@services.command("up")
@_HOME
def up(home: Path) -> None:
    """Start the embedded Kafka-protocol broker (Tansu) and redis-server on free ports.

    Other commands find them through <home>/services.json.

    \b
    Example:
      nearline services up && nearline worker
    """
    from streams.services.control import services_up

    try:
        info, started = services_up(home)
    except StreamsError as exc:
        raise click.ClickException(str(exc)) from exc
    verb = "started" if started else "already running"
    click.echo(f"{verb}: kafka {info['kafka_url']}  redis {info['redis_url']}  ({home})")


@services.command("down")
@_HOME
def down(home: Path) -> None:
    """Stop the services `nearline services up` started.

    \b
    Example:
      nearline services down
    """
    from streams.services.control import services_down

    try:
        stopped = services_down(home)
    except StreamsError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"stopped: {', '.join(stopped)}" if stopped else "nothing was running")


@services.command("status")
@_HOME
def status(home: Path) -> None:
    """Show the embedded services and whether they run (exit code 1 unless both do).

    \b
    Example:
      nearline services status
    """
    from streams.services.control import services_status

    try:
        info = services_status(home)
    except StreamsError as exc:
        raise click.ClickException(str(exc)) from exc
    if info is None:
        click.echo("no services recorded (run `nearline services up`)")
        raise SystemExit(1)
    for name, alive in info["alive"].items():
        click.echo(f"{name:<7} {'running' if alive else 'stopped'}  pid {info['pids'][name]}")
    click.echo(f"kafka   {info['kafka_url']}\nredis   {info['redis_url']}")
    if not all(info["alive"].values()):
        raise SystemExit(1)

"""`nearline up`, `nearline down`, `nearline status`: local broker and Redis."""

from __future__ import annotations

from pathlib import Path

import click

from streams.errors import StreamsError

__all__ = ["down", "status", "up"]

_HOME = click.option("--home", type=click.Path(file_okay=False, path_type=Path),
                     envvar="NEARLINE_HOME", default=".nearline", show_default=True,
                     help="Where the services' addresses and data live (NEARLINE_HOME).")


@click.command("up")
@_HOME
def up(home: Path) -> None:
    """Start the embedded Kafka-protocol broker (Tansu) and redis-server on free ports.

    Other commands find them through <home>/services.json.

    \b
    Example:
      nearline up && nearline worker
    """
    from streams.services.control import services_up

    try:
        info, started = services_up(home)
    except StreamsError as exc:
        raise click.ClickException(str(exc)) from exc
    verb = "started" if started else "already running"
    click.echo(f"{verb}: kafka {info['kafka_url']}  redis {info['redis_url']}  ({home})")


@click.command("down")
@_HOME
def down(home: Path) -> None:
    """Stop the services `nearline up` started.

    \b
    Example:
      nearline down
    """
    from streams.services.control import services_down

    try:
        stopped = services_down(home)
    except StreamsError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"stopped: {', '.join(stopped)}" if stopped else "nothing was running")


@click.command("status")
@_HOME
def status(home: Path) -> None:
    """Show the embedded services and whether they run (exit code 1 unless both do).

    \b
    Example:
      nearline status
    """
    from streams.services.control import services_status

    try:
        info = services_status(home)
    except StreamsError as exc:
        raise click.ClickException(str(exc)) from exc
    if info is None:
        click.echo("no services recorded (run `nearline up`)")
        raise SystemExit(1)
    for name, alive in info["alive"].items():
        click.echo(f"{name:<7} {'running' if alive else 'stopped'}  pid {info['pids'][name]}")
    click.echo(f"kafka   {info['kafka_url']}\nredis   {info['redis_url']}")
    if not all(info["alive"].values()):
        raise SystemExit(1)

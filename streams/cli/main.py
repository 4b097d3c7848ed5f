"""The `nearline` command: every entry point of the project, one subcommand each.

Subcommands load on first use, so `nearline services up` or `model versions` never import
torch or Faiss. A failure a user can fix (a service down, a missing or corrupt
checkpoint, a bad data path or setting) ends as one line on stderr and exit code 1, from
whichever command it comes; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import re
import sys
from importlib import import_module
from importlib.metadata import PackageNotFoundError, version
from typing import Any

import click

__all__ = ["ALIASES", "COMMANDS", "failure_message", "main"]

# name -> "module:attribute" of the click command (or group)
COMMANDS = {
    "services": "streams.cli.services:services",
    "simulate": "streams.cli.data:simulate",
    "train": "streams.cli.data:train",
    "evaluate": "streams.cli.data:evaluate",
    "index": "streams.cli.index:index",
    "model": "streams.cli.models:model",
    "worker": "streams.cli.worker:worker",
    "replay": "streams.cli.replay:replay",
    "load": "streams.cli.replay:load",
}
# the names of the previous release, kept working (not listed in --help)
ALIASES = {
    "up": "streams.cli.services:up",
    "down": "streams.cli.services:down",
    "status": "streams.cli.services:status",
    "publish": "streams.cli.models:publish_positional",
    "versions": "streams.cli.models:versions",
    "rollback": "streams.cli.models:rollback",
}

_HINT_SERVICES = ("Start local services with `nearline services up`, or point --kafka-url / "
                  "--redis-url (NEARLINE_KAFKA_URL / NEARLINE_REDIS_URL) at running ones.")


def _version() -> str:
    try:
        return version("nearline")
    except PackageNotFoundError:  # running from a source tree
        return "0+unknown"


def _one_line(text: str) -> str:
    from streams.logs import redact

    return redact(re.sub(r"\s+", " ", text).strip())


def _loaded_error(module: str, name: str) -> type[BaseException] | None:
    """An exception class of a library, if that library is loaded at all: an error of a
    library that was never imported cannot have been raised, so nothing is imported."""
    loaded = sys.modules.get(module)
    found = getattr(loaded, name, None) if loaded is not None else None
    return found if isinstance(found, type) and issubclass(found, BaseException) else None


def failure_message(exc: BaseException) -> str | None:
    """One line saying what is wrong and what to do; None for an unexpected error."""
    from streams.errors import ServiceError, StreamsError

    unreachable = tuple(e for e in (_loaded_error("redis.exceptions", "ConnectionError"),
                                    _loaded_error("redis.exceptions", "TimeoutError"),
                                    _loaded_error("kafka.errors", "KafkaError")) if e)
    if isinstance(exc, ServiceError) or (unreachable and isinstance(exc, unreachable)):
        return f"{_one_line(str(exc) or type(exc).__name__).rstrip('.')}. {_HINT_SERVICES}"
    known = tuple(e for e in (StreamsError,
                              _loaded_error("towers.errors", "TowersError"),
                              _loaded_error("index.errors", "IndexStoreError"),
                              _loaded_error("redis.exceptions", "RedisError")) if e)
    if isinstance(exc, known):
        return _one_line(str(exc) or type(exc).__name__)
    if isinstance(exc, OSError) and exc.filename is not None:
        return _one_line(f"{exc.filename}: {exc.strerror or exc}")
    return None


class _LazyGroup(click.Group):
    """A group whose subcommands are imported when named (click's documented pattern),
    which turns every known failure of theirs into one line."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = COMMANDS.get(cmd_name) or ALIASES.get(cmd_name)
        if target is None:
            return None
        module, attribute = target.split(":")
        command = getattr(import_module(module), attribute)
        if not isinstance(command, click.Command):
            raise TypeError(f"{target} is not a click command")
        return command

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (click.ClickException, click.exceptions.Exit, click.Abort):
            raise
        except Exception as exc:
            message = failure_message(exc)
            if message is None:
                raise
            raise click.ClickException(message) from None


@click.group(cls=_LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(_version(), prog_name="nearline")
def main() -> None:
    """nearline: streaming features and two-tower recall (Kafka, Redis, Faiss).

    \b
    Quick start:
      nearline services up                          # local broker and Redis
      nearline simulate --out market.jsonl          # or bring your own events
      nearline train --dataset jsonl --data market.jsonl --out runs/
      nearline worker &                             # serve
      nearline model publish --latest --checkpoint runs/ --wait 120   # go live
    """

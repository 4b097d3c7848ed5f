"""The `nearline` command: every entry point of the project, one subcommand each.

Subcommands load on first use, so `nearline up` or `status` never import torch or Faiss.
"""

from __future__ import annotations

from importlib import import_module
from importlib.metadata import PackageNotFoundError, version

import click

__all__ = ["COMMANDS", "main"]

# name -> "module:attribute" of the click command
COMMANDS = {
    "up": "streams.cli.services:up",
    "down": "streams.cli.services:down",
    "status": "streams.cli.services:status",
    "simulate": "streams.cli.data:simulate",
    "train": "streams.cli.data:train",
    "evaluate": "streams.cli.data:evaluate",
    "index": "streams.cli.index:index",
    "publish": "streams.cli.models:publish",
    "versions": "streams.cli.models:versions",
    "rollback": "streams.cli.models:rollback",
    "worker": "streams.cli.worker:worker",
    "replay": "streams.cli.replay:replay",
}


def _version() -> str:
    try:
        return version("nearline")
    except PackageNotFoundError:  # running from a source tree
        return "0+unknown"


class _LazyGroup(click.Group):
    """A group whose subcommands are imported when named (click's documented pattern)."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = COMMANDS.get(cmd_name)
        if target is None:
            return None
        module, attribute = target.split(":")
        command = getattr(import_module(module), attribute)
        assert isinstance(command, click.Command), target
        return command


@click.group(cls=_LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(_version(), prog_name="nearline")
def main() -> None:
    """nearline: streaming features and two-tower recall (Kafka, Redis, Faiss).

    \b
    Quick start:
      nearline up                                   # local broker and Redis
      nearline simulate --out market.jsonl          # or bring your own events
      nearline train --dataset jsonl --data market.jsonl --out runs/
      nearline worker &                             # serve
      nearline publish --latest runs/ --wait 120    # go live
    """

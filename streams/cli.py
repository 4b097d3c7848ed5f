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
    "up": "streams.cli_services:up",
    "down": "streams.cli_services:down",
    "status": "streams.cli_services:status",
    "simulate": "streams.cli_data:simulate",
    "train": "streams.cli_data:train",
    "evaluate": "streams.cli_data:evaluate",
    "index": "streams.cli_index:index",
    "publish": "streams.cli_models:publish",
    "versions": "streams.cli_models:versions",
    "rollback": "streams.cli_models:rollback",
    "worker": "streams.cli_worker:worker",
    "replay": "streams.cli_replay:replay",
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

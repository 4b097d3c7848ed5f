"""The `nearline` command: every entry point of the project, one subcommand each."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

import click

from streams.cli_data import evaluate, simulate, train
from streams.cli_index import index
from streams.cli_models import publish, rollback, versions
from streams.cli_replay import replay
from streams.cli_services import down, status, up
from streams.cli_worker import worker

__all__ = ["main"]


def _version() -> str:
    try:
        return version("nearline")
    except PackageNotFoundError:  # running from a source tree
        return "0+unknown"


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
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


for command in (up, down, status, simulate, train, evaluate, index, publish, versions, rollback,
                worker, replay):
    main.add_command(command)

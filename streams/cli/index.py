"""`nearline index build`, `nearline index info`."""

from __future__ import annotations

from pathlib import Path

import click
import orjson

from index import IndexConfig, index_info, save_index
from streams.cli.options import log_level_option
from streams.logs import configure_logging
from streams.settings import INDEX_BACKENDS

__all__ = ["index"]


@click.group("index")
def index() -> None:
    """Item index files: build one from a checkpoint, inspect one.

    \b
    Example:
      nearline index build --checkpoint runs/<version> --out indexes/<version>
    """


@index.command("build")
@click.option("--checkpoint", type=click.Path(path_type=Path), required=True)
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), required=True)
@click.option("--backend", type=click.Choice(INDEX_BACKENDS), default="auto",
              show_default=True, help="auto: exact up to 100k items, approximate above.")
@log_level_option("warning")
def build(checkpoint: Path, out: Path, backend: str, log_level: str) -> None:
    """Embed every item of a checkpoint with its item tower and save the index.

    \b
    Example:
      nearline index build --checkpoint runs/ml100k-... --out indexes/ml100k
    """
    from streams.recall.two_tower import TowerBundle

    configure_logging(log_level)
    bundle = TowerBundle.from_checkpoint(checkpoint, config=IndexConfig(backend=backend))
    try:  # a bad checkpoint or index input is one line from the `nearline` group
        save_index(bundle.index, out)
    except OSError as exc:
        raise click.ClickException(f"cannot save the index in {out}: {exc.strerror or exc}"
                                   ) from exc
    click.echo(f"index {bundle.version}: {len(bundle.index)} items, backend "
               f"{bundle.index.backend}, saved to {out}")


@index.command("info")
@click.argument("directory", type=click.Path(path_type=Path))
def info(directory: Path) -> None:
    """Print the sidecar of a saved index (version, checkpoint, dimension, items ...).

    \b
    Example:
      nearline index info indexes/ml100k
    """
    sidecar = index_info(directory)
    click.echo(orjson.dumps(sidecar, option=orjson.OPT_INDENT_2).decode())

"""Options several commands share, and the settings they override.

Every command that talks to the broker or Redis takes `--home`, `--kafka-url` and
`--redis-url`; each overrides its NEARLINE_* variable, which overrides the services
`nearline services up` started. Long-running commands take `--log-level`.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from streams.settings import Settings, load_settings
from towers.data import Dataset

__all__ = ["LOG_LEVELS", "F", "dataset_options", "load_data", "log_level_option", "parse_ks",
           "service_options", "settings_from"]

F = TypeVar("F", bound=Callable[..., Any])

LOG_LEVELS = ("debug", "info", "warning", "error")


def service_options(f: F) -> F:
    """--home, --kafka-url, --redis-url (None: the environment, then `services up`)."""
    f = click.option("--redis-url", default=None, metavar="URL",
                     help="redis://[user:password@]host:port/db (NEARLINE_REDIS_URL).")(f)
    f = click.option("--kafka-url", default=None, metavar="HOST:PORT[,...]",
                     help="Bootstrap servers (NEARLINE_KAFKA_URL).")(f)
    return click.option("--home", default=None, type=click.Path(file_okay=False),
                        help="Local state: addresses of `nearline services up`, checkpoints "
                             "(NEARLINE_HOME, default .nearline).")(f)


def log_level_option(default: str = "info") -> Callable[[F], F]:
    def add(f: F) -> F:
        return click.option("--log-level", "--loglevel", "log_level", default=default,
                            show_default=True, type=click.Choice(LOG_LEVELS),
                            help="Logging threshold.")(f)
    return add


def settings_from(home: str | Path | None = None, kafka_url: str | None = None,
                  redis_url: str | None = None, **overrides: Any) -> Settings:
    """The settings with the options given on the command line applied."""
    given = {"home": str(home) if home is not None else None, "kafka_url": kafka_url,
             "redis_url": redis_url, **overrides}
    return load_settings(**{k: v for k, v in given.items() if v is not None})


def dataset_options(f: F) -> F:
    """--dataset, --data, --columns: which log, where, and (retail-csv) its columns."""
    from towers.datasets.registry import DATASETS

    f = click.option("--columns", default=None,
                     help="retail-csv mapping: user=COL,item=COL,ts=COL,qty=COL,"
                          "price=COL[,category=COL,region=COL].")(f)
    f = click.option("--data", type=click.Path(path_type=Path), default=None,
                     help="File or folder (public sets default to $NEARLINE_DATA).")(f)
    return click.option("--dataset", type=click.Choice(DATASETS), required=True)(f)


def load_data(dataset: str, data: Path | None, columns: str | None) -> Dataset:
    """The data set; rows that cannot be read are skipped and counted on stderr."""
    from towers.datasets.registry import load_dataset

    loaded = load_dataset(dataset, data, columns=columns, on_error="skip")
    if loaded.skipped:
        click.echo(f"skipped rows: {loaded.skipped}", err=True)
    return loaded


def parse_ks(text: str) -> tuple[int, ...]:
    """`--k 10,50,100`: distinct positive cut-offs, ascending."""
    try:
        ks = tuple(sorted({int(k) for k in text.split(",") if k.strip()}))
    except ValueError:
        raise click.BadParameter(f"{text!r}: a comma-separated list of integers") from None
    if not ks or min(ks) < 1:
        raise click.BadParameter("K values must be positive integers")
    return ks

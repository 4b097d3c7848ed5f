"""`nearline worker`: consume events, keep the state, publish recall lists."""

from __future__ import annotations

import click

from streams.errors import StreamsError
from streams.logs import configure_logging, redact
from streams.settings import load_settings

__all__ = ["worker"]


@click.command("worker")
@click.option("--web-port", type=int, default=None,
              help="HTTP port of /recall, /healthz, /version, /metrics (0 = no HTTP).")
@click.option("--agents", "roles", default="recall,index", show_default=True,
              help="Roles of this worker: recall (events in, lists out), index (builds "
                   "the index of published checkpoints), or both.")
@click.option("--loglevel", default="info", show_default=True,
              type=click.Choice(["debug", "info", "warning", "error"]))
def worker(web_port: int | None, roles: str, loglevel: str) -> None:
    """Run a worker: interactions, context and item events in, recall lists out.

    Settings come from NEARLINE_* environment variables; with NEARLINE_KAFKA_URL and
    NEARLINE_REDIS_URL unset it uses the services `nearline up` started.

    \b
    Examples:
      nearline up && nearline worker
      nearline worker --agents recall --web-port 6067
      NEARLINE_KAFKA_URL=kafka:9092 NEARLINE_REDIS_URL=redis://redis:6379/0 nearline worker
    """
    from streams.worker.run import run_worker

    overrides = {} if web_port is None else {"web_port": web_port}
    try:
        settings = load_settings(**overrides)
    except StreamsError as exc:
        raise click.ClickException(str(exc)) from exc
    configure_logging(loglevel, json=settings.log_json)
    try:
        run_worker(settings, roles=[r.strip() for r in roles.split(",") if r.strip()],
                   loglevel=loglevel)
    except StreamsError as exc:
        raise click.ClickException(redact(str(exc))) from exc

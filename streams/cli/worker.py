"""`nearline worker`: consume events, keep the state, publish recall lists."""

from __future__ import annotations

import click

from streams.cli.options import log_level_option, service_options, settings_from
from streams.logs import configure_logging

__all__ = ["worker"]


@click.command("worker")
@click.option("--web-port", type=click.IntRange(min=0), default=None,
              help="HTTP port of /recall, /healthz, /version, /metrics (0 = no HTTP; "
                   "NEARLINE_WEB_PORT).")
@click.option("--agents", "roles", default="recall,index", show_default=True,
              help="Roles of this worker: recall (events in, lists out), index (builds "
                   "the index of published checkpoints), or both.")
@click.option("--profile", default=None,
              help="Recall recipe: retail or films (NEARLINE_PROFILE).")
@click.option("--app-id", default=None,
              help="Consumer group; workers with the same one share the partitions "
                   "(NEARLINE_APP_ID).")
@log_level_option("info")
@service_options
def worker(web_port: int | None, roles: str, profile: str | None, app_id: str | None,
           log_level: str, home: str | None, kafka_url: str | None,
           redis_url: str | None) -> None:
    """Run a worker: interactions, context and item events in, recall lists out.

    Settings come from NEARLINE_* environment variables (the options override them);
    with no broker or Redis given it uses the services `nearline services up` started.

    \b
    Examples:
      nearline services up && nearline worker
      nearline worker --agents recall --web-port 6067
      nearline worker --kafka-url kafka:9092 --redis-url redis://redis:6379/0
    """
    from streams.worker.run import run_worker

    settings = settings_from(home, kafka_url, redis_url, web_port=web_port, profile=profile,
                             app_id=app_id)
    configure_logging(log_level, json=settings.log_json)
    run_worker(settings, roles=[r.strip() for r in roles.split(",") if r.strip()],
               loglevel=log_level)

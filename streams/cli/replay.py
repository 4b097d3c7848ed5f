"""`nearline replay`: historical events through Kafka and the workers, scored and timed;
`nearline load`: a data set's window as endless load for running workers."""

from __future__ import annotations

import dataclasses
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
import orjson

from streams.cli.options import (
    dataset_options,
    load_data,
    log_level_option,
    parse_ks,
    service_options,
    settings_from,
)
from streams.logs import configure_logging
from streams.settings import Settings
from towers.data import Dataset

if TYPE_CHECKING:
    from streams.replay.run import ReplayOptions

__all__ = ["format_report", "load", "replay"]


_START = click.option("--from", "start", type=click.Choice(["valid", "test"]), default="test",
                      show_default=True,
                      help="First split replayed; what precedes it is history.")
_LIMIT = click.option("--limit", type=click.IntRange(min=1), default=None,
                      help="Only the first N events of the window.")
_DAYS = click.option("--days", type=click.FloatRange(min=0, min_open=True), default=None,
                     help="Only the first D days (event time) of the window.")
_ENVELOPE = click.option("--envelope", type=click.IntRange(min=1), default=1, show_default=True,
                         metavar="N", help="Events per message: above 1, JSON-array "
                                           "envelopes of up to N events of one partition.")


# what only a scored replay uses: refused with the previous spelling of a load
_SCORED = ("speed", "one_per_batch", "ks", "checkpoint", "workers", "json_path", "plot_path",
           "timeout_s")


@click.command("replay")
@dataset_options
@_START
@click.option("--speed", type=click.FloatRange(min=0, min_open=True), default=None,
              help="Event time runs this many times faster than real time.")
@click.option("--max-rate", type=click.FloatRange(min=0, min_open=True), default=None,
              help="At most this many events/s.")
@click.option("--one-per-batch", is_flag=True,
              help="Hold each event until the previous one has its list (one event per "
                   "micro-batch: the pace of the in-process reference).")
@_ENVELOPE
@click.option("--k", "ks", default="10,50,100", show_default=True, help="Cut-offs K.")
@click.option("--checkpoint", type=click.Path(path_type=Path),
              default=None, help="Publish this checkpoint and replay with it live.")
@click.option("--workers", type=click.IntRange(min=0), default=1, show_default=True,
              help="Worker processes started for the replay (0: use running workers).")
@_LIMIT
@_DAYS
@click.option("--json", "json_path", type=click.Path(path_type=Path), default=None)
@click.option("--plot", "plot_path", type=click.Path(path_type=Path), default=None)
@click.option("--timeout", "timeout_s", type=click.FloatRange(min=0, min_open=True),
              default=900.0, show_default=True,
              help="Give up when no recall list has arrived for this many seconds.")
@click.option("--loop", is_flag=True, hidden=True)  # the previous spelling of `nearline load`
@click.option("--duration", "duration_s", type=float, default=None, hidden=True)
@log_level_option("info")
@service_options
def replay(dataset: str, data: Path | None, columns: str | None, start: str,
           speed: float | None, max_rate: float | None, one_per_batch: bool, envelope: int,
           ks: str, checkpoint: Path | None, workers: int, limit: int | None, days: float | None,
           json_path: Path | None, plot_path: Path | None, timeout_s: float, loop: bool,
           duration_s: float | None, log_level: str, home: str | None, kafka_url: str | None,
           redis_url: str | None) -> None:
    """Replay a data set's valid/test window through the real path and score it.

    The history before the window is bulk-loaded into Redis; the window's events are
    produced to Kafka in time order, workers update the state and publish lists, and
    each event is judged against its user's newest list computed strictly before it
    (docs/evaluation.md, streaming protocol; the frozen boundary lists for comparison).
    Runs in its own topics, consumer group and Redis key prefix.

    \b
    Examples:
      nearline replay --dataset ml100k --checkpoint runs/ml100k-... --json replay.json
      nearline replay --dataset jsonl --data market.jsonl --max-rate 2000 --plot r.png
      nearline replay --dataset tafeng --checkpoint runs/tafeng-... --envelope 50
    """
    from streams.replay.run import ReplayOptions

    configure_logging(log_level)
    if loop:  # options are checked before anything is read or started
        ctx = click.get_current_context()
        scored = [p.opts[0] for p in ctx.command.params if p.name in _SCORED and
                  ctx.get_parameter_source(p.name) == click.core.ParameterSource.COMMANDLINE]
        if scored:
            raise click.UsageError(f"{', '.join(scored)}: a load (`nearline load`, formerly "
                                   "--loop) is not scored")
        if not max_rate:
            raise click.UsageError("a load needs a positive --max-rate")
    else:
        try:
            options = ReplayOptions(ks=parse_ks(ks), speed=speed, max_rate=max_rate,
                                    workers=workers, timeout_s=timeout_s, checkpoint=checkpoint,
                                    one_per_batch=one_per_batch, envelope=envelope)
        except ValueError as exc:
            raise click.UsageError(str(exc)) from exc
    settings = settings_from(home, kafka_url, redis_url)
    _check_services(settings, redis=not loop)  # before reading or simulating any data
    data_set = load_data(dataset, data, columns)
    if loop:
        _produce_load(settings, data_set, start=start, limit=limit, days=days,
                      max_rate=max_rate, duration_s=duration_s, envelope=envelope)
    else:
        _replay(settings, data_set, options, start=start, limit=limit, days=days,
                json_path=json_path, plot_path=plot_path)


def _check_services(settings: Settings, *, redis: bool) -> None:
    from streams.topics import check_reachable

    check_reachable(settings)
    if redis:
        from streams.state.connect import check_reachable as check_redis

        check_redis(settings.redis_url)


def _replay(settings: Settings, data_set: Dataset, options: ReplayOptions, *, start: str,
            limit: int | None, days: float | None, json_path: Path | None,
            plot_path: Path | None) -> None:
    from streams.recall.profiles import profile_for
    from streams.replay.plot import plot_replay
    from streams.replay.run import isolated, run_replay
    from streams.replay.window import split_window

    settings = isolated(settings)
    # the data set's protocol and recipe (films keep the seen filter on)
    settings = dataclasses.replace(settings, profile=profile_for(data_set).name)
    window = split_window(data_set, start=start, limit=limit, days=days)
    logdir = Path(tempfile.mkdtemp(prefix="nearline-replay-"))
    click.echo(f"replaying {len(window.window)} events of {data_set.name} ({start} window), "
               f"{len(window.history)} warmed; worker logs in {logdir}")
    report = run_replay(settings, window, options, logdir=logdir).report
    trace = report.pop("trace")
    click.echo(format_report(report))
    if json_path is not None:
        slim = {k: v for k, v in report.items() if k != "latencies_ms"}
        json_path.write_bytes(orjson.dumps(slim, option=orjson.OPT_INDENT_2))
    if plot_path is not None:
        n = max(len(trace), 1)
        plot_replay(report, plot_path, hits=[(j / n, h) for j, h in enumerate(trace)])
        click.echo(f"plot: {plot_path}")


@click.command("load")
@dataset_options
@_START
@click.option("--max-rate", type=click.FloatRange(min=0, min_open=True), required=True,
              help="Events per second.")
@click.option("--duration", "duration_s", type=click.FloatRange(min=0, min_open=True),
              default=None, help="Stop after this many seconds (default: Ctrl-C).")
@_ENVELOPE
@_LIMIT
@_DAYS
@log_level_option("info")
@service_options
def load(dataset: str, data: Path | None, columns: str | None, start: str, max_rate: float,
         duration_s: float | None, envelope: int, limit: int | None, days: float | None,
         log_level: str, home: str | None, kafka_url: str | None,
         redis_url: str | None) -> None:
    """Produce a data set's window again and again to the running workers, as load.

    Each pass is new events (fresh ids, later timestamps), so every one is applied; they
    go to the deployment's own interactions topic. Nothing is scored: watch the workers'
    /metrics. For soak and capacity tests.

    \b
    Example:
      nearline load --dataset ml100k --max-rate 500 --duration 600
    """
    configure_logging(log_level)
    settings = settings_from(home, kafka_url, redis_url)
    _check_services(settings, redis=False)  # a load only produces
    data_set = load_data(dataset, data, columns)
    _produce_load(settings, data_set, start=start, limit=limit, days=days, max_rate=max_rate,
                  duration_s=duration_s, envelope=envelope)


def _produce_load(settings: Settings, data_set: Dataset, *, start: str, limit: int | None,
                  days: float | None, max_rate: float | None, duration_s: float | None,
                  envelope: int) -> None:
    from streams.replay.load import produce_load
    from streams.replay.window import split_window

    if not max_rate or max_rate <= 0:
        raise click.UsageError("a load needs a positive --max-rate")
    window = split_window(data_set, start=start, limit=limit, days=days)
    if not len(window.window):
        raise click.UsageError("the window is empty: nothing to produce")
    until = f"for {duration_s:g} s" if duration_s else "until Ctrl-C"
    click.echo(f"producing the {len(window.window)} events of {data_set.name}'s {start} "
               f"window in a loop at {max_rate:g} events/s to {settings.topics.interactions} "
               f"({until})")
    result = produce_load(settings, window, max_rate=max_rate, duration_s=duration_s,
                          envelope=envelope)
    click.echo(f"produced {result.events} events in {result.seconds:.1f} s "
               f"({result.rate:.0f} events/s)")


def format_report(report: dict[str, Any]) -> str:
    """The replay's table for people."""
    nl = report["systems"]["nearline"]
    ks = sorted(int(k.split("@")[1]) for k in nl["stream"] if k.startswith("HitRate@")
                and not k.endswith("_with_list"))
    lines = [f"dataset {report['dataset']}  window {report['split']['window']} events  "
             f"model {report.get('checkpoint') or 'none'}",
             f"{'protocol':<10}" + "".join(f"{'HR@' + str(k):>10}" for k in ks)
             + f"{'coverage':>10}"]
    for name in ("stream", "frozen"):
        m = nl[name]
        lines.append(f"{name:<10}" + "".join(f"{m[f'HitRate@{k}']:>10.4f}" for k in ks)
                     + f"{m['coverage']:>10.3f}")
    lat = report["latency_ms"]
    lines.append(f"latency ms p50 {lat['p50']}  p95 {lat['p95']}  p99 {lat['p99']}   "
                 f"throughput {report['throughput_eps']} events/s   wall {report['wall_s']} s")
    lines.append(f"hits by channel (stream): {nl['stream']['hits_by_channel']}")
    return "\n".join(lines)

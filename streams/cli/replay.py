"""`nearline replay`: historical events through Kafka and the workers, scored and timed."""

from __future__ import annotations

import dataclasses
import tempfile
from pathlib import Path

import click
import orjson

from streams.errors import StreamsError
from streams.logs import configure_logging
from streams.settings import Settings, load_settings
from towers.data import Dataset
from towers.datasets.registry import DATASETS
from towers.errors import TowersError

__all__ = ["replay"]


def _ks(text: str) -> tuple[int, ...]:
    try:
        ks = tuple(sorted({int(k) for k in text.split(",") if k.strip()}))
    except ValueError:
        raise click.BadParameter(f"{text!r}: a comma-separated list of integers") from None
    if not ks or min(ks) < 1:
        raise click.BadParameter("K values must be positive integers")
    return ks


@click.command("replay")
@click.option("--dataset", type=click.Choice(DATASETS), required=True)
@click.option("--data", type=click.Path(exists=True, path_type=Path), default=None,
              help="Data file or folder (public sets default to $NEARLINE_DATA).")
@click.option("--columns", default=None, help="retail-csv column mapping.")
@click.option("--from", "start", type=click.Choice(["valid", "test"]), default="test",
              show_default=True, help="First split replayed; what precedes it is warmed.")
@click.option("--speed", type=float, default=None,
              help="Event time runs this many times faster than real time.")
@click.option("--max-rate", type=float, default=None, help="At most this many events/s.")
@click.option("--one-per-batch", is_flag=True,
              help="Hold each event until the previous one has its list (one event per "
                   "micro-batch: the pace of the in-process reference).")
@click.option("--envelope", type=click.IntRange(min=1), default=1, show_default=True,
              metavar="N", help="Events per message: above 1, JSON-array envelopes of up to "
                                "N events of one partition.")
@click.option("--k", "ks", default="10,50,100", show_default=True, help="Cut-offs K.")
@click.option("--checkpoint", type=click.Path(exists=True, file_okay=False, path_type=Path),
              default=None, help="Publish this checkpoint and replay with it live.")
@click.option("--workers", type=int, default=1, show_default=True,
              help="Worker processes started for the replay (0: use running workers).")
@click.option("--limit", type=int, default=None, help="Replay only the first N events.")
@click.option("--days", type=float, default=None,
              help="Replay only the first D days (event time) of the window.")
@click.option("--json", "json_path", type=click.Path(path_type=Path), default=None)
@click.option("--plot", "plot_path", type=click.Path(path_type=Path), default=None)
@click.option("--timeout", "timeout_s", type=float, default=900.0, show_default=True,
              help="Give up when no recall list has arrived for this many seconds.")
@click.option("--loop", is_flag=True,
              help="Load mode: produce the window again and again (new event ids, later "
                   "timestamps) at --max-rate to the running workers; no scoring.")
@click.option("--duration", "duration_s", type=float, default=None,
              help="With --loop: stop after this many seconds (default: Ctrl-C).")
def replay(dataset: str, data: Path | None, columns: str | None, start: str,
           speed: float | None, max_rate: float | None, one_per_batch: bool, envelope: int,
           ks: str, checkpoint: Path | None, workers: int, limit: int | None, days: float | None,
           json_path: Path | None, plot_path: Path | None, timeout_s: float, loop: bool,
           duration_s: float | None) -> None:
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
      nearline replay --dataset ml100k --loop --max-rate 500 --duration 600   # soak load
    """
    from streams.recall.profiles import profile_for
    from streams.replay.plot import plot_replay
    from streams.replay.run import ReplayOptions, isolated, run_replay
    from streams.replay.window import split_window
    from towers.datasets.registry import load_dataset

    configure_logging("info")
    try:
        settings = load_settings()
        data_set = load_dataset(dataset, data, columns=columns)
    except (StreamsError, TowersError) as exc:
        raise click.ClickException(str(exc)) from exc
    if loop:
        _load(settings, data_set, start=start, limit=limit, days=days, max_rate=max_rate,
              duration_s=duration_s, envelope=envelope)
        return
    settings = isolated(settings)
    # the data set's protocol and recipe (films keep the seen filter on)
    settings = dataclasses.replace(settings, profile=profile_for(data_set).name)
    window = split_window(data_set, start=start, limit=limit, days=days)
    try:
        options = ReplayOptions(ks=_ks(ks), speed=speed, max_rate=max_rate, workers=workers,
                                timeout_s=timeout_s, checkpoint=checkpoint,
                                one_per_batch=one_per_batch, envelope=envelope)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from exc
    logdir = Path(tempfile.mkdtemp(prefix="nearline-replay-"))
    click.echo(f"replaying {len(window.window)} events of {dataset} ({start} window), "
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


def _load(settings: Settings, data_set: Dataset, *, start: str, limit: int | None,
          days: float | None, max_rate: float | None, duration_s: float | None,
          envelope: int) -> None:
    from streams.replay.load import produce_load
    from streams.replay.window import split_window

    if not max_rate or max_rate <= 0:
        raise click.UsageError("--loop needs a positive --max-rate")
    window = split_window(data_set, start=start, limit=limit, days=days)
    if not len(window.window):
        raise click.UsageError("the replay window is empty: nothing to loop over")
    until = f"for {duration_s:g} s" if duration_s else "until Ctrl-C"
    click.echo(f"producing the {len(window.window)} events of {data_set.name}'s {start} "
               f"window in a loop at {max_rate:g} events/s to {settings.topics.interactions} "
               f"({until})")
    result = produce_load(settings, window, max_rate=max_rate, duration_s=duration_s,
                          envelope=envelope)
    click.echo(f"produced {result.events} events in {result.seconds:.1f} s "
               f"({result.rate:.0f} events/s)")


def format_report(report: dict) -> str:  # type: ignore[type-arg]
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

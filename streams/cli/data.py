"""`nearline simulate`, `nearline train`, `nearline evaluate`."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import click
import orjson

from streams.cli.options import dataset_options, load_data, log_level_option, parse_ks
from streams.logs import configure_logging

__all__ = ["evaluate", "simulate", "train"]


@click.command("simulate")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), required=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--days", type=click.IntRange(min=1), default=90, show_default=True)
@click.option("--stores", type=click.IntRange(min=1), default=200, show_default=True)
@click.option("--skus", type=click.IntRange(min=1), default=300, show_default=True)
def simulate(out: Path, seed: int, days: int, stores: int, skus: int) -> None:
    """Write a seeded fast-moving-consumer-goods market as JSON-lines events.

    \b
    Example:
      nearline simulate --out market.jsonl --days 60 --seed 7
    """
    from towers.datasets import MarketConfig, write_market_jsonl

    config = MarketConfig(seed=seed, days=days, n_stores=stores, n_skus=skus)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        n = write_market_jsonl(out, config)
    except OSError as exc:
        raise click.ClickException(f"cannot write {out}: {exc.strerror or exc}") from exc
    click.echo(f"wrote {n} events to {out}")


@click.command("train")
@dataset_options
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), required=True,
              help="Checkpoints go into a new versioned folder under it.")
@click.option("--epochs", type=click.IntRange(min=1), default=None,
              help="Upper bound on epochs (default: the training defaults).")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--max-seconds", type=click.FloatRange(min=0, min_open=True), default=None,
              help="Wall-clock budget per fit.")
@click.option("--no-progress", is_flag=True, help="No progress bars.")
@log_level_option("warning")
def train(dataset: str, data: Path | None, columns: str | None, out: Path,
          epochs: int | None, seed: int, max_seconds: float | None, no_progress: bool,
          log_level: str) -> None:
    """Train the two towers, choose the recall settings and save a checkpoint.

    Towers: early stopping on the valid window's streaming HitRate@50, then a refit on
    train+valid. Recall settings (the recipe, with the item-to-item table): chosen on
    the valid window, then refitted on train+valid. The test window is never seen.

    \b
    Examples:
      nearline train --dataset ml100k --out runs/
      nearline train --dataset jsonl --data market.jsonl --out runs/ --max-seconds 120
    """
    from streams.evaluation.training import train_checkpoint
    from towers.train import TrainConfig

    configure_logging(log_level)
    loaded = load_data(dataset, data, columns)
    config = TrainConfig(seed=seed, max_seconds=max_seconds, progress=not no_progress)
    if epochs is not None:
        config = dataclasses.replace(config, epochs=epochs)
    try:
        path, metrics = train_checkpoint(loaded, out, config=config)
    except OSError as exc:
        raise click.ClickException(f"cannot save under {out}: {exc.strerror or exc}") from exc
    click.echo(f"checkpoint {path.name} in {path}")
    shown = {k: v for k, v in metrics.items() if isinstance(v, int | float | str)}
    click.echo(orjson.dumps(shown, option=orjson.OPT_INDENT_2).decode())


@click.command("evaluate")
@dataset_options
@click.option("--checkpoint", type=click.Path(path_type=Path),
              default=None, help="Adds the two_tower and nearline systems.")
@click.option("--k", "ks", default="10,50,100", show_default=True)
@click.option("--protocol", "protocols", default="offline,stream,frozen", show_default=True)
@click.option("--json", "json_path", type=click.Path(dir_okay=False, path_type=Path),
              default=None, help="Write the JSON of docs/evaluation.md here.")
@log_level_option("warning")
def evaluate(dataset: str, data: Path | None, columns: str | None, checkpoint: Path | None,
             ks: str, protocols: str, json_path: Path | None, log_level: str) -> None:
    """Evaluate baselines (and a checkpoint) with the protocols of docs/evaluation.md.

    \b
    Examples:
      nearline evaluate --dataset ml100k --checkpoint runs/ml100k-...
      nearline evaluate --dataset retail-csv --data sales.csv \\
          --columns user=customer,item=sku,ts=date,qty=units,price=unit_price
    """
    from streams.evaluation.protocols import PROTOCOLS, format_split_table, format_table, write_json
    from streams.evaluation.protocols import evaluate as run
    from streams.evaluation.systems import evaluation_systems
    from streams.evaluation.tuning import choose_recipe
    from streams.recall.recipe import read_recipe
    from streams.recall.two_tower import TowerBundle

    cuts = parse_ks(ks)
    chosen = tuple(p.strip() for p in protocols.split(",") if p.strip())
    if not chosen or set(chosen) - set(PROTOCOLS):
        raise click.BadParameter(f"protocols among {', '.join(PROTOCOLS)}")
    configure_logging(log_level)
    loaded = load_data(dataset, data, columns)
    bundle = TowerBundle.from_checkpoint(checkpoint) if checkpoint else None
    recipe = read_recipe(checkpoint) if checkpoint else None
    if recipe is None:  # the baselines get their settings from this data's valid window
        recipe = choose_recipe(loaded)
    report = run(loaded, evaluation_systems(loaded, bundle=bundle, recipe=recipe), ks=cuts,
                 protocols=chosen, checkpoint=bundle.version if bundle else "")
    report["recipe"] = dict(recipe.chosen_on)
    click.echo(format_table(report))
    if "stream" in chosen:
        click.echo(format_split_table(report))
    if json_path is not None:
        try:
            write_json(report, json_path)
        except OSError as exc:
            raise click.ClickException(f"cannot write {json_path}: {exc.strerror or exc}"
                                       ) from exc
        click.echo(f"wrote {json_path}")

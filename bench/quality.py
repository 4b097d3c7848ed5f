"""Recall quality on one data set: the baselines, two_tower and nearline, one split.

    python bench/quality.py --dataset ml100k|tafeng|market [--data PATH] [--checkpoint DIR]
                            [--out DIR] [--json PATH] [--ks 10,50,100]

Without --checkpoint the towers are trained as `nearline train` trains them (training
defaults: early stopping on the valid window, then a refit on train+valid; the test
window is never seen), saved with the item-to-item table under --out (else a temporary
folder) and the training time is reported. Then every system runs the protocols of
docs/evaluation.md; the table is printed, the JSON document written with --json, and each
bar of the towers issue is reported as met or missed.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make the project importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from streams.evaluation.protocols import evaluate, format_split_table, format_table, write_json
from streams.evaluation.systems import evaluation_systems
from streams.evaluation.training import train_checkpoint
from streams.evaluation.tuning import choose_recipe
from streams.logs import configure_logging
from streams.recall.recipe import read_recipe
from streams.recall.two_tower import TowerBundle
from towers.data import Dataset
from towers.datasets.registry import load_dataset
from towers.train import TrainConfig

BASELINES = ("popularity", "popularity_live", "repeat", "itemcf", "itemcf_live", "tifu_knn")
# nearline stream HR@50 over the best baseline (films) or over repeat (retail)
STREAM_FACTOR = {"ml100k": 1.08, "tafeng": 1.05}
REPURCHASE_FACTOR = 1.02  # repurchase alone over repeat, stream HR@50 (retail)
TOTAL_LIMIT_S = {"ml100k": 300.0, "tafeng": 600.0}  # training plus evaluation


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = _parser().parse_args(argv)
    configure_logging("warning")
    ks = tuple(sorted({int(k) for k in args.ks.split(",") if k.strip()}))
    data = load_dataset(args.dataset, args.data, days=args.days)
    train_s = None
    begun = time.perf_counter()
    checkpoint = args.checkpoint
    if checkpoint is None:
        started = time.perf_counter()
        out = args.out or Path(tempfile.mkdtemp(prefix="nearline-quality-"))
        checkpoint = fit(data, out, max_seconds=args.max_seconds)
        train_s = round(time.perf_counter() - started, 1)
    bundle = TowerBundle.from_checkpoint(checkpoint)
    recipe = read_recipe(checkpoint) or choose_recipe(data)
    report = evaluate(data, evaluation_systems(data, bundle=bundle, recipe=recipe), ks=ks,
                      checkpoint=bundle.version)
    report["recipe"] = dict(recipe.chosen_on)
    report["train_s"] = train_s
    report["total_s"] = round(time.perf_counter() - begun, 1)
    report["bars"] = bars(report, args.dataset,
                          total_s=report["total_s"] if train_s is not None else None)
    print(format_table(report))
    print(format_split_table(report))
    for name, bar in report["bars"].items():
        print(f"{'MET ' if bar['met'] else 'MISS'} {name}: {bar['value']:.4f} "
              f"(bar {bar['bar']:.4f})")
    if train_s is not None:
        print(f"training {train_s} s, training + evaluation {report['total_s']} s, "
              f"checkpoint {checkpoint}")
    if args.json:
        write_json(report, args.json)
    return report


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    ap.add_argument("--dataset", default="ml100k", choices=["ml100k", "ml1m", "tafeng", "market"])
    ap.add_argument("--data", type=Path, default=None,
                    help="the data set's path (default: found under $NEARLINE_DATA)")
    ap.add_argument("--days", type=int, default=90, help="days simulated (market only)")
    ap.add_argument("--checkpoint", type=Path, default=None, help="evaluate this, train nothing")
    ap.add_argument("--out", type=Path, default=None, help="where a trained checkpoint goes")
    ap.add_argument("--json", type=Path, default=None,
                    help="write the JSON of docs/evaluation.md here")
    ap.add_argument("--ks", default="10,50,100", help="cut-offs K, comma-separated")
    ap.add_argument("--max-seconds", type=float, default=None, help="budget per training fit")
    return ap


def fit(data: Dataset, out: Path, *, max_seconds: float | None) -> Path:
    """Train as `nearline train` does: towers, item-to-item table and recipe."""
    path, _ = train_checkpoint(data, out, config=TrainConfig(max_seconds=max_seconds,
                                                             progress=False))
    return path


def bars(report: dict[str, Any], dataset: str, *, total_s: float | None
         ) -> dict[str, dict[str, Any]]:
    """The issues' targets, measured against this run's own baselines (HitRate@50)."""
    s = report["systems"]
    present = [b for b in BASELINES if b in s]
    stream = {name: s[name]["stream"]["HitRate@50"] for name in s}
    best_offline = max(s[b]["offline"]["HitRate@50"] for b in present)
    factor = STREAM_FACTOR.get(dataset, 1.0)
    checks: dict[str, tuple[float, float, bool]] = {}

    def at_least(name: str, value: float, bar: float) -> None:
        checks[name] = (value, bar, value >= bar)

    def above(name: str, value: float, bar: float) -> None:
        checks[name] = (value, bar, value > bar)

    if "repurchase" in s or dataset == "tafeng":  # retail: measured against repeat
        at_least(f"nearline stream HR@50 >= {factor}x repeat", stream["nearline"],
                 factor * stream["repeat"])
        others = [b for b in present if b != "repeat"]
        above("nearline stream HR@50 > every other baseline", stream["nearline"],
              max(stream[b] for b in others))
        if "repurchase" in s:
            at_least(f"repurchase stream HR@50 >= {REPURCHASE_FACTOR}x repeat",
                     stream["repurchase"], REPURCHASE_FACTOR * stream["repeat"])
    else:
        at_least(f"nearline stream HR@50 >= {factor}x best baseline", stream["nearline"],
                 factor * max(stream[b] for b in present))
    at_least("nearline offline HR@50 >= best baseline",
             s["nearline"]["offline"]["HitRate@50"], best_offline)
    for protocol in ("stream", "offline"):
        above(f"two_tower {protocol} HR@50 > popularity",
              s["two_tower"][protocol]["HitRate@50"], s["popularity"][protocol]["HitRate@50"])
    if total_s is not None and dataset in TOTAL_LIMIT_S:
        limit = TOTAL_LIMIT_S[dataset]
        checks[f"training + evaluation <= {limit:.0f} s"] = (total_s, limit, total_s <= limit)
    return {k: {"value": v, "bar": b, "met": ok} for k, (v, b, ok) in checks.items()}


if __name__ == "__main__":
    main()

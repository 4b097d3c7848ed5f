"""Recall quality on a public data set: baselines, two_tower and nearline, one split.

    python -m bench.quality --dataset ml100k [--data ROOT] [--checkpoint DIR] --json PATH

Without --checkpoint the towers are trained as `nearline train` does (early stopping on
the valid window, refit on train+valid; the test window is never seen) and the training
time is reported. Prints the EVALUATION.md table and whether each bar of the towers
issue is met: nearline stream HitRate@50 >= 1.2x (ml100k) / 1.1x (tafeng) the best
baseline, nearline offline HitRate@50 >= the best baseline, two_tower above popularity
in both protocols.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson

from streams.evaluation import evaluate, format_table
from streams.logs import configure_logging
from streams.systems import evaluation_systems, itemcf_table
from streams.two_tower import TowerBundle
from towers.checkpoint import save_checkpoint
from towers.data import Dataset, temporal_split
from towers.datasets.registry import default_data_path, load_dataset
from towers.train import TrainConfig, train

BASELINES = ("popularity", "popularity_live", "repeat", "itemcf", "itemcf_live")
STREAM_FACTOR = {"ml100k": 1.2, "tafeng": 1.1}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--dataset", default="ml100k", choices=["ml100k", "ml1m", "tafeng", "market"])
    ap.add_argument("--data", type=Path, default=None, help="data root ($NEARLINE_DATA)")
    ap.add_argument("--checkpoint", type=Path, default=None)
    ap.add_argument("--out", type=Path, default=None, help="where a trained checkpoint goes")
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--max-seconds", type=float, default=None)
    args = ap.parse_args()
    configure_logging("warning")
    path = args.data / _sub(args.dataset) if args.data else default_data_path(args.dataset)
    data = load_dataset(args.dataset, path)
    train_s = None
    checkpoint = args.checkpoint
    if checkpoint is None:
        started = time.perf_counter()
        checkpoint = fit(data, args.out or Path(tempfile.mkdtemp(prefix="nearline-quality-")),
                         max_seconds=args.max_seconds)
        train_s = round(time.perf_counter() - started, 1)
    bundle = TowerBundle.from_checkpoint(checkpoint)
    report = evaluate(data, evaluation_systems(data, bundle=bundle), checkpoint=bundle.version)
    report["train_s"] = train_s
    report["bars"] = bars(report, args.dataset)
    print(format_table(report))
    for name, ok in report["bars"].items():
        print(f"{'MET ' if ok['met'] else 'MISS'} {name}: {ok['value']:.4f} vs {ok['bar']:.4f}")
    if train_s is not None:
        print(f"training {train_s} s (checkpoint {checkpoint})")
    if args.json:
        args.json.write_bytes(orjson.dumps(report, option=orjson.OPT_INDENT_2
                                           | orjson.OPT_SERIALIZE_NUMPY))


def _sub(name: str) -> str:
    return {"ml100k": "movielens/ml-100k", "ml1m": "movielens/ml-1m",
            "tafeng": "retail/ta_feng"}.get(name, "")


def fit(data: Dataset, out: Path, *, max_seconds: float | None) -> Path:
    """Train as `nearline train` does and save the checkpoint with its item-to-item table."""
    result = train(data, config=TrainConfig(max_seconds=max_seconds, progress=False))
    split = temporal_split(data.interactions)
    seen = data.interactions.take(split.order[: len(split.train) + len(split.valid)])
    table = itemcf_table(data, seen)
    return save_checkpoint(out, model=result.model, spec=result.spec, items=result.items,
                           metrics=result.metrics, dataset=data.name,
                           extras={"neighbours.json": orjson.dumps(
                               table.to_json(), option=orjson.OPT_SERIALIZE_NUMPY)})


def bars(report: dict[str, Any], dataset: str) -> dict[str, dict[str, Any]]:
    s = report["systems"]
    present = [b for b in BASELINES if b in s]
    best_stream = max(s[b]["stream"]["HitRate@50"] for b in present)
    best_offline = max(s[b]["offline"]["HitRate@50"] for b in present)
    factor = STREAM_FACTOR.get(dataset, 1.0)
    out = {
        f"nearline stream HR@50 >= {factor}x best baseline": (
            s["nearline"]["stream"]["HitRate@50"], factor * best_stream),
        "nearline offline HR@50 >= best baseline": (
            s["nearline"]["offline"]["HitRate@50"], best_offline),
        "two_tower stream HR@50 > popularity": (
            s["two_tower"]["stream"]["HitRate@50"], s["popularity"]["stream"]["HitRate@50"]),
        "two_tower offline HR@50 > popularity": (
            s["two_tower"]["offline"]["HitRate@50"], s["popularity"]["offline"]["HitRate@50"]),
    }
    return {k: {"value": v, "bar": b, "met": v >= b if ">=" in k else v > b}
            for k, (v, b) in out.items()}


if __name__ == "__main__":
    main()

"""Kafka replay vs in-process reference: identical lists at the same state, HitRate gap.

    python -m bench.replay_agreement --dataset ml100k --checkpoint runs/ml100k-... \\
        --json agreement.json [--limit N] [--full-speed]

Starts its own embedded broker and Redis. The slow replay (each event held until the
previous one has its list, so no two events share a micro-batch) is compared list by
list with the reference; with
`--full-speed` a second replay at full speed reports the freshness cost of coalescing.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson

from streams.logs import configure_logging
from streams.recall.profiles import profile_for
from streams.replay.reference import compare_lists, hitrate_gap, reference_lists
from streams.replay.run import ReplayOptions, isolated, prepare, run_replay
from streams.replay.window import ReplayWindow, split_window
from streams.services.embedded import EmbeddedBroker, EmbeddedRedis, free_port
from streams.settings import Settings
from towers.datasets.registry import DATASETS, load_dataset


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--dataset", choices=DATASETS, default="ml100k")
    ap.add_argument("--data", default=None)
    ap.add_argument("--checkpoint", type=Path, default=None)
    ap.add_argument("--from", dest="start", choices=["valid", "test"], default="test")
    ap.add_argument("--limit", type=int, default=None)
    ap.add_argument("--max-rate", type=float, default=None,
                    help="cap on events/s of the slow replay (it is gated per user anyway)")
    ap.add_argument("--full-speed", action="store_true")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    configure_logging("warning")
    data = load_dataset(args.dataset, args.data)
    window = split_window(data, start=args.start, limit=args.limit)
    work = Path(tempfile.mkdtemp(prefix="nearline-agreement-"))
    broker, redis_server = EmbeddedBroker().start(workdir=work), EmbeddedRedis().start(
        workdir=work)
    try:
        base = Settings(kafka_url=broker.url, redis_url=redis_server.url, home=str(work),
                        partitions=4, web_port=free_port(), profile=profile_for(data).name)
        out = measure(base, window, args, work)
    finally:
        broker.stop()
        redis_server.stop()
    print(orjson.dumps(out, option=orjson.OPT_INDENT_2).decode())
    if args.json:
        args.json.write_bytes(orjson.dumps(out, option=orjson.OPT_INDENT_2))


def measure(base: Settings, window: ReplayWindow, args: argparse.Namespace, work: Path
            ) -> dict[str, Any]:
    started = time.perf_counter()
    slow = run_replay(isolated(base), window,
                      ReplayOptions(max_rate=args.max_rate, checkpoint=args.checkpoint,
                                    ks=(10, 50, 100), one_per_batch=True),
                      logdir=work / "slow")
    reference_settings = isolated(base)
    prepare(reference_settings, window, args.checkpoint)
    reference = asyncio.run(reference_lists(reference_settings, window))
    agreement = compare_lists(slow.lists, reference)
    gap = hitrate_gap(window, slow.lists, reference, slow.boundary, ks=(10, 50, 100))
    out = {"dataset": window.dataset.name, "events": len(window.window),
           "lists_equal_share": round(agreement["lists_equal_share"], 4),
           "hitrate50_abs_diff": round(gap["HitRate@50_abs_diff"], 4),
           "compared_lists": agreement["compared"],
           "slow": {"max_rate": args.max_rate, "kafka": gap["kafka"],
                    "in_process": gap["in_process"],
                    "latency_ms": slow.report["latency_ms"]}}
    if args.full_speed:
        fast = run_replay(isolated(base), window, ReplayOptions(checkpoint=args.checkpoint),
                          logdir=work / "fast")
        fast_hr = fast.report["systems"]["nearline"]["stream"]["HitRate@50"]
        out["full_speed"] = {"HitRate@50": fast_hr,
                             "coalescing_cost": round(gap["in_process"]["HitRate@50"]
                                                      - fast_hr, 4),
                             "throughput_eps": fast.report["throughput_eps"],
                             "latency_ms": fast.report["latency_ms"]}
    out["wall_s"] = round(time.perf_counter() - started, 1)
    for report in (out["slow"]["kafka"], out["slow"]["in_process"]):
        report.pop("hits_by_channel", None)
    return out


if __name__ == "__main__":
    main()

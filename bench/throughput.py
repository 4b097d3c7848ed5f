"""Streaming throughput and latency: raw aiokafka, a no-op Faust agent and the worker.

    python -m bench.throughput [--events 50000] [--items 100000] [--users 10000]
                               [--json PATH] [--quick] [--index-backend auto|ivf|...]
                               [--profile DIR] [--variants] [--envelope N]
                               [--latency-rates 100,400 [--latency-only]]

One run, one embedded broker and Redis. The interactions (Zipf users and items, keyed by
user, 4 partitions) are produced once, before any consumer starts; then, one at a time,
each consumer group reads that pre-filled topic from the start:

- raw: an aiokafka consumer that decodes every value (the transport ceiling);
- faust no-op: an agent on `streams.worker.app.faust_app(settings)` shaped like the worker's
  (noack_take(batch_size, within) + acks), and a plain `async for` agent;
- pipeline: `nearline worker --agents recall` with a random-weight two-tower model over a
  `--items` catalogue (state update, user tower, index search, merge, publish);
- two workers: the same with two worker processes in one consumer group;
- with --envelope N, one and two workers fed the same events N to a message (JSON-array
  envelopes, each partition's events in order), produced to a second topic.

Rates run from the first consumed event (first published list) to the last, counted in the
child (from the lists' `last_event_id`), never from end offsets. Latency: one worker,
events produced live at half the measured pipeline rate; per event, send -> the first list
of its user that includes it, and the worker's own `latency_ms` per list.

--latency-rates adds the latency run at each given rate (events/s), with the users per
batch it saw; --latency-only skips the throughput runs.

--profile DIR samples every child's stacks (bench._harness.StackSampler) while it consumes
and writes one summary per system there (and per latency rate: `latency-<rate>.json`).
--variants repeats the no-op agent and the pipeline with the changes in VARIANTS (Faust
and NEARLINE_* settings are read from the environment; BENCH_FAST_DRAIN patches Faust's
fetch loop in the child only).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from bench import _harness as h
from streams.services.embedded import free_port
from streams.settings import Settings
from streams.topics import ensure_topics

logger = logging.getLogger(__name__)

PARTITIONS = 4
WORKER_ARGS = ("--agents", "recall", "--loglevel", "warning")
# settings or patches measured by --variants; Faust reads its settings' env names too
VARIANTS: dict[str, dict[str, Any]] = {
    "fast_drain": {"BENCH_FAST_DRAIN": 1},
    "batch_4096": {"NEARLINE_BATCH_SIZE": 4096, "NEARLINE_BATCH_WITHIN_S": 0.02},
    "fast_drain_batch_4096": {"BENCH_FAST_DRAIN": 1, "NEARLINE_BATCH_SIZE": 4096,
                              "NEARLINE_BATCH_WITHIN_S": 0.02},
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--events", type=int, default=50_000)
    ap.add_argument("--items", type=int, default=100_000)
    ap.add_argument("--users", type=int, default=10_000)
    ap.add_argument("--zipf", type=float, default=1.0, help="exponent of users and items")
    ap.add_argument("--latency-s", type=float, default=20.0, help="seconds of live traffic")
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--quick", action="store_true", help="small sizes: a smoke run")
    ap.add_argument("--no-model", action="store_true", help="repeat + popularity only")
    ap.add_argument("--recipe", action="store_true",
                    help="the checkpoint carries a retail recipe: repurchase and explore "
                         "in place of repeat")
    ap.add_argument("--index-backend", default="auto", choices=("auto", "exact", "ivf", "hnsw"),
                    help="item index of the model (auto: the project's default)")
    ap.add_argument("--profile", type=Path, default=None,
                    help="directory: sample the stacks of every child, summaries there")
    ap.add_argument("--variants", action="store_true",
                    help="also measure Faust / worker settings variants")
    ap.add_argument("--latency-rates", default="",
                    help="also measure latency at these rates (events/s, comma-separated)")
    ap.add_argument("--latency-only", action="store_true",
                    help="skip the throughput runs: latency at --latency-rates only")
    ap.add_argument("--envelope", type=int, default=0, metavar="N",
                    help="also measure one and two workers fed the same events N to a "
                         "message (JSON-array envelopes)")
    ap.add_argument("--keep", action="store_true", help="keep the work directory (logs)")
    args = ap.parse_args()
    args.rates = [float(r) for r in args.latency_rates.split(",") if r.strip()]
    if args.latency_only and not args.rates:
        ap.error("--latency-only needs --latency-rates")
    if args.quick:
        args.events, args.items, args.users, args.latency_s = 5_000, 5_000, 1_000, 5.0
    logging.basicConfig(level=logging.WARNING)
    services = h.Services.start()
    try:
        out = Bench(services, args).run()
    finally:
        services.stop()
    if args.keep:
        print(f"work directory: {services.work}")
    else:
        shutil.rmtree(services.work, ignore_errors=True)
    print_table(out)
    if args.json:
        args.json.write_bytes(orjson.dumps(out, option=orjson.OPT_INDENT_2))


class Bench:
    def __init__(self, services: h.Services, args: argparse.Namespace) -> None:
        self.services = services
        self.args = args
        self.work = services.work
        self.n = args.events
        self.backend: str = getattr(args, "index_backend", "auto")
        self.version: str | None = None
        self.ports: list[int] = []
        if args.profile:
            args.profile.mkdir(parents=True, exist_ok=True)

    def settings(self, name: str, *, interactions: str | None = None, **kw: Any) -> Settings:
        return h.deployment(self.services, name=name, interactions=interactions,
                            partitions=PARTITIONS,
                            checkpoint_store=str(self.work / "store"), **kw)

    def run(self) -> dict[str, Any]:
        a = self.args
        fill = self.settings("fill")
        ensure_topics(fill)
        events = h.make_events(self.n, users=a.users, items=a.items, partitions=PARTITIONS,
                               zipf=a.zipf, seed=1)
        topic = fill.topics.interactions
        produce_eps = h.produce_all(fill.kafka_url, topic, events)
        out: dict[str, Any] = {"events": self.n, "items": a.items, "users": a.users,
                               "partitions": PARTITIONS, "zipf": a.zipf,
                               "partition_sizes": events.partition_sizes().tolist(),
                               "produce_eps": round(produce_eps)}
        if a.latency_only:
            self.version = None if a.no_model else self.build_model()
            out["index_backend"] = self.backend if self.version else ""
            out["latency_by_rate"] = {f"{r:g}": self.latency(rate=r) for r in a.rates}
            return out
        out["raw_aiokafka_eps"] = self.counting("raw_consumer_main", "raw", topic,
                                                BENCH_PASSES=max(1, 500_000 // self.n))
        out["faust_noop_eps"] = self.counting("faust_noop_main", "faust", topic)
        out["faust_noop_plain_eps"] = self.counting("faust_noop_main", "faust-plain", topic,
                                                    BENCH_NOOP_MODE="plain")
        self.version = None if a.no_model else self.build_model()
        out["model_version"] = self.version or ""
        out["index_backend"] = self.backend if self.version else ""
        out["recipe"] = bool(a.recipe and self.version)
        one = self.pipeline("pipeline", topic, events, workers=1)
        out["pipeline_eps"] = one["eps"]
        out["pipeline"] = one
        out["ratio_pipeline_to_faust"] = round(one["eps"] / out["faust_noop_eps"], 3)
        two = self.pipeline("two", topic, events, workers=2)
        out["two_workers_eps"] = two["eps"]
        out["two_workers"] = two
        out["scale_two_to_one"] = round(two["eps"] / one["eps"], 3)
        if a.envelope:
            enveloped = f"{topic}-envelopes"
            ensure_topics(self.settings("fill-envelopes", interactions=enveloped))
            h.produce_all(fill.kafka_url, enveloped, events, envelope=a.envelope)
            env = self.pipeline("pipeline-envelope", enveloped, events, workers=1)
            out["envelope_events"] = a.envelope
            out["pipeline_envelope_eps"] = env["eps"]
            out["pipeline_envelope"] = env
            env2 = self.pipeline("two-envelope", enveloped, events, workers=2)
            out["two_workers_envelope_eps"] = env2["eps"]
            out["two_workers_envelope"] = env2
            out["scale_two_to_one_envelope"] = round(env2["eps"] / env["eps"], 3)
        out.update(self.latency(rate=0.5 * one["eps"]))
        if a.rates:
            out["latency_by_rate"] = {f"{r:g}": self.latency(rate=r) for r in a.rates}
        if a.variants:
            out["variants"] = self.variants(topic, events)
        return out

    # -- consumers that count in the child ---------------------------------------------------

    def counting(self, entry: str, name: str, topic: str, **env: Any) -> float:
        settings = self.settings(name, interactions=topic)
        result = self.work / f"{name}-{settings.app_id}.json"
        extra = {"BENCH_RESULT": result, "BENCH_EVENTS": self.n, **env}
        if self.args.profile:
            extra["BENCH_PROFILE"] = self.args.profile / f"{name}.json"
        proc = h.spawn(entry, h.env_of(settings, **extra), self.work / f"{name}.log")
        try:
            h.wait_for(result.exists, timeout=300, what=name, procs=[proc])
        finally:
            h.stop([proc])
        curve = h.read_result(result)["curve"]
        return round(rate(curve))

    # -- the worker ---------------------------------------------------------------------------

    def pipeline(self, name: str, topic: str, events: h.Events, *, workers: int,
                 **env: Any) -> dict[str, Any]:
        settings = self.settings(name, interactions=topic)
        self.make_live(settings)
        window = ProfileWindow(self.args.profile, name)
        procs = self.start_workers(settings, workers, name, **env)
        try:
            h.wait_for(lambda: h.applied_count(settings) > 0, timeout=300, what=name,
                       procs=procs)
            window.open()
            h.wait_for(lambda: h.applied_count(settings) >= len(events), timeout=900,
                       what=f"{name}: all applied", procs=procs, every=0.25)
            window.close()
        finally:
            h.stop(procs)
        results = collect(settings, events)
        self.drop(settings)
        curve = progress_curve(results, events)
        batches = len({r[0] for r in results})  # the lists of one batch share emitted_ts
        return {"eps": round(rate(curve)), "steady_eps": round(rate(curve, steady=True)),
                "results": len(results), "events_per_batch": round(len(events) / batches, 1),
                "users_per_batch": round(len(results) / batches, 1)}

    def start_workers(self, settings: Settings, n: int, name: str, **env: Any) -> list[Any]:
        procs, self.ports = [], []
        for j in range(n):
            self.ports.append(free_port())
            extra: dict[str, Any] = {"NEARLINE_WEB_PORT": self.ports[-1], **env}
            if self.args.profile and j == 0:
                extra["BENCH_PROFILE"] = self.args.profile / f"{name}.json"
            procs.append(h.spawn("worker_main", h.env_of(settings, **extra),
                                 self.work / f"{name}-{j}.log", WORKER_ARGS))
        return procs

    def drop(self, settings: Settings, *, interactions: bool = False) -> None:
        t = settings.topics
        names = [t.recalls, t.dead_letter, t.context, t.items, t.checkpoints]
        try:
            h.drop_topics(settings, names + ([t.interactions] if interactions else []))
        except Exception as exc:  # only memory is at stake
            logger.warning("could not delete topics %s: %s", names, exc)

    def build_model(self) -> str | None:
        """A random-weight two-tower checkpoint over the catalogue, published and indexed."""
        try:
            import streams.recall.two_tower  # noqa: F401
        except ImportError as exc:
            logger.warning("no two-tower channel (%s): measuring without a model", exc)
            return None
        from bench.synthetic_model import synthetic_dataset, untrained_checkpoint
        from streams.models.store import CheckpointStore

        a = self.args
        data = synthetic_dataset(n_items=a.items, n_users=a.users, n_events=3 * a.users)
        ckpt = untrained_checkpoint(self.work / "runs", data, seed=1,
                                    version=f"bench-{os.getpid()}", recipe=a.recipe)
        return CheckpointStore(self.work / "store").publish(ckpt)

    def make_live(self, settings: Settings) -> None:
        if self.version:
            asyncio.run(_make_live(settings, self.work / "store", self.version, self.backend))

    # -- latency at a steady rate -------------------------------------------------------------

    def latency(self, *, rate: float) -> dict[str, Any]:
        settings = self.settings("latency")
        self.make_live(settings)
        name = f"latency-{rate:g}"
        window = ProfileWindow(self.args.profile, name)
        procs = self.start_workers(settings, 1, name)
        a = self.args
        n = max(100, int(rate * a.latency_s))
        events = h.make_events(n, users=a.users, items=a.items, partitions=PARTITIONS,
                               zipf=a.zipf, seed=2, t0=time.time(), span_s=n / rate,
                               prefix="L")
        port = self.ports[0]
        try:
            h.wait_for(lambda: _assigned(port) >= PARTITIONS, timeout=300, what="latency",
                       procs=procs)
            window.open()
            sent = h.produce_at_rate(settings.kafka_url, settings.topics.interactions,
                                     events, rate=rate)
            h.wait_for(lambda: h.applied_count(settings) >= n, timeout=300,
                       what="latency: all applied", procs=procs)
            window.close()
        finally:
            h.stop(procs)
        results = collect(settings, events)
        self.drop(settings, interactions=True)
        return {"latency_rate_eps": round(rate), "latency_events": n,
                **latencies(results, events, sent)}

    def variants(self, topic: str, events: h.Events) -> dict[str, Any]:
        """The same measurements with one change each (env of the child processes)."""
        out: dict[str, Any] = {}
        for name, env in VARIANTS.items():
            row: dict[str, Any] = {"env": env}
            if "BENCH_FAST_DRAIN" in env:
                row["faust_noop_eps"] = self.counting("faust_noop_main", f"faust-{name}",
                                                      topic, **env)
            result = self.pipeline(f"pipeline-{name}", topic, events, workers=1, **env)
            row.update({f"pipeline_{k}": v for k, v in result.items()})
            out[name] = row
        return out


class ProfileWindow:
    """The stretch in which worker `name` samples its stacks (with --profile): the child
    starts at `<name>.start`, stops at `<name>.stop` and then writes `<name>.json`."""

    def __init__(self, root: Path | None, name: str) -> None:
        self.path = root / f"{name}.json" if root else None
        if self.path:  # a stale .start would open the window early
            for suffix in (".json", ".start", ".stop"):
                self.path.with_suffix(suffix).unlink(missing_ok=True)

    def open(self) -> None:
        if self.path:
            self.path.with_suffix(".start").touch()

    def close(self) -> None:
        if self.path:
            self.path.with_suffix(".stop").touch()
            h.wait_for(self.path.exists, timeout=30, what=f"{self.path.name}: profile")


async def _make_live(settings: Settings, root: Path, version: str, backend: str) -> None:
    from index import IndexConfig, save_index
    from streams.models.lifecycle import IndexBuilder
    from streams.models.store import CheckpointStore
    from streams.recall.two_tower import TowerBundle
    from streams.state.connect import open_state_store
    from streams.state.contract import StateConfig

    store = CheckpointStore(root)
    if backend != "auto" and not store.is_ready(version):  # the index agent builds "auto"
        bundle = TowerBundle.from_checkpoint(store.checkpoint_dir(version),
                                             config=IndexConfig(backend=backend))
        save_index(bundle.index, store.index_dir(version))
        store.mark_ready(version)
    state = open_state_store(settings.redis_url, config=StateConfig(prefix=settings.state_prefix))
    try:
        assert await IndexBuilder(store, state).build(version), store.rejection(version)
    finally:
        await state.close()


def _assigned(port: int) -> int:
    import urllib.request

    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as r:
            return int(orjson.loads(r.read()).get("interaction_partitions", 0))
    except OSError:
        return 0


# -- results --------------------------------------------------------------------------------

def collect(settings: Settings, events: h.Events) -> list[tuple[float, int, float]]:
    """(emitted_ts, index of last_event_id, worker latency_ms) of every published list."""
    out: list[tuple[float, int, float]] = []
    top = np.full(PARTITIONS, -1)

    def take(value: bytes) -> None:
        r = orjson.loads(value)
        j = events.ids.get(r["last_event_id"])
        if j is not None:
            out.append((r["emitted_ts"], j, r["latency_ms"]))
            p = events.partition[j]
            top[p] = max(top[p], events.position[j])

    h.consume_until(settings.kafka_url, settings.topics.recalls, partitions=PARTITIONS,
                    done=lambda: int((top + 1).sum()) >= len(events), on_value=take)
    return out


def progress_curve(results: list[tuple[float, int, float]], events: h.Events
                   ) -> list[tuple[float, int]]:
    """(time, events done): a list naming event j means its partition is done up to j."""
    top = np.full(PARTITIONS, -1)
    curve = []
    for emitted, j, _ in sorted(results):
        p = events.partition[j]
        top[p] = max(top[p], events.position[j])
        curve.append((emitted, int((top + 1).sum())))
    return curve


def rate(curve: list[Any], *, steady: bool = False) -> float:
    """Events per second from the first point to the last (steady: 10% -> 90% of them)."""
    t = np.array([c[0] for c in curve])
    n = np.array([c[1] for c in curve])
    if steady:
        a, b = np.searchsorted(n, 0.1 * n[-1]), np.searchsorted(n, 0.9 * n[-1])
    else:
        a, b = 0, len(n) - 1
    return float((n[b] - n[a]) / max(t[b] - t[a], 1e-9))


def latencies(results: list[tuple[float, int, float]], events: h.Events, sent: np.ndarray
              ) -> dict[str, Any]:
    """Per event: send -> the first list of its user that includes it; per list: as sent."""
    by_user: dict[int, list[tuple[int, float]]] = {}
    for emitted, j, _ in results:
        by_user.setdefault(int(events.users[j]), []).append((j, emitted))
    per_event = []
    for user, lists in by_user.items():
        lists.sort()
        idx = [j for j, _ in lists]
        mine = np.flatnonzero(events.users == user)
        first = np.searchsorted(idx, mine)  # the first list at or after each event
        per_event += [(j, lists[f][1] - sent[j]) for j, f in zip(mine, first, strict=True)
                      if f < len(lists)]
    ms = np.array([d for _, d in per_event]) * 1000.0
    later = ms[np.array([j for j, _ in per_event]) >= len(events) // 2]
    worker = np.array([r[2] for r in results])
    batches = len({r[0] for r in results})  # the lists of one batch share emitted_ts
    return {"latency_ms": pct(ms), "latency_second_half_ms": pct(later),
            "latency_worker_ms": pct(worker), "latency_max_ms": round(float(ms.max()), 1),
            "latency_users_per_batch": round(len(results) / max(batches, 1), 1)}


def pct(x: np.ndarray) -> dict[str, float]:
    return {f"p{q}": round(float(np.percentile(x, q)), 2) for q in (50, 95, 99)}


def print_table(out: dict[str, Any]) -> None:
    width = max(len(k) for k in out)
    for key, value in out.items():
        print(f"{key:<{width}}  {value}")


if __name__ == "__main__":
    main()

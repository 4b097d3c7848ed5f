"""Benchmark of the item index: recall, throughput, build, load, upsert, swap latency, memory.

Seeded random unit vectors, the hardest case for IVF (no cluster structure). The exact
backend is the baseline of every ratio, measured in the same run. The approximate
backend is calibrated (nprobe) on separate queries before it is measured; its build time
includes that calibration. Load time and memory are measured in a fresh interpreter
(RSS growth of `load_index`, relative to the raw float32 vectors). The swap test runs a
reader thread searching batches while new versions are built aside (`build_aside`: one
OpenMP thread, lowered CPU priority; reusing the calibrated nprobe) and swapped in. Usage:

    python bench/index.py [--items 1000000] [--dim 64] [--queries 1000] [--json out.json]
"""

from __future__ import annotations

import argparse
import itertools
import os
import platform
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

# This script shares its name with the `index` package: keep bench/ off the import path.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import faiss  # noqa: E402
import numpy as np  # noqa: E402
import orjson  # noqa: E402

from index import (  # noqa: E402
    IndexConfig,
    ItemIndex,
    VersionedIndex,
    build_aside,
    build_index,
    calibrate,
    load_index,
    recall_at_k,
    save_index,
)

REPO = Path(__file__).resolve().parent.parent
TARGETS = {"recall@50": (">=", 0.95), "ann_qps_ratio": (">=", 20.0), "build_s": ("<=", 120.0),
           "load_s": ("<=", 5.0), "upsert_10k_s": ("<=", 1.0), "swap_p99_ratio": ("<=", 2.0),
           "rss_ratio": ("<=", 1.5)}
JUDGED = {"recall@50": ("ann",), "rss_ratio": ("exact",)}  # other targets apply to both
LOAD_PROBE = """
import sys, time, json
import faiss, numpy, orjson  # libraries are loaded before the baseline: only the index counts
import index
def rss():
    with open("/proc/self/status") as fh:
        return next(int(line.split()[1]) * 1024 for line in fh if line.startswith("VmRSS:"))
before = rss()
started = time.perf_counter()
loaded = index.load_index(sys.argv[1])
seconds = time.perf_counter() - started
print(json.dumps({"load_s": seconds, "rss_bytes": rss() - before, "items": len(loaded)}))
"""


def unit_vectors(n: int, dim: int, *, seed: int) -> np.ndarray:
    x = np.random.default_rng(seed).standard_normal((n, dim), dtype=np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x


def timed(call: Callable[[], object]) -> tuple[object, float]:
    started = time.perf_counter()
    out = call()
    return out, time.perf_counter() - started


def upsert_new(index: ItemIndex, ids: list[str], rows: np.ndarray, dim: int) -> None:
    """Upsert fresh random vectors for the items `rows` of `ids` (a timed step)."""
    index.upsert([ids[i] for i in rows], unit_vectors(len(rows), dim, seed=6))


def throughput(indexes: dict[str, ItemIndex], queries: np.ndarray, k: int,
               repeats: int) -> dict[str, list[float]]:
    """Seconds per batched search of all queries, backends interleaved to share the noise."""
    runs: dict[str, list[float]] = {name: [] for name in indexes}
    for _ in range(repeats):
        for name, index in indexes.items():
            runs[name].append(timed(partial(index.search, queries, k))[1])
    return runs


def load_in_subprocess(directory: Path) -> dict[str, float]:
    """Load time and RSS growth of loading, in a fresh interpreter."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    out = subprocess.run([sys.executable, "-c", LOAD_PROBE, str(directory)], env=env,
                         capture_output=True, text=True, check=True)
    return orjson.loads(out.stdout.strip().splitlines()[-1])


def swap_latency(holder: VersionedIndex, build_new: Callable[[str], ItemIndex],
                 queries: np.ndarray, k: int, *, batch: int, steady_s: float, swaps: int,
                 swap_s: float) -> dict[str, float]:
    """p99 of a reader's batched searches, steady and while versions are built and swapped."""
    spans: list[tuple[float, float, str]] = []
    errors: list[BaseException] = []
    stop = threading.Event()

    def reader() -> None:
        try:
            for i in itertools.count():
                if stop.is_set():
                    return
                q = queries[(i * batch) % len(queries):][:batch]
                started = time.perf_counter()
                result = holder.search(q, k)
                spans.append((started, time.perf_counter(), result.version))
        except BaseException as exc:  # reported below: a reader must never fail
            errors.append(exc)

    thread = threading.Thread(target=reader)
    thread.start()
    time.sleep(steady_s)
    windows: list[tuple[float, float]] = []
    for s in itertools.count():  # at least `swaps` versions and `swap_s` seconds of swapping
        if s >= swaps and sum(e - b for b, e in windows) >= swap_s:
            break
        begin = time.perf_counter()
        holder.swap(build_new(f"swap{s}"))
        windows.append((begin, time.perf_counter()))
    time.sleep(0.2)
    stop.set()
    thread.join()
    if errors:
        raise RuntimeError("a reader failed during a swap") from errors[0]
    during = [e - b for b, e, _ in spans if any(b < we and e > wb for wb, we in windows)]
    steady = [e - b for b, e, _ in spans if e < windows[0][0]]
    steady_p99, swap_p99 = np.percentile(steady, 99), np.percentile(during, 99)
    return {"steady_p99_ms": 1000 * steady_p99, "swap_p99_ms": 1000 * swap_p99,
            "swap_p99_ratio": swap_p99 / steady_p99, "steady_searches": len(steady),
            "swap_searches": len(during), "swaps": len(windows),
            "versions_seen": len({v for _, _, v in spans})}


def bench_backend(name: str, ids: list[str], vectors: np.ndarray, config: IndexConfig,
                  args: argparse.Namespace, calibration_queries: np.ndarray) -> dict:
    index, build_s = timed(lambda: build_index(ids, vectors, version="v1", config=config))
    assert isinstance(index, ItemIndex)
    out: dict = {"name": index.backend, "build_s": build_s, "index": index}
    if index.backend != "exact":
        result, calibrate_s = timed(lambda: calibrate(index, calibration_queries, k=args.k,
                                                      target_recall=args.calibrate_recall))
        out.update(calibration=vars(result), calibrate_s=calibrate_s, train_and_add_s=build_s)
        out["build_s"] = build_s + calibrate_s  # a usable version includes its tuning
    out["search_params"] = index.search_params
    print(f"  built {name} ({index.backend}) in {out['build_s']:.1f} s "
          f"{out['search_params']}", flush=True)
    return out


def run(args: argparse.Namespace) -> dict:
    n, dim = args.items, args.dim
    ids = [f"sku-{i:07d}" for i in np.random.default_rng(0).permutation(n)]  # unsorted ids
    vectors = unit_vectors(n, dim, seed=1)
    queries = unit_vectors(args.queries, dim, seed=2)
    calibration_queries = unit_vectors(args.calibration_queries, dim, seed=3)
    configs = {"exact": IndexConfig(backend="exact"),
               "ann": IndexConfig(backend=args.ann, build_threads=args.threads)}
    res = {name: bench_backend(name, ids, vectors, c, args, calibration_queries)
           for name, c in configs.items()}
    indexes = {name: r["index"] for name, r in res.items()}
    runs = throughput(indexes, queries, args.k, args.repeats)
    reference = indexes["exact"].search(queries, args.k).ids
    for name, r in res.items():
        r["qps"] = len(queries) / min(runs[name])
        r["qps_runs"] = [len(queries) / s for s in runs[name]]
        r["recall@50"] = recall_at_k(indexes[name].search(queries, args.k).ids, reference)
    print("  searched", flush=True)
    rng = np.random.default_rng(4)
    changed = rng.choice(n, min(args.upsert, n), replace=False)
    changed_ids, changed_vectors = [ids[i] for i in changed], unit_vectors(len(changed), dim,
                                                                           seed=5)
    for r in res.values():
        r["upsert_10k_s"] = timed(partial(r["index"].upsert, changed_ids, changed_vectors))[1]
    sample = queries[: args.calibration_queries]
    after = indexes["exact"].search(sample, args.k).ids
    for name, r in res.items():
        r["recall@50_after_upsert"] = recall_at_k(indexes[name].search(sample, args.k).ids, after)
    with tempfile.TemporaryDirectory(prefix="nearline-index-bench-") as tmp:
        for name, r in res.items():
            directory = Path(tmp) / name
            r["save_s"] = timed(partial(save_index, r["index"], directory))[1]
            probe = load_in_subprocess(directory)
            loaded = load_index(directory)  # the worker path: load, then apply item updates
            again = rng.choice(n, min(args.upsert, n), replace=False)
            r["upsert_10k_after_load_s"] = timed(partial(upsert_new, loaded, ids, again, dim))[1]
            del loaded
            r["load_s"] = probe["load_s"]
            r["rss_ratio"] = probe["rss_bytes"] / (n * dim * 4)
            r["rss_mb"] = probe["rss_bytes"] / 2**20
    print("  saved and loaded", flush=True)
    for name, r in res.items():
        index = r.pop("index")
        holder = VersionedIndex(index)
        config = configs[name]
        params = index.search_params
        nprobe = {"nprobe": params["nprobe"]} if "nprobe" in params else {}

        def build_new(version: str, config: IndexConfig = config, nprobe: dict = nprobe
                      ) -> ItemIndex:
            tuned = IndexConfig(**{**config.to_dict(), "build_threads": 1, **nprobe})
            return build_aside(ids, vectors, version=version, config=tuned).result()

        r.update(swap_latency(holder, build_new, queries, args.k, batch=args.swap_batch,
                              steady_s=args.steady_s, swaps=args.swaps, swap_s=args.swap_s))
        print(f"  swapped {name}", flush=True)
        del holder, index
    ratio = res["ann"]["qps"] / res["exact"]["qps"]
    return {"n_items": n, "dim": dim, "backends": res, "ann_qps_ratio": ratio}


def verdict(value: float, target: tuple[str, float]) -> str:
    op, bound = target
    return "ok" if (value >= bound if op == ">=" else value <= bound) else "MISSED"


def table(report: dict) -> str:
    exact, ann = report["backends"]["exact"], report["backends"]["ann"]
    rows = ["recall@50", "recall@50_after_upsert", "qps", "build_s", "load_s", "upsert_10k_s",
            "upsert_10k_after_load_s", "steady_p99_ms", "swap_p99_ms", "swap_p99_ratio", "rss_mb",
            "rss_ratio"]
    lines = [f"{report['n_items']:,} items, dim {report['dim']}; ann = {ann['name']} "
             f"{ann['search_params']}", f"{'measure':<24}{'exact':>10}{'ann':>10}   target"]
    for row in rows:
        mark = ""
        if row in TARGETS:
            judged = [b[row] for name, b in (("exact", exact), ("ann", ann))
                      if name in JUDGED.get(row, ("exact", "ann"))]
            op, bound = TARGETS[row]
            mark = f"{op} {bound:g}: " + " ".join(verdict(v, TARGETS[row]) for v in judged)
        lines.append(f"{row:<24}{exact[row]:>10.3f}{ann[row]:>10.3f}   {mark}")
    ratio = report["ann_qps_ratio"]
    lines.append(f"{'ann_qps_ratio':<24}{'':>10}{ratio:>10.1f}   >= 20: "
                 f"{verdict(ratio, TARGETS['ann_qps_ratio'])}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=1_000_000, help="catalogue size")
    parser.add_argument("--dim", type=int, default=64, help="vector dimension")
    parser.add_argument("--queries", type=int, default=1_000, help="queries per batched search")
    parser.add_argument("--k", type=int, default=50, help="results per query")
    parser.add_argument("--ann", default="ivf", choices=["ivf", "hnsw"], help="approximate backend")
    parser.add_argument("--calibration-queries", type=int, default=200,
                        help="separate queries used to calibrate the approximate backend")
    parser.add_argument("--calibrate-recall", type=float, default=0.96,
                        help="recall@k target of the calibration (margin over 0.95)")
    parser.add_argument("--repeats", type=int, default=3, help="timed batched searches")
    parser.add_argument("--upsert", type=int, default=10_000, help="items changed by the upsert")
    parser.add_argument("--swap-batch", type=int, default=32, help="queries per reader search")
    parser.add_argument("--steady-s", type=float, default=10.0, help="reader time before swaps")
    parser.add_argument("--swaps", type=int, default=2, help="versions built and swapped in")
    parser.add_argument("--swap-s", type=float, default=8.0,
                        help="keep building and swapping for at least this long")
    parser.add_argument("--threads", type=int, default=2, help="OpenMP threads (this machine)")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    faiss.omp_set_num_threads(args.threads)
    started = time.perf_counter()
    report = run(args)
    report["wall_s"] = time.perf_counter() - started
    print(table(report))
    if args.json:
        report["meta"] = {"args": {k: str(v) for k, v in vars(args).items()},
                          "python": platform.python_version(), "cpus": os.cpu_count(),
                          "faiss": faiss.__version__, "numpy": np.__version__,
                          "targets": {k: list(v) for k, v in TARGETS.items()}}
        args.json.write_bytes(orjson.dumps(report, option=orjson.OPT_INDENT_2
                                           | orjson.OPT_SERIALIZE_NUMPY))


if __name__ == "__main__":
    main()

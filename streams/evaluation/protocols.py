"""The offline and streaming protocols of docs/evaluation.md, run in-process on any system.

A `RecallSystem` is fitted on the state at the boundary (train + valid), then:
- offline: one list per warm test user from the state frozen at the boundary;
- frozen: the boundary lists replayed against the test events (a nightly batch);
- stream: the test events replayed in time order; before a timestamp's events are
  applied each is judged against its user's latest list, then they are applied and the
  lists of the users they touched are recomputed in one batched `recall` call.
A system with `frozen = True` reports its frozen replay as its stream figures.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence, Set
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import orjson

from streams.evaluation.metrics import offline_metrics
from towers.data import ContextRecord, Dataset, Interactions, temporal_split

logger = logging.getLogger(__name__)

__all__ = ["EvalSplit", "RecallSystem", "evaluate", "evaluate_system", "format_split_table",
           "format_table",
           "offline_eval", "replay", "write_json"]

PROTOCOLS = ("offline", "stream", "frozen")
_CHUNK = 4096  # users per recall call at the boundary


class RecallSystem(Protocol):
    """What the evaluator needs; `observe_context(records)` is optional."""

    name: str
    frozen: bool  # lists are computed once at the boundary and never updated

    def fit(self, dataset: Dataset, history: Interactions) -> None: ...
    def observe(self, events: Interactions) -> None: ...
    def recall(self, users: Sequence[str], *, k: int, now: float) -> list[list[str]]: ...


@dataclass(frozen=True)
class EvalSplit:
    """A boundary: history rows (the state) and target rows (judged), both in time order."""

    dataset: Dataset
    history_rows: np.ndarray
    target_rows: np.ndarray
    sizes: dict[str, int]

    @classmethod
    def from_dataset(cls, dataset: Dataset) -> EvalSplit:
        """docs/evaluation.md: history = train + valid, targets = test."""
        split = temporal_split(dataset.interactions)
        cut = len(split.train) + len(split.valid)
        return cls(dataset, split.order[:cut], split.order[cut:], split.sizes())

    @classmethod
    def for_tuning(cls, dataset: Dataset) -> EvalSplit:
        """History = train, targets = valid: choose settings here, never on test."""
        split = temporal_split(dataset.interactions)
        return cls(dataset, split.train, split.valid, split.sizes())

    def history(self) -> Interactions:
        return self.dataset.interactions.take(self.history_rows)

    def boundary(self) -> float:
        """Time of the newest history row: when the boundary lists are computed."""
        ts = self.dataset.interactions.ts[self.history_rows]
        return float(ts.max()) if len(ts) else 0.0

    @cached_property
    def history_items(self) -> dict[str, set[str]]:
        """user -> the items they had before the boundary (shared: copy before changing)."""
        log = self.dataset.interactions
        out: dict[str, set[str]] = {}
        for user, item in zip(log.user[self.history_rows].tolist(),
                              log.item[self.history_rows].tolist(), strict=True):
            out.setdefault(user, set()).add(item)
        return out

    @cached_property
    def targets(self) -> tuple[dict[str, set[str]], dict[str, set[str]]]:
        """(warm, cold) user -> T_u; with the seen filter, pre-boundary items leave T_u."""
        log = self.dataset.interactions
        seen = self.history_items
        warm: dict[str, set[str]] = {}
        cold: dict[str, set[str]] = {}
        for user, item in zip(log.user[self.target_rows].tolist(),
                              log.item[self.target_rows].tolist(), strict=True):
            had = seen.get(user)
            if had is None:
                cold.setdefault(user, set()).add(item)
            elif not (self.dataset.seen_filter and item in had):
                warm.setdefault(user, set()).add(item)
        return {u: t for u, t in warm.items() if t}, cold


def boundary_lists(system: RecallSystem, users: Sequence[str], *, k: int,
                   now: float) -> dict[str, list[str]]:
    """The systems' lists for `users` at `now`, in batches."""
    out: dict[str, list[str]] = {}
    for a in range(0, len(users), _CHUNK):
        part = list(users[a:a + _CHUNK])
        out.update(zip(part, system.recall(part, k=k, now=now), strict=True))
    return out


def offline_eval(lists: dict[str, list[str]], targets: dict[str, set[str]],
                 seen: dict[str, set[str]] | None, ks: Sequence[int]) -> dict[str, float | int]:
    """Metrics over `targets`' users; with `seen`, those items are removed from the ranking."""
    users = sorted(targets)
    rankings = [_distinct(lists.get(u, []), seen.get(u) if seen is not None else None)
                for u in users]
    return offline_metrics(rankings, [targets[u] for u in users], ks)


def _distinct(ranked: Sequence[str], drop: Set[str] | None) -> list[str]:
    unique = dict.fromkeys(ranked)
    return list(unique) if drop is None else [i for i in unique if i not in drop]


def replay(system: RecallSystem, split: EvalSplit, lists: dict[str, list[str]], *,
           ks: Sequence[int], live: bool) -> dict[str, Any]:
    """The streaming protocol from the boundary `lists` (live: update and recompute them)."""
    log = split.dataset.interactions
    seen = ({u: set(items) for u, items in split.history_items.items()}
            if split.dataset.seen_filter else None)
    had = {u: set(items) for u, items in split.history_items.items()}  # repeat or new
    current = dict(lists)  # user -> latest list
    tally = _Tally(ks)
    baskets = None if split.dataset.seen_filter else _Baskets()
    contexts = _pending_contexts(split.dataset.contexts, split.boundary())
    rows = split.target_rows
    ts = log.ts[rows]
    starts = np.flatnonzero(np.r_[True, ts[1:] != ts[:-1]]) if len(rows) else np.zeros(0, int)
    for a, b in zip(starts.tolist(), np.r_[starts[1:], len(rows)].tolist(), strict=True):
        group = log.take(rows[a:b])
        users, items = group.user.tolist(), group.item.tolist()
        pairs = list(dict.fromkeys(zip(users, items, strict=True)))
        for user, item in pairs:
            if seen is None or item not in seen.get(user, _EMPTY):
                tally.judge(current.get(user), item, repeat=item in had.get(user, _EMPTY))
        if baskets is not None:
            baskets.judge(pairs, current, had)
        for user, item in zip(users, items, strict=True):
            had.setdefault(user, set()).add(item)
        if seen is not None:
            for user, item in zip(users, items, strict=True):
                seen.setdefault(user, set()).add(item)
        if live:
            _advance(system, group, contexts, float(ts[a]), current, k=max(ks))
    out: dict[str, Any] = dict(tally.result())
    if baskets is not None:
        out["basket"] = baskets.result()
    return out


def _advance(system: RecallSystem, group: Interactions, contexts: list[ContextRecord],
             now: float, current: dict[str, list[str]], *, k: int) -> None:
    """Apply one timestamp's events and context, recompute the touched users' lists."""
    system.observe(group)
    due = [c for c in contexts if c.ts <= now]
    if due:
        del contexts[: len(due)]
        if hasattr(system, "observe_context"):
            system.observe_context(due)
    touched = list(dict.fromkeys(group.user.tolist()))
    current.update(zip(touched, system.recall(touched, k=k, now=now), strict=True))


def _pending_contexts(contexts: Sequence[ContextRecord], after: float) -> list[ContextRecord]:
    return sorted((c for c in contexts if c.ts > after), key=lambda c: c.ts)


class _Tally:
    """Hits per K over judged events; events of users without a list are misses. Also per
    kind of event: repeat (the user had the item before) or new."""

    def __init__(self, ks: Sequence[int]) -> None:
        self.ks = list(ks)
        self.events = 0
        self.covered = 0
        self.hits = dict.fromkeys(self.ks, 0)
        self.repeats = 0
        self.repeat_hits = dict.fromkeys(self.ks, 0)

    def judge(self, ranked: list[str] | None, item: str, *, repeat: bool = False) -> None:
        self.events += 1
        self.repeats += repeat
        if ranked is None:
            return
        self.covered += 1
        if item in ranked:
            pos = ranked.index(item)
            for k in self.ks:
                self.hits[k] += pos < k
                self.repeat_hits[k] += repeat and pos < k

    def result(self) -> dict[str, float | int]:
        out: dict[str, float | int] = {}
        for k in self.ks:
            out[f"HitRate@{k}"] = self.hits[k] / self.events if self.events else 0.0
        out["events"] = self.events
        out["coverage"] = self.covered / self.events if self.events else 0.0
        for k in self.ks:
            out[f"HitRate@{k}_with_list"] = self.hits[k] / self.covered if self.covered else 0.0
        new = self.events - self.repeats
        out["repeat_events"] = self.repeats / self.events if self.events else 0.0
        for k in self.ks:
            out[f"HitRate@{k}_repeat"] = self.repeat_hits[k] / self.repeats if self.repeats \
                else 0.0
            out[f"HitRate@{k}_new"] = (self.hits[k] - self.repeat_hits[k]) / new if new else 0.0
            out[f"repeat_hit_share@{k}"] = (self.repeat_hits[k] / self.hits[k]
                                            if self.hits[k] else 0.0)
        return out


class _Baskets:
    """The next-basket table of docs/evaluation.md: each test basket of a user with history
    (one user's lines at one timestamp) against the list from the state before it."""

    KS = (10, 20)

    def __init__(self) -> None:
        self.n = 0
        self.repeat_share = 0.0
        self.recall = dict.fromkeys(self.KS, 0.0)
        self.recall_repeat = dict.fromkeys(self.KS, 0.0)

    def judge(self, pairs: Sequence[tuple[str, str]], current: dict[str, list[str]],
              had: dict[str, set[str]]) -> None:
        basket: dict[str, list[str]] = {}
        for user, item in pairs:
            basket.setdefault(user, []).append(item)
        for user, items in basket.items():
            before = had.get(user)
            if not before:
                continue
            ranked = current.get(user) or []
            self.n += 1
            self.repeat_share += sum(i in before for i in items) / len(items)
            for k in self.KS:
                top = set(ranked[:k])
                self.recall[k] += sum(i in top for i in items) / len(items)
                self.recall_repeat[k] += sum(i in top and i in before for i in items) / len(items)

    def result(self) -> dict[str, float | int]:
        n = max(self.n, 1)
        out: dict[str, float | int] = {"baskets": self.n, "repeat_share": self.repeat_share / n}
        for k in self.KS:
            out[f"Recall@{k}"] = self.recall[k] / n
            out[f"Recall@{k}_repeat"] = self.recall_repeat[k] / n
            out[f"Recall@{k}_new"] = (self.recall[k] - self.recall_repeat[k]) / n
        return out


_EMPTY: frozenset[str] = frozenset()


def evaluate_system(system: RecallSystem, split: EvalSplit, *, ks: Sequence[int] = (10, 50, 100),
                    protocols: Sequence[str] = PROTOCOLS) -> dict[str, Any]:
    """Fit at the boundary and run the requested protocols; one `systems` entry."""
    unknown = set(protocols) - set(PROTOCOLS)
    if unknown:
        raise ValueError(f"unknown protocols {sorted(unknown)}; known: {', '.join(PROTOCOLS)}")
    start = time.perf_counter()
    system.fit(split.dataset, split.history())
    fit_s = time.perf_counter() - start
    seen = split.history_items
    warm, cold = split.targets
    streamed = set(split.dataset.interactions.user[split.target_rows].tolist())
    users = sorted(u for u in streamed if u in seen)  # every user a boundary list can serve
    now, k = split.boundary(), max(ks)
    lists = boundary_lists(system, users, k=k, now=now)
    out: dict[str, Any] = {}
    if "offline" in protocols:
        out["offline"] = offline_eval(lists, warm, seen if split.dataset.seen_filter else None,
                                      ks)
        out["offline_cold"] = offline_eval(boundary_lists(system, sorted(cold), k=k, now=now),
                                           cold, None, ks)
    frozen_system = getattr(system, "frozen", False)
    if "frozen" in protocols or ("stream" in protocols and frozen_system):
        out["frozen"] = replay(system, split, lists, ks=ks, live=False)
    if "stream" in protocols:
        out["stream"] = out["frozen"] if frozen_system else replay(
            system, split, lists, ks=ks, live=True)
    out["is_frozen"] = bool(frozen_system)
    out["fit_s"] = round(fit_s, 3)
    out["wall_s"] = round(time.perf_counter() - start, 3)
    logger.info("evaluated %s in %.1f s", system.name, out["wall_s"])
    return out


def evaluate(dataset: Dataset, systems: Sequence[RecallSystem], *,
             ks: Sequence[int] = (10, 50, 100), protocols: Sequence[str] = PROTOCOLS,
             checkpoint: str = "", split: EvalSplit | None = None) -> dict[str, Any]:
    """The JSON document of docs/evaluation.md for `systems` on `dataset`."""
    start = time.perf_counter()
    split = split or EvalSplit.from_dataset(dataset)
    warm, cold = split.targets
    report: dict[str, Any] = {
        "dataset": dataset.name, "split": dict(split.sizes), "systems": {},
        "checkpoint": checkpoint, "wall_s": 0.0,
        "users": {"warm_test": len(warm), "cold_test": len(cold)},
        "catalogue": len(dataset.catalogue()),
    }
    for system in systems:
        report["systems"][system.name] = evaluate_system(system, split, ks=ks,
                                                         protocols=protocols)
    report["wall_s"] = round(time.perf_counter() - start, 3)
    return report


_COLUMNS = (  # (block, key, header, format)
    ("offline", "HitRate@10", "off HR@10", "{:.4f}"),
    ("offline", "HitRate@50", "off HR@50", "{:.4f}"),
    ("offline", "HitRate@100", "off HR@100", "{:.4f}"),
    ("offline", "Recall@50", "off R@50", "{:.4f}"),
    ("offline", "NDCG@50", "off NDCG@50", "{:.4f}"),
    ("offline", "users", "users", "{}"),
    ("stream", "HitRate@10", "str HR@10", "{:.4f}"),
    ("stream", "HitRate@50", "str HR@50", "{:.4f}"),
    ("stream", "HitRate@100", "str HR@100", "{:.4f}"),
    ("stream", "events", "events", "{}"),
    ("stream", "coverage", "coverage", "{:.3f}"),
    ("frozen", "HitRate@50", "frz HR@50", "{:.4f}"),
    ("", "wall_s", "wall s", "{:.1f}"),
)


def format_table(report: dict[str, Any]) -> str:
    """Systems as rows, protocol metrics as columns, for people."""
    header = ["system"] + [c[2] for c in _COLUMNS] + ["str/frz"]
    rows = [header]
    for name, blocks in report["systems"].items():
        row = [name]
        for block, key, _, fmt in _COLUMNS:
            value = (blocks.get(block) or {}).get(key) if block else blocks.get(key)
            row.append("-" if value is None else fmt.format(value))
        stream, frozen = blocks.get("stream") or {}, blocks.get("frozen") or {}
        ratio = (stream["HitRate@50"] / frozen["HitRate@50"]
                 if stream.get("HitRate@50") is not None and frozen.get("HitRate@50") else None)
        row.append("-" if ratio is None else f"{ratio:.2f}")
        rows.append(row)
    widths = [max(len(r[c]) for r in rows) for c in range(len(header))]
    lines = ["  ".join(v.ljust(w) if c == 0 else v.rjust(w)
                       for c, (v, w) in enumerate(zip(r, widths, strict=True))) for r in rows]
    split = report.get("split", {})
    title = (f"{report.get('dataset', '?')}: train {split.get('train')}, valid "
             f"{split.get('valid')}, test {split.get('test')}; {report.get('wall_s', 0):.1f} s")
    return "\n".join([title, *lines])


_SPLIT_COLUMNS = (  # (block, key, header): the kinds of event each system hits
    ("stream", "repeat_events", "repeat ev"),
    ("stream", "HitRate@50_repeat", "HR@50 repeat"),
    ("stream", "HitRate@50_new", "HR@50 new"),
    ("stream", "repeat_hit_share@50", "hits repeat"),
    ("basket", "Recall@10", "basket R@10"),
    ("basket", "Recall@20", "basket R@20"),
    ("basket", "Recall@20_repeat", "R@20 repeat"),
    ("basket", "Recall@20_new", "R@20 new"),
)


def format_split_table(report: dict[str, Any]) -> str:
    """Streaming hits split into repeat and new items, and the next-basket table."""
    header = ["system"] + [c[2] for c in _SPLIT_COLUMNS]
    rows = [header]
    for name, blocks in report["systems"].items():
        stream = blocks.get("stream") or {}
        parts = {"stream": stream, "basket": stream.get("basket") or {}}
        rows.append([name] + ["-" if (v := parts[b].get(key)) is None else f"{v:.4f}"
                              for b, key, _ in _SPLIT_COLUMNS])
    widths = [max(len(r[c]) for r in rows) for c in range(len(header))]
    return "\n".join("  ".join(v.ljust(w) if c == 0 else v.rjust(w)
                               for c, (v, w) in enumerate(zip(r, widths, strict=True)))
                     for r in rows)


def write_json(report: dict[str, Any], path: str | Path) -> None:
    """Write the report as indented JSON (orjson)."""
    Path(path).write_bytes(orjson.dumps(report, option=orjson.OPT_INDENT_2
                                        | orjson.OPT_SERIALIZE_NUMPY) + b"\n")

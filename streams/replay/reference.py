"""The in-process reference of a replay: the same engine, one event at a time, no Kafka.

Each window event is applied alone and its user's list recomputed at the event's time,
which is what the streaming path gives when no two events share a micro-batch. Lists of
the Kafka path are compared with these at the same state: the list that names the same
last applied event.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from streams.models.lifecycle import load_live_model
from streams.models.store import CheckpointStore
from streams.replay.score import Score, score_stream
from streams.replay.window import ReplayWindow
from streams.settings import Settings
from streams.state.connect import live_version_now
from streams.worker.pipeline import to_result
from streams.worker.records import Interaction
from streams.worker.run import build_engine

__all__ = ["compare_lists", "reference_lists"]


async def reference_lists(settings: Settings, window: ReplayWindow
                          ) -> dict[str, list[dict[str, Any]]]:
    """user -> lists after each of its window events (state warmed beforehand)."""
    model = load_live_model(CheckpointStore(settings.checkpoint_dir()),
                            live_version_now(settings.redis_url, prefix=settings.state_prefix))
    engine = build_engine(settings, model=model)
    w = window.window
    out: dict[str, list[dict[str, Any]]] = {}
    try:
        for j, event_id in enumerate(window.event_ids):
            kind = str(w.kind[j])
            event = Interaction(event_id=event_id, user_id=str(w.user[j]),
                                item_id=str(w.item[j]),
                                type=kind if kind in ("view", "click", "cart") else "purchase",
                                ts=float(w.ts[j]), quantity=float(w.quantity[j]),
                                region=str(w.region[j]))
            await engine.apply([event])
            [result] = await engine.recall([event.user_id], now=event.ts)
            out.setdefault(event.user_id, []).append(
                to_result(result, emitted=time.time(), arrival=None).asdict())
    finally:
        await engine.board.redis.aclose()
        await engine.store.close()
    return out


def compare_lists(streamed: dict[str, list[dict[str, Any]]],
                  reference: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    """Share of streamed lists identical to the reference list at the same state."""
    ref = {r["last_event_id"]: r["items"] for lists in reference.values() for r in lists}
    compared = equal = 0
    for lists in streamed.values():
        for r in lists:
            items = ref.get(r["last_event_id"])
            if items is None:
                continue
            compared += 1
            equal += items == r["items"]
    return {"compared": compared, "equal": equal,
            "lists_equal_share": equal / compared if compared else 0.0}


def hitrate_gap(window: ReplayWindow, streamed: dict[str, list[dict[str, Any]]],
                reference: dict[str, list[dict[str, Any]]], boundary: dict[str, dict[str, Any]],
                *, ks: Sequence[int]) -> dict[str, Any]:
    """Streaming HitRate of both sources and their absolute differences."""
    seen = window.dataset.seen_filter
    kafka: Score = score_stream(window, streamed, boundary, ks=ks, seen_filter=seen)[0]
    local: Score = score_stream(window, reference, boundary, ks=ks, seen_filter=seen)[0]
    a, b = kafka.result(), local.result()
    return {"kafka": a, "in_process": b,
            **{f"HitRate@{k}_abs_diff": abs(a[f"HitRate@{k}"] - b[f"HitRate@{k}"]) for k in ks}}

"""Scoring a replay by the streaming protocol of docs/evaluation.md.

Each event is judged against the newest list of its user computed from events strictly
earlier than it (a `RecallResult` names the last event its state held). Before a user's
first list from the stream, the boundary list counts: the one the same engine computes
from the warmed state, which is also the frozen (nightly batch) variant.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from streams.replay.window import ReplayWindow

__all__ = ["Score", "score_stream"]


@dataclass
class Score:
    """Streaming-protocol tallies for one list source."""

    ks: Sequence[int]
    events: int = 0
    covered: int = 0
    hits: dict[int, int] = field(default_factory=dict)
    channel_hits: dict[str, int] = field(default_factory=dict)  # credited at max(ks)
    trace: list[bool] = field(default_factory=list)  # hit at K=50 (or the largest K) per event

    def judge(self, ranked: dict[str, Any] | None, item: str) -> None:
        self.events += 1
        k_trace = 50 if 50 in self.ks else max(self.ks)
        self.trace.append(ranked is not None and item in ranked["items"][:k_trace])
        if ranked is None:
            return
        self.covered += 1
        items = ranked["items"]
        if item in items:
            pos = items.index(item)
            for k in self.ks:
                self.hits[k] = self.hits.get(k, 0) + (pos < k)
            if pos < max(self.ks):
                channel = ranked["channels"][pos] if ranked.get("channels") else ""
                self.channel_hits[channel] = self.channel_hits.get(channel, 0) + 1

    def result(self) -> dict[str, Any]:
        out: dict[str, Any] = {f"HitRate@{k}": self.hits.get(k, 0) / max(self.events, 1)
                               for k in self.ks}
        out["events"] = self.events
        out["coverage"] = self.covered / max(self.events, 1)
        for k in self.ks:
            out[f"HitRate@{k}_with_list"] = self.hits.get(k, 0) / max(self.covered, 1)
        out["hits_by_channel"] = dict(sorted(self.channel_hits.items()))
        return out


def score_stream(window: ReplayWindow, streamed: dict[str, list[dict[str, Any]]],
                 boundary: dict[str, dict[str, Any]], *, ks: Sequence[int],
                 seen_filter: bool) -> tuple[Score, Score]:
    """(stream, frozen) metrics of docs/evaluation.md from the lists read back."""
    w = window.window
    seen: dict[str, set[str]] = {}
    if seen_filter:
        for u, i in zip(window.history.user.tolist(), window.history.item.tolist(), strict=True):
            seen.setdefault(u, set()).add(i)
    by_user = {u: sorted(lists, key=lambda r: (r["last_event_ts"], r["emitted_ts"]))
               for u, lists in streamed.items()}
    cursor: dict[str, int] = {}
    stream, frozen = Score(ks), Score(ks)
    ts = w.ts
    users, items = w.user.tolist(), w.item.tolist()
    starts = np.flatnonzero(np.r_[True, ts[1:] != ts[:-1]]) if len(w) else np.zeros(0, int)
    for a, b in zip(starts.tolist(), np.r_[starts[1:], len(w)].tolist(), strict=True):
        t = float(ts[a])
        for user, item in dict.fromkeys(zip(users[a:b], items[a:b], strict=True)):
            if seen_filter and item in seen.get(user, ()):
                continue
            stream.judge(_latest_before(by_user.get(user, []), cursor, user, t)
                         or boundary.get(user), item)
            frozen.judge(boundary.get(user), item)
        if seen_filter:
            for user, item in zip(users[a:b], items[a:b], strict=True):
                seen.setdefault(user, set()).add(item)
    return stream, frozen


def _latest_before(lists: list[dict[str, Any]], cursor: dict[str, int], user: str,
                   t: float) -> dict[str, Any] | None:
    """Newest list whose state held only events earlier than t (lists sorted by that ts)."""
    j = cursor.get(user, 0)
    while j < len(lists) and lists[j]["last_event_ts"] < t:
        j += 1
    cursor[user] = j
    return lists[j - 1] if j > 0 else None

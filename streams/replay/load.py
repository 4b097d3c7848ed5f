"""`nearline load`: a data set's window as endless load for running workers.

No scoring and no isolation: the events go to the deployment's own interactions topic,
where the running workers consume them. Each pass is new events (fresh ids, later
timestamps; `streams.replay.window.interaction_messages`), so every one is applied.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass

from streams.replay.kafka_io import produce
from streams.replay.window import Envelopes, ReplayWindow, interaction_messages, paced
from streams.settings import Settings
from streams.topics import ensure_topics, partition_count

__all__ = ["LoadResult", "produce_load"]


@dataclass(frozen=True)
class LoadResult:
    events: int
    seconds: float

    @property
    def rate(self) -> float:
        return self.events / self.seconds if self.seconds > 0 else 0.0


def produce_load(settings: Settings, window: ReplayWindow, *, max_rate: float,
                 duration_s: float | None = None, envelope: int = 1) -> LoadResult:
    """Produce the window again and again at `max_rate` events/s for `duration_s` seconds
    (None: until interrupted); `envelope` > 1 sends that many events to a message."""
    if max_rate <= 0:
        raise ValueError("a load needs a positive --max-rate")
    if envelope < 1:
        raise ValueError("a message holds at least one event")
    sent = [0]
    started = time.monotonic()
    deadline = None if duration_s is None else started + duration_s

    def until_deadline() -> Iterator[tuple[bytes, bytes]]:
        for message in paced(interaction_messages(window, passes=None), speed=None,
                             max_rate=max_rate):
            if deadline is not None and time.monotonic() >= deadline:
                return
            yield message

    envelopes = None
    if envelope > 1:  # grouped by partition: the topic must exist to say how many it has
        ensure_topics(settings)  # (what the workers would create)
        envelopes = Envelopes(until_deadline(), size=envelope, partitions=partition_count(
            settings, settings.topics.interactions))

    def count(n: int) -> None:
        sent[0] = envelopes.events if envelopes is not None else n

    try:
        produce(settings, iter(envelopes) if envelopes is not None else until_deadline(),
                on_sent=count)
    except KeyboardInterrupt:  # the way to end a load without --duration
        pass
    return LoadResult(sent[0], time.monotonic() - started)

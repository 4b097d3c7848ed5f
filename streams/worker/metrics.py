"""The metrics a worker exposes on `/metrics` (Prometheus text format)."""

from __future__ import annotations

from streams.worker.registry import Registry

__all__ = ["WorkerMetrics"]

_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)


class WorkerMetrics:
    """Counters, gauges and histograms of one worker process."""

    def __init__(self) -> None:
        r = self.registry = Registry()
        self.events_in = r.counter("nearline_events_in_total", "Messages consumed.",
                                   labels=("topic",))
        self.applied = r.counter("nearline_events_applied_total",
                                 "Events applied to the state (duplicates excluded).",
                                 labels=("topic",))
        self.duplicates = r.counter("nearline_events_duplicate_total",
                                    "Redelivered events that changed nothing.")
        self.dead_lettered = r.counter("nearline_events_dead_lettered_total",
                                       "Events sent to the dead-letter topic.",
                                       labels=("reason",))
        self.redis_errors = r.counter("nearline_redis_errors_total",
                                      "Failed state calls (each retried with backoff).")
        self.latency_seconds = r.histogram(
            "nearline_recall_latency_seconds",
            "Event produced -> recall list published, per user and batch.",
            buckets=_LATENCY_BUCKETS)
        self.recall_seconds = r.histogram("nearline_recall_batch_seconds",
                                          "Time to compute and publish one batch's lists.",
                                          buckets=_LATENCY_BUCKETS)
        self.batch_users = r.histogram("nearline_batch_users", "Distinct users per batch.",
                                       buckets=_BATCH_BUCKETS)
        self.model_version = r.gauge("nearline_model_info", "Live model version (value 1).",
                                     labels=("version",))
        self.swaps = r.counter("nearline_model_swaps_total", "Live model swaps.")
        self.rejected = r.counter("nearline_checkpoints_rejected_total",
                                  "Checkpoints that failed validation or the index build.")
        self.index_items = r.gauge("nearline_index_items", "Items in the live index.")
        self.consumer_lag = r.gauge("nearline_consumer_lag", "Messages behind, per topic.",
                                    labels=("topic",))

    def render(self) -> str:
        return self.registry.render()

"""The metrics a worker exposes on `/metrics`, through `prometheus_client`.

Each `WorkerMetrics` has a registry of its own (a test may run several workers in one
process), rendered in the text exposition format 0.0.4. The `_created` series
prometheus_client adds by default are switched off: nothing here reads them, and the
names served stay the ones dashboards and alert rules were written against.
"""

from __future__ import annotations

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
)

__all__ = ["CONTENT_TYPE", "WorkerMetrics"]

# what `generate_latest` writes; aiohttp takes the charset apart from the content type
CONTENT_TYPE = "text/plain; version=0.0.4"

_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)

disable_created_metrics()


class WorkerMetrics:
    """Counters, gauges and histograms of one worker process."""

    def __init__(self) -> None:
        r = self.registry = CollectorRegistry(auto_describe=True)
        self.events_in = Counter("nearline_events_in_total", "Messages consumed.", ["topic"],
                                 registry=r)
        self.applied = Counter("nearline_events_applied_total",
                               "Events applied to the state (duplicates excluded).", ["topic"],
                               registry=r)
        self.duplicates = Counter("nearline_events_duplicate_total",
                                  "Redelivered events that changed nothing.", registry=r)
        self.dead_lettered = Counter("nearline_events_dead_lettered_total",
                                     "Events sent to the dead-letter topic.", ["reason"],
                                     registry=r)
        self.redis_errors = Counter("nearline_redis_errors_total",
                                    "Failed state calls (each retried with backoff).", registry=r)
        self.latency_seconds = Histogram(
            "nearline_recall_latency_seconds",
            "Event produced -> recall list published, per user and batch.",
            buckets=_LATENCY_BUCKETS, registry=r)
        self.recall_seconds = Histogram("nearline_recall_batch_seconds",
                                        "Time to compute and publish one batch's lists.",
                                        buckets=_LATENCY_BUCKETS, registry=r)
        self.batch_users = Histogram("nearline_batch_users", "Distinct users per batch.",
                                     buckets=_BATCH_BUCKETS, registry=r)
        self.model_version = Gauge("nearline_model_info", "Live model version (value 1).",
                                   ["version"], registry=r)
        self.swaps = Counter("nearline_model_swaps_total", "Live model swaps.", registry=r)
        self.rejected = Counter("nearline_checkpoints_rejected_total",
                                "Checkpoints that failed validation or the index build.",
                                registry=r)
        self.index_items = Gauge("nearline_index_items", "Items in the live index.", registry=r)
        self.consumer_lag = Gauge("nearline_consumer_lag", "Messages behind, per topic.",
                                  ["topic"], registry=r)

    def live_model(self, version: str, items: int) -> None:
        """The live version (one label set at a time) and its index size."""
        self.model_version.clear()
        self.model_version.labels(version=version).set(1)
        self.index_items.set(items)

    def render(self) -> bytes:
        return generate_latest(self.registry)

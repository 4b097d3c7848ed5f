"""The text a worker serves on /metrics: names, labels and values as recorded, in the
exposition format Prometheus parses (read back with prometheus_client's own parser)."""

from __future__ import annotations

import threading

from prometheus_client.parser import text_string_to_metric_families

from streams.worker.metrics import WorkerMetrics

NAMES = {"nearline_events_in_total", "nearline_events_applied_total",
         "nearline_events_duplicate_total", "nearline_events_dead_lettered_total",
         "nearline_redis_errors_total", "nearline_recall_latency_seconds",
         "nearline_recall_batch_seconds", "nearline_batch_users", "nearline_model_info",
         "nearline_model_swaps_total", "nearline_checkpoints_rejected_total",
         "nearline_index_items", "nearline_consumer_lag"}


def _samples(m: WorkerMetrics) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(m.render().decode())
            for s in family.samples}


def test_every_metric_keeps_its_name_and_no_created_series() -> None:
    samples = _samples(WorkerMetrics())
    names = {name for name, _ in samples}
    for name in NAMES - {"nearline_events_in_total", "nearline_events_applied_total",
                         "nearline_events_dead_lettered_total", "nearline_model_info",
                         "nearline_consumer_lag"}:  # labelled: no sample before a value
        assert name in names or f"{name}_count" in names, name
    assert not [n for n in names if n.endswith("_created")]


def test_values_labels_and_buckets_round_trip() -> None:
    m = WorkerMetrics()
    m.events_in.labels(topic="t").inc()
    m.applied.labels(topic="t").inc(3)
    m.dead_lettered.labels(reason='bad "quote"\n').inc()
    for v in (0.0005, 0.012, 0.3, 20.0):
        m.latency_seconds.observe(v)
    m.live_model("v1", 10)
    m.live_model("v2", 12)  # one version at a time
    s = _samples(m)
    assert s[("nearline_events_in_total", frozenset({("topic", "t")}))] == 1
    assert s[("nearline_events_applied_total", frozenset({("topic", "t")}))] == 3
    assert s[("nearline_events_dead_lettered_total",
              frozenset({("reason", 'bad "quote"\n')}))] == 1
    assert s[("nearline_recall_latency_seconds_bucket", frozenset({("le", "0.025")}))] == 2
    assert s[("nearline_recall_latency_seconds_bucket", frozenset({("le", "+Inf")}))] == 4
    assert s[("nearline_recall_latency_seconds_count", frozenset())] == 4
    assert [k for k in s if k[0] == "nearline_model_info"] == [
        ("nearline_model_info", frozenset({("version", "v2")}))]
    assert s[("nearline_index_items", frozenset())] == 12


def test_rendering_while_threads_record_stays_well_formed() -> None:
    m = WorkerMetrics()

    def record() -> None:
        for j in range(2000):
            m.events_in.labels(topic=f"t{j % 3}").inc()
            m.latency_seconds.observe(j / 1000)

    threads = [threading.Thread(target=record) for _ in range(4)]
    for t in threads:
        t.start()
    while any(t.is_alive() for t in threads):
        _samples(m)  # parses, or the test fails
    for t in threads:
        t.join()
    s = _samples(m)
    assert sum(v for (n, _), v in s.items() if n == "nearline_events_in_total") == 8000
    assert s[("nearline_recall_latency_seconds_count", frozenset())] == 8000

"""The Prometheus text the worker serves parses back to what was recorded."""

from __future__ import annotations

import re

import pytest

from streams.worker.metrics import WorkerMetrics
from streams.worker.registry import Registry

_LINE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (\S+)$')


def _parse(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    out = {}
    for line in text.splitlines():
        if line.startswith("#") or not line:
            continue
        m = _LINE.match(line)
        assert m, f"not exposition format: {line!r}"
        labels = frozenset(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', m.group(3) or ""))
        out[(m.group(1), labels)] = float(m.group(4))
    return out


def test_counters_gauges_histograms_round_trip() -> None:
    r = Registry()
    c = r.counter("x_total", "Things.", labels=("reason",))
    g = r.gauge("g", "A gauge.")
    h = r.histogram("lat_seconds", "Latency.", buckets=(0.01, 0.1, 1.0))
    c.inc(reason='bad "quote"\n')
    c.inc(2, reason="ok")
    g.set(7.5)
    for v in (0.005, 0.05, 0.5, 5.0):
        h.observe(v)
    text = r.render()
    parsed = _parse(text)
    assert parsed[("x_total", frozenset({("reason", "ok")}))] == 2
    assert parsed[("x_total", frozenset({("reason", 'bad \\"quote\\"\\n')}))] == 1
    assert parsed[("g", frozenset())] == 7.5
    assert parsed[("lat_seconds_bucket", frozenset({("le", "0.1")}))] == 2
    assert parsed[("lat_seconds_bucket", frozenset({("le", "+Inf")}))] == 4
    assert parsed[("lat_seconds_count", frozenset())] == 4
    assert "# TYPE lat_seconds histogram" in text
    with pytest.raises(ValueError):
        c.inc(reason="x", extra="y")
    with pytest.raises(ValueError):
        c.inc(-1, reason="x")


def test_worker_metrics_render() -> None:
    m = WorkerMetrics()
    m.events_in.inc(topic="t")
    m.dead_lettered.inc(reason="not_json")
    m.latency_seconds.observe(0.012)
    m.model_version.set(1, version="v1")
    parsed = _parse(m.render())
    key = ("nearline_events_dead_lettered_total", frozenset({("reason", "not_json")}))
    assert parsed[key] == 1
    assert parsed[("nearline_model_info", frozenset({("version", "v1")}))] == 1

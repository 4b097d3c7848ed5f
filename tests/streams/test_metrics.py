"""The Prometheus registry: exposition format 0.0.4, parsed back strictly; thread safety."""

from __future__ import annotations

import math
import re
import threading

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streams.worker.registry import Registry

_SAMPLE = re.compile(r"([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)")
_PAIR = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\n]|\\[\\"n])*)"(,|$)')


def _unescape(text: str, quotes: bool) -> str:
    table = {"\\\\": "\\", "\\n": "\n", **({'\\"': '"'} if quotes else {})}
    return re.sub(r"\\[\\n\"]", lambda m: table.get(m.group(0), m.group(0)), text)


def _labels(body: str) -> dict[str, str]:
    out, pos = {}, 0
    while pos < len(body):
        m = _PAIR.match(body, pos)
        assert m, f"bad label set at {body[pos:]!r}"
        out[m.group(1)] = _unescape(m.group(2), quotes=True)
        pos = m.end()
    return out


def parse(text: str) -> tuple[dict[str, tuple[str, str]], list[tuple[str, dict[str, str], float]]]:
    """(name -> (type, help), samples) from exposition text; fails on anything malformed."""
    assert text.endswith("\n")
    meta: dict[str, list[str]] = {}
    samples = []
    for line in text[:-1].split("\n"):
        if line.startswith("# HELP "):
            name, _, doc = line[7:].partition(" ")
            meta.setdefault(name, ["", ""])[1] = _unescape(doc, quotes=False)
        elif line.startswith("# TYPE "):
            name, kind = line[7:].split(" ")
            assert kind in ("counter", "gauge", "histogram"), line
            meta.setdefault(name, ["", ""])[0] = kind
        else:
            m = _SAMPLE.fullmatch(line)
            assert m, f"not a sample: {line!r}"
            samples.append((m.group(1), _labels(m.group(2) or ""), float(m.group(3))))
    for name, _, _ in samples:
        family = re.sub(r"_(bucket|sum|count)$", "", name)
        assert name in meta or meta.get(family, [""])[0] == "histogram", f"{name} has no TYPE"
    return {k: (v[0], v[1]) for k, v in meta.items()}, samples


def _value(samples: list, name: str, **labels: str) -> float:  # type: ignore[type-arg]
    [value] = [v for n, lab, v in samples if n == name and lab == labels]
    return value


@settings(max_examples=200, deadline=None)
@given(value=st.text(max_size=40), doc=st.text(max_size=40))
def test_any_label_value_and_help_text_round_trip(value: str, doc: str) -> None:
    r = Registry()
    r.counter("c_total", doc, labels=("path",)).inc(3, path=value)
    meta, samples = parse(r.render())
    assert meta["c_total"] == ("counter", doc)
    assert samples == [("c_total", {"path": value}, 3.0)]


def test_help_keeps_quotes_and_escapes_newlines() -> None:
    r = Registry()
    r.gauge("g", 'say "hi"\\ then\nstop')
    text = r.render()
    assert '# HELP g say "hi"\\\\ then\\nstop\n' in text
    assert parse(text)[0]["g"] == ("gauge", 'say "hi"\\ then\nstop')


def test_histogram_buckets_are_cumulative_per_label_set() -> None:
    r = Registry()
    h = r.histogram("lat_seconds", "Latency.", buckets=(1.0, 0.1, 0.01), labels=("stage",))
    fast, slow = (0.005, 0.05, 0.05, 0.5, 5.0), (2.0, 3.0)
    for v in fast:
        h.observe(v, stage="a")
    for v in slow:
        h.observe(v, stage="b")
    meta, samples = parse(r.render())
    assert meta["lat_seconds"][0] == "histogram"
    for stage, values in (("a", fast), ("b", slow)):
        counts = [_value(samples, "lat_seconds_bucket", stage=stage, le=le)
                  for le in ("0.01", "0.1", "1", "+Inf")]
        assert counts == [sum(v <= b for v in values) for b in (0.01, 0.1, 1.0, math.inf)]
        assert _value(samples, "lat_seconds_count", stage=stage) == len(values)
        assert _value(samples, "lat_seconds_sum", stage=stage) == pytest.approx(sum(values))
        assert h.count(stage=stage) == len(values)
    bucket_lines = [line for line in r.render().splitlines() if "_bucket{" in line]
    assert all(re.search(r',le="[^"]+"\}', line) for line in bucket_lines)  # le comes last


def test_gauges_counters_and_special_values() -> None:
    r = Registry()
    c = r.counter("events_total", "Events.")
    g = r.gauge("depth", "Queue depth.", labels=("queue",))
    assert _value(parse(r.render())[1], "events_total") == 0  # rendered before any inc
    c.inc()
    c.inc(0.5)
    g.set(5, queue="q")
    g.dec(2, queue="q")
    g.inc(queue="q")
    g.set(math.inf, queue="big")
    g.set(math.nan, queue="bad")
    _, samples = parse(r.render())
    assert _value(samples, "events_total") == 1.5
    assert _value(samples, "depth", queue="q") == 4 == g.value(queue="q")
    assert _value(samples, "depth", queue="big") == math.inf
    assert math.isnan(_value(samples, "depth", queue="bad"))
    g.clear()
    assert not [s for s in parse(r.render())[1] if s[0] == "depth"]


def test_misuse_is_refused() -> None:
    r = Registry()
    c = r.counter("x_total", "X.", labels=("reason",))
    with pytest.raises(ValueError, match="twice"):
        r.gauge("x_total", "again")
    with pytest.raises(ValueError, match="labels"):
        c.inc(reason="a", extra="b")
    with pytest.raises(ValueError, match="labels"):
        c.inc()
    with pytest.raises(ValueError, match="only go up"):
        c.inc(-1, reason="a")
    for name, labels in (("1bad", ()), ("has-dash", ()), ("ok", ("__reserved",)),
                         ("ok", ("a", "a")), ("ok", ("bad label",))):
        with pytest.raises(ValueError):
            r.counter(name, "?", labels=labels)
    with pytest.raises(ValueError, match="le"):
        r.histogram("h", "?", buckets=(1.0,), labels=("le",))
    with pytest.raises(ValueError, match="buckets"):
        r.histogram("h", "?", buckets=())


def test_concurrent_updates_are_all_counted() -> None:
    r = Registry()
    c = r.counter("n_total", "N.", labels=("worker",))
    h = r.histogram("v", "V.", buckets=(0.5,))
    n_threads, per_thread = 8, 5_000
    start = threading.Barrier(n_threads + 1)
    renders: list[str] = []

    def work(j: int) -> None:
        start.wait()
        for i in range(per_thread):
            c.inc(worker=str(j % 2))
            h.observe(i % 2)  # half at or below 0.5

    threads = [threading.Thread(target=work, args=(j,)) for j in range(n_threads)]
    for t in threads:
        t.start()
    start.wait()
    while any(t.is_alive() for t in threads):
        renders.append(r.render())  # rendering while others write stays well-formed
    for t in threads:
        t.join()
    for text in renders[:50]:
        parse(text)
    _, samples = parse(r.render())
    total = n_threads * per_thread
    assert _value(samples, "n_total", worker="0") + _value(samples, "n_total", worker="1") == total
    assert _value(samples, "v_count") == total
    assert _value(samples, "v_bucket", le="0.5") == total / 2

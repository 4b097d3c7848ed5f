"""A CI-sized soak: bench/soak.py for 12 s at half the measured maximum rate."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from bench.soak import main

pytestmark = pytest.mark.services

DURATION_S = 12


def test_short_soak_keeps_up_without_errors_or_growth(broker, redis_server, tmp_path: Path,  # type: ignore[no-untyped-def]
                                                      capsys: pytest.CaptureFixture[str]
                                                      ) -> None:
    out = tmp_path / "soak.json"
    code = main(["--duration", str(DURATION_S), "--burst", "800", "--users", "500",
                 "--items", "200", "--kafka-url", broker.url, "--redis-url", redis_server.url,
                 "--json", str(out), "--workdir", str(tmp_path)])
    printed = capsys.readouterr().out
    report = orjson.loads(out.read_bytes())
    summary, samples = report["summary"], report["samples"]
    print(printed)
    assert code == 0 and summary["ok"], summary
    assert "rss_mb" in printed.splitlines()[0] and '"rate_target"' in printed
    assert summary["worker_alive"] and summary["drained"] and summary["errors"] == 0
    assert summary["max_eps"] > 0 and summary["rate_target"] == pytest.approx(
        summary["max_eps"] / 2, rel=0.01)
    assert summary["rate_achieved"] == pytest.approx(summary["rate_target"], rel=0.15)
    assert len(samples) >= DURATION_S - 1 and all(s["rss_mb"] > 0 for s in samples)
    assert samples[-1]["lag"] == 0 and samples[-1]["covered"] == summary["events"]
    assert summary["rss_mb"]["growth_after_warmup"] < 64, summary["rss_mb"]

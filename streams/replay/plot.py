"""The replay's picture: HitRate@K over replay time, and the latency histogram."""

from __future__ import annotations

from pathlib import Path
from typing import Any

__all__ = ["plot_replay"]


def plot_replay(report: dict[str, Any], path: Path | str, *, hits: list[tuple[float, bool]]
                ) -> None:
    """Write a PNG: cumulative stream HitRate@K by event time share, latencies, progress."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2, ax3) = plt.subplots(1, 3, figsize=(15, 4))
    if hits:
        xs = [x for x, _ in hits]
        cum, total = [], 0
        for n, (_, hit) in enumerate(hits, start=1):
            total += hit
            cum.append(total / n)
        ax1.plot(xs, cum)
    ax1.set_title("stream HitRate@50 (cumulative)")
    ax1.set_xlabel("replay window (share of events)")
    lat = report.get("latencies_ms") or []
    if lat:
        ax2.hist(lat, bins=50)
    ax2.set_title("event -> recall latency (ms)")
    ax2.set_yscale("log")
    timeline = report.get("timeline", {})
    for name in ("produced", "applied"):
        points = timeline.get(name) or []
        if points:
            ax3.plot([p[0] for p in points], [p[1] for p in points], label=name)
    ax3.set_title("events produced vs applied (lag = gap)")
    ax3.set_xlabel("seconds")
    ax3.legend()
    fig.suptitle(f"nearline replay: {report.get('dataset', '')}")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)

"""`nearline up` / `down`: the embedded broker and Redis as background processes.

Their addresses and pids go to `<home>/services.json` (written atomically), where
`streams.settings.load_settings` finds them when NEARLINE_KAFKA_URL / NEARLINE_REDIS_URL
are unset.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path
from typing import Any

import orjson

from streams.embedded import EmbeddedBroker, EmbeddedRedis

__all__ = ["services_down", "services_status", "services_up"]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    try:  # a zombie child of nobody is not alive
        state = Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
        return state != "Z"
    except OSError:
        return True


def services_status(home: Path) -> dict[str, Any] | None:
    """The recorded services, with `alive` per process; None when none are recorded."""
    path = home / "services.json"
    if not path.is_file():
        return None
    info = orjson.loads(path.read_bytes())
    info["alive"] = {name: _alive(int(pid)) for name, pid in info["pids"].items()}
    return info


def services_up(home: Path) -> tuple[dict[str, Any], bool]:
    """Start both services unless they run already; (info, started_now)."""
    home.mkdir(parents=True, exist_ok=True)
    current = services_status(home)
    if current is not None and all(current["alive"].values()):
        return current, False
    if current is not None:
        services_down(home)  # a stale record: whatever is left goes
    broker = EmbeddedBroker().start(workdir=_dir(home / "broker"))
    try:
        redis = EmbeddedRedis().start(workdir=_dir(home / "redis"))
    except Exception:
        broker.stop()
        raise
    info = {"kafka_url": broker.url, "redis_url": redis.url,
            "pids": {"broker": broker.pid, "redis": redis.pid}, "started": time.time()}
    tmp = home / f".services.json.{os.getpid()}"
    tmp.write_bytes(orjson.dumps(info, option=orjson.OPT_INDENT_2))
    os.replace(tmp, home / "services.json")
    return {**info, "alive": {"broker": True, "redis": True}}, True


def services_down(home: Path, *, timeout: float = 5.0) -> list[str]:
    """Stop the recorded processes (SIGTERM, then SIGKILL) and forget them."""
    info = services_status(home)
    stopped: list[str] = []
    if info is None:
        return stopped
    for name, pid in info["pids"].items():
        if _stop(int(pid), timeout):
            stopped.append(name)
    (home / "services.json").unlink(missing_ok=True)
    return stopped


def _stop(pid: int, timeout: float) -> bool:
    if not _alive(pid):
        return False
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        _reap(pid)
        if not _alive(pid):
            return True
        time.sleep(0.05)
    os.kill(pid, signal.SIGKILL)
    _reap(pid)
    return True


def _reap(pid: int) -> None:
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:  # not our child: its parent (init) reaps it
        pass


def _dir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path

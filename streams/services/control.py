"""`nearline up` / `down`: the embedded broker and Redis as background processes.

Their addresses and pids go to `<home>/services.json` (written atomically), where
`streams.settings.load_settings` finds them when NEARLINE_KAFKA_URL / NEARLINE_REDIS_URL
are unset.
"""

from __future__ import annotations

import logging
import os
import signal
import time
from pathlib import Path
from typing import Any

import orjson

from diskio import write_atomic
from streams.errors import ServiceError
from streams.services.embedded import EmbeddedBroker, EmbeddedRedis

logger = logging.getLogger(__name__)

__all__ = ["services_down", "services_status", "services_up"]


def _start_time(pid: int | None) -> int | None:
    """The process's start time in clock ticks since boot (None where /proc is missing, or
    for a process that never started)."""
    if pid is None:
        return None
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return int(fields[19])  # field 22 of proc(5); fields[0] is field 3


def _alive(pid: int, started: int | None = None) -> bool:
    """True when `pid` runs and, if its start time was recorded, is the same process."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else: not one we started
        return False
    try:  # a zombie child is not alive
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return True
    # a pid the kernel gave to a newer process after ours died is not ours
    return state != "Z" and (started is None or _start_time(pid) in (None, started))


def services_status(home: Path) -> dict[str, Any] | None:
    """The recorded services, with `alive` per process; None when none are recorded."""
    path = home / "services.json"
    if not path.is_file():
        return None
    try:
        info = orjson.loads(path.read_bytes())
        pids = {name: int(pid) for name, pid in info["pids"].items()}
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError) as exc:
        raise ServiceError(f"{path} is not a services file ({exc}): remove it") from exc
    starts = info.get("start_times") or {}
    info["alive"] = {name: _alive(pid, starts.get(name)) for name, pid in pids.items()}
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
    pids = {"broker": broker.pid, "redis": redis.pid}
    info = {"kafka_url": broker.url, "redis_url": redis.url, "pids": pids,
            "start_times": {name: _start_time(pid) for name, pid in pids.items()},
            "started": time.time()}
    write_atomic(home / "services.json", orjson.dumps(info, option=orjson.OPT_INDENT_2))
    logger.info("services up: kafka %s, redis %s", broker.url, redis.url)
    return {**info, "alive": {"broker": True, "redis": True}}, True


def services_down(home: Path, *, timeout: float = 5.0) -> list[str]:
    """Stop the recorded processes (SIGTERM, then SIGKILL) and forget them."""
    info = services_status(home)
    stopped: list[str] = []
    if info is None:
        return stopped
    for name, pid in info["pids"].items():
        if info["alive"][name] and _stop(int(pid), timeout):
            stopped.append(name)
    (home / "services.json").unlink(missing_ok=True)
    return stopped


def _stop(pid: int, timeout: float) -> bool:
    """SIGTERM, SIGKILL after `timeout`; True when the process is gone."""
    if not _signal(pid, signal.SIGTERM):
        return False
    if _wait_gone(pid, timeout):
        return True
    logger.warning("pid %s ignored SIGTERM for %.1fs: SIGKILL", pid, timeout)
    _signal(pid, signal.SIGKILL)
    return _wait_gone(pid, 2.0)


def _signal(pid: int, sig: int) -> bool:
    # `up` starts each service in its own session: its process group also takes any helper
    try:
        if os.getpgid(pid) == pid:
            os.killpg(pid, sig)
        else:
            os.kill(pid, sig)
    except ProcessLookupError:
        return False
    return True


def _wait_gone(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while True:
        _reap(pid)
        if not _alive(pid):
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.05)


def _reap(pid: int) -> None:
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:  # not our child: its parent (init) reaps it
        pass


def _dir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path

"""`nearline services up / status / down` as separate processes (and the previous names,
`nearline up / status / down`), and the state file's edge cases."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from streams.services.control import services_down, services_status
from streams.settings import load_settings

pytestmark = pytest.mark.services


def _nearline(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "streams", *args], capture_output=True,
                          text=True, timeout=60, cwd=cwd)


def _answers(address: str) -> bool:
    host, port = address.rsplit(":", 1)
    try:
        socket.create_connection((host, int(port)), timeout=1).close()
    except OSError:
        return False
    return True


def _gone(pid: int, timeout: float = 5.0) -> bool:
    """True once `pid` has exited (a zombie counts as exited)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            return True
        if state == "Z":
            return True
        time.sleep(0.05)
    return False


def _record(home: Path, pids: dict[str, int], **extra: object) -> None:
    home.mkdir(parents=True, exist_ok=True)
    info = {"kafka_url": "127.0.0.1:1", "redis_url": "redis://127.0.0.1:2/0", "pids": pids,
            "started": time.time(), **extra}
    (home / "services.json").write_bytes(orjson.dumps(info))


@pytest.fixture()
def sleeper() -> Iterator[subprocess.Popen[bytes]]:
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"],
                            start_new_session=True)
    yield proc
    proc.kill()
    proc.wait()


def test_services_outlive_up_and_down_stops_them(tmp_path: Path) -> None:
    home = tmp_path / "home"
    up = _nearline("services", "up", "--home", str(home))
    assert up.returncode == 0 and "started" in up.stdout, up.stderr
    info = orjson.loads((home / "services.json").read_bytes())
    pids = info["pids"]
    try:
        redis_address = info["redis_url"].split("//")[1].split("/")[0]
        # the `up` process has exited: both services still answer
        assert _answers(info["kafka_url"]) and _answers(redis_address)
        again = _nearline("services", "up", "--home", str(home))
        assert again.returncode == 0 and "already running" in again.stdout
        assert orjson.loads((home / "services.json").read_bytes())["pids"] == pids
        status = _nearline("services", "status", "--home", str(home))
        assert status.returncode == 0 and status.stdout.count("running") == 2
        settings = load_settings(env={"NEARLINE_HOME": str(home)})
        assert (settings.kafka_url, settings.redis_url) == (info["kafka_url"], info["redis_url"])
    finally:
        down = _nearline("services", "down", "--home", str(home))
    assert down.returncode == 0 and "broker" in down.stdout and "redis" in down.stdout
    assert all(_gone(pid) for pid in pids.values())
    assert not _answers(info["kafka_url"]) and not _answers(redis_address)
    assert not (home / "services.json").exists()
    assert _nearline("services", "status", "--home", str(home)).returncode == 1


def test_up_with_the_default_relative_home(tmp_path: Path) -> None:
    up = _nearline("services", "up", "--home", ".nearline", cwd=tmp_path)  # the default: relative
    home = tmp_path / ".nearline"
    try:
        assert up.returncode == 0 and "started" in up.stdout, up.stdout + up.stderr
        info = orjson.loads((home / "services.json").read_bytes())
        assert _answers(info["redis_url"].split("//")[1].split("/")[0])
        assert (home / "redis" / "appendonlydir").is_dir()  # its data where it was told
    finally:
        services_down(home)


def test_a_stale_record_is_reported_and_replaced(tmp_path: Path) -> None:
    home = tmp_path / "home"
    dead = subprocess.Popen(["true"])
    dead.wait()
    _record(home, {"broker": dead.pid, "redis": dead.pid})
    status = _nearline("services", "status", "--home", str(home))
    assert status.returncode == 1 and status.stdout.count("stopped") == 2
    up = _nearline("services", "up", "--home", str(home))
    try:
        assert up.returncode == 0 and "started" in up.stdout, up.stderr
        info = orjson.loads((home / "services.json").read_bytes())
        assert dead.pid not in info["pids"].values()
        assert _answers(info["kafka_url"])
    finally:
        assert set(services_down(home)) == {"broker", "redis"}


def test_down_kills_what_ignores_sigterm(tmp_path: Path,
                                         caplog: pytest.LogCaptureFixture) -> None:
    stubborn = subprocess.Popen(
        [sys.executable, "-c", "import signal, sys, time\n"
         "signal.signal(signal.SIGTERM, signal.SIG_IGN)\nprint('ready', flush=True)\n"
         "time.sleep(60)"], stdout=subprocess.PIPE, start_new_session=True)
    try:
        assert stubborn.stdout is not None and stubborn.stdout.readline() == b"ready\n"
        _record(tmp_path, {"broker": stubborn.pid})
        started = time.monotonic()
        assert services_down(tmp_path, timeout=0.5) == ["broker"]
        assert 0.5 <= time.monotonic() - started < 5
        # down reaped its child itself, so the exit status is gone: the log tells SIGKILL
        assert _gone(stubborn.pid) and "SIGKILL" in caplog.text
        assert not (tmp_path / "services.json").exists()
    finally:
        stubborn.kill()
        stubborn.wait()


def test_a_reused_pid_is_left_alone(tmp_path: Path, sleeper: subprocess.Popen[bytes]) -> None:
    # the record names this pid, but a process that started at another time
    _record(tmp_path, {"broker": sleeper.pid}, start_times={"broker": 1})
    info = services_status(tmp_path)
    assert info is not None and info["alive"] == {"broker": False}
    assert services_down(tmp_path, timeout=0.5) == []
    assert sleeper.poll() is None
    assert not (tmp_path / "services.json").exists()


def test_a_matching_start_time_is_ours(tmp_path: Path, sleeper: subprocess.Popen[bytes]) -> None:
    start = int(Path(f"/proc/{sleeper.pid}/stat").read_text().rsplit(")", 1)[1].split()[19])
    _record(tmp_path, {"redis": sleeper.pid}, start_times={"redis": start})
    assert services_status(tmp_path)["alive"] == {"redis": True}  # type: ignore[index]
    assert services_down(tmp_path, timeout=2) == ["redis"]
    assert _gone(sleeper.pid)


def test_a_corrupt_record_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "services.json").write_text('{"pids": ')
    for command in ("status", "down", "up"):
        r = _nearline(command, "--home", str(tmp_path))
        assert r.returncode == 1, command
        assert "not a services file" in r.stderr and "Traceback" not in r.stderr
    assert os.listdir(tmp_path) == ["services.json"]  # nothing was started

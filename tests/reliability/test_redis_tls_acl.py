"""Redis reached as an ACL user and over TLS, both named only by the URL."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import time
from pathlib import Path

import pytest
import redis

from streams.services.embedded import free_port
from streams.state.connect import open_state_store
from streams.state.contract import StateConfig

pytestmark = pytest.mark.services


async def _round_trip(url: str) -> list[int]:
    store = open_state_store(url, config=StateConfig(prefix="sec"))
    try:
        applied = await store.apply_interactions([])
        assert applied == []
        assert await store.apply_interaction(event_id="e1", user_id="u", item_id="i", ts=1.0)
        [history] = await store.histories(["u"])
        return [len(history)] if history is not None else []
    finally:
        await store.close()


def test_acl_user_from_the_url(redis_server) -> None:  # type: ignore[no-untyped-def]
    admin = redis.Redis.from_url(redis_server.url)
    admin.acl_setuser("nearline-app", enabled=True, passwords=["+s3cret"],
                      keys=["sec:*"], commands=["+@all"])
    try:
        url = f"redis://nearline-app:s3cret@127.0.0.1:{redis_server.port}/0"
        assert asyncio.run(_round_trip(url)) == [1]
        bad = f"redis://nearline-app:wrong@127.0.0.1:{redis_server.port}/0"
        with pytest.raises(Exception, match=r"(?i)auth|password|WRONGPASS") as caught:
            asyncio.run(_round_trip(bad))
        assert "wrong" not in str(caught.value)
    finally:
        admin.acl_deluser("nearline-app")
        admin.close()


def _certificates(d: Path) -> None:
    def run(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=d, check=True, capture_output=True)
    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=test-ca",
        "-keyout", "ca.key", "-out", "ca.crt")
    run("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1", "-keyout",
        "server.key", "-out", "server.csr")
    (d / "san.ext").write_text("subjectAltName=IP:127.0.0.1\n")
    run("x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
        "-CAcreateserial", "-days", "1", "-extfile", "san.ext", "-out", "server.crt")


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command")
def test_tls_from_the_url(tmp_path: Path) -> None:
    _certificates(tmp_path)
    port = free_port()
    proc = subprocess.Popen(
        ["redis-server", "--port", "0", "--tls-port", str(port), "--bind", "127.0.0.1",
         "--tls-cert-file", "server.crt", "--tls-key-file", "server.key",
         "--tls-ca-cert-file", "ca.crt", "--tls-auth-clients", "no", "--save", "",
         "--appendonly", "no"], cwd=tmp_path, stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT)
    try:
        url = f"rediss://127.0.0.1:{port}/0?ssl_ca_certs={tmp_path / 'ca.crt'}"
        deadline = time.monotonic() + 10
        while True:
            try:
                assert asyncio.run(_round_trip(url)) == [1]
                break
            except (OSError, redis.ConnectionError, Exception):
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        plain = f"redis://127.0.0.1:{port}/0"  # no TLS: refused, never served in clear
        with pytest.raises(Exception):  # noqa: B017 - any connection failure will do
            asyncio.run(_round_trip(plain))
    finally:
        proc.terminate()
        proc.wait(10)

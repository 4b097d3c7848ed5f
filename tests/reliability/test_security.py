"""Security settings: Redis password in the URL, Kafka SASL/SSL passed through to both
Kafka clients, HTTP on loopback unless configured, and no secret in any log line."""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from faust.transport.drivers.aiokafka import credentials_to_aiokafka_auth
from kafka.admin import KafkaAdminClient

import streams.topics
from streams.services.embedded import EmbeddedRedis
from streams.settings import Settings, load_settings
from streams.topics import admin_options, ensure_topics
from streams.worker.app import faust_app
from tests.reliability.conftest import STREAM, Deployment, Worker

PASSWORD = "pw-S3cr3t-9f2c"
SYSTEM_CA = Path("/etc/ssl/certs/ca-certificates.crt")


def _settings(**kw: Any) -> Settings:
    return Settings(kafka_url="k1:9093,k2:9093", redis_url="redis://r:6379/0", **kw)


SASL = {"kafka_sasl_mechanism": "SCRAM-SHA-256", "kafka_sasl_username": "alice",
        "kafka_sasl_password": PASSWORD}


@pytest.mark.parametrize(("protocol", "sasl", "tls"), [
    ("PLAINTEXT", False, False), ("SSL", False, True), ("SASL_PLAINTEXT", True, False),
    ("SASL_SSL", True, True)])
def test_faust_app_hands_the_kafka_security_settings_to_aiokafka(protocol: str, sasl: bool,
                                                                 tls: bool) -> None:
    settings = _settings(kafka_security_protocol=protocol.lower(), **(SASL if sasl else {}))
    auth = credentials_to_aiokafka_auth(faust_app(settings).conf.broker_credentials)
    assert auth["security_protocol"] == protocol
    assert isinstance(auth.get("ssl_context"), ssl.SSLContext) is tls
    if tls:
        assert auth["ssl_context"].verify_mode == ssl.CERT_REQUIRED
        assert auth["ssl_context"].check_hostname
    if sasl:
        assert (auth["sasl_mechanism"], auth["sasl_plain_username"],
                auth["sasl_plain_password"]) == ("SCRAM-SHA-256", "alice", PASSWORD)
    else:
        assert "sasl_mechanism" not in auth


@pytest.mark.skipif(not SYSTEM_CA.is_file(), reason="no system CA bundle to load")
def test_a_ca_file_is_loaded_into_the_tls_context() -> None:
    settings = _settings(kafka_security_protocol="SSL", kafka_ssl_cafile=str(SYSTEM_CA))
    context = credentials_to_aiokafka_auth(faust_app(settings).conf.broker_credentials)[
        "ssl_context"]
    assert context.cert_store_stats()["x509_ca"] > 0
    with pytest.raises(FileNotFoundError):  # a wrong path fails at start, not at first use
        faust_app(_settings(kafka_security_protocol="SSL", kafka_ssl_cafile="/nonexistent.pem"))


def test_admin_client_gets_the_same_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = _settings(kafka_security_protocol="SASL_SSL", kafka_ssl_cafile=str(SYSTEM_CA),
                         **SASL)
    options = admin_options(settings)
    assert set(options) <= set(KafkaAdminClient.DEFAULT_CONFIG)  # names kafka-python knows
    assert options == {"bootstrap_servers": ["k1:9093", "k2:9093"],
                       "security_protocol": "SASL_SSL", "sasl_mechanism": "SCRAM-SHA-256",
                       "sasl_plain_username": "alice", "sasl_plain_password": PASSWORD,
                       "ssl_cafile": str(SYSTEM_CA)}
    assert set(admin_options(_settings())) == {"bootstrap_servers", "security_protocol"}

    seen: dict[str, Any] = {}

    class Admin:  # what ensure_topics really constructs
        def __init__(self, **kwargs: Any) -> None:
            seen.update(kwargs)

        def list_topics(self) -> list[str]:
            return settings.topics.all()

        def close(self) -> None:
            pass
    monkeypatch.setattr(streams.topics, "KafkaAdminClient", Admin)
    monkeypatch.setattr(streams.topics, "check_reachable", lambda s: None)  # k1, k2 are fake
    assert ensure_topics(settings) == []
    assert {k: seen[k] for k in options} == options


def test_secrets_come_from_the_environment_and_stay_out_of_repr() -> None:
    env = {"NEARLINE_KAFKA_URL": "k:9093", "NEARLINE_REDIS_URL": "redis://r:6379/0",
           "NEARLINE_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
           "NEARLINE_KAFKA_SASL_MECHANISM": "PLAIN", "NEARLINE_KAFKA_SASL_USERNAME": "alice",
           "NEARLINE_KAFKA_SASL_PASSWORD": PASSWORD}
    settings = load_settings(env)
    assert settings.kafka_sasl_password == PASSWORD and PASSWORD not in repr(settings)


def test_http_binds_to_loopback_unless_configured() -> None:
    assert Settings().web_host == "127.0.0.1"
    assert faust_app(_settings()).conf.web_bind == "127.0.0.1"
    assert faust_app(_settings(web_host="0.0.0.0")).conf.web_bind == "0.0.0.0"


# --- a worker against a Redis with a password -----------------------------------------

@pytest.fixture(scope="module")
def locked_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedRedis]:
    server = EmbeddedRedis(password=PASSWORD).start(workdir=tmp_path_factory.mktemp("locked"))
    yield server
    server.stop()


def _listening(port: int) -> set[str]:
    """Local addresses (hex, as in /proc/net/tcp) listening on `port`."""
    out = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            address, hex_port = local.rsplit(":", 1)
            if state == "0A" and int(hex_port, 16) == port:
                out.add(address)
    return out


@pytest.mark.services
def test_worker_with_the_password_works_and_never_logs_it(broker, locked_redis, tmp_path  # type: ignore[no-untyped-def]
                                                          ) -> None:
    assert PASSWORD in locked_redis.url
    d = Deployment(broker.url, locked_redis.url, tmp_path, log_json=1)
    try:
        w = d.worker("w1", args=["--loglevel", "debug"], assigned=d.settings.partitions)
        d.produce(STREAM.messages[:120])
        d.wait_applied(STREAM.messages[:120])
        assert _listening(int(w.env["NEARLINE_WEB_PORT"])) == {"0100007F"}  # 127.0.0.1 only
        assert w.stop() == 0, w.logs()
    finally:
        d.close()
    log = w.log.read_text()
    assert len(log.splitlines()) > 50 and PASSWORD not in log
    lines = [line for line in log.splitlines() if line.startswith("{")]
    assert lines and all(orjson.loads(line)["message"] is not None for line in lines)


@pytest.mark.services
@pytest.mark.parametrize("url_password", ["wrong-Pa55-77e1", None])
def test_worker_with_a_wrong_password_stops_with_a_clear_error(broker, locked_redis, tmp_path,  # type: ignore[no-untyped-def]
                                                               url_password) -> None:
    auth = f":{url_password}@" if url_password else ""
    url = locked_redis.url.replace(f":{PASSWORD}@", auth)
    worker = Worker(Deployment(broker.url, url, tmp_path).env, tmp_path / "w.log")
    with pytest.raises(RuntimeError, match="worker exited"):  # at start, before consuming
        worker.start(timeout=60)
    assert worker.proc is not None and worker.proc.returncode != 0
    log = worker.log.read_text()
    assert "cannot read the live version from Redis" in log, log[-2000:]
    assert "invalid username-password" in log if url_password else "authenticated" in log
    assert PASSWORD not in log and (url_password is None or url_password not in log)

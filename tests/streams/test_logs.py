"""Log lines never carry secrets; JSON logs are one object per line."""

from __future__ import annotations

import logging

import orjson

from streams.logs import configure_logging, redact


def test_redact_hides_passwords() -> None:
    assert redact("redis://app:s3cret@host:6379/0") == "redis://app:***@host:6379/0"
    assert redact("rediss://:s3cret@host") == "rediss://:***@host"
    assert redact("sasl password=hunter2 ok") == "sasl password=*** ok"
    assert redact("kafka://host:9092 plain") == "kafka://host:9092 plain"


def test_json_lines(capsys) -> None:  # type: ignore[no-untyped-def]
    configure_logging("info", json=True)
    logging.getLogger("nearline.test").info("connected to %s", "redis://u:pw@h:1/0")
    line = capsys.readouterr().err.strip().splitlines()[-1]
    entry = orjson.loads(line)
    assert entry["level"] == "info" and entry["logger"] == "nearline.test"
    assert "pw" not in entry["message"] and "***" in entry["message"]
    logging.getLogger().handlers.clear()

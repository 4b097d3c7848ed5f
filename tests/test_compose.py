"""docker-compose.yml is checked without a Docker engine: services, pins, health, settings."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import click
import yaml

from streams.cli.main import main
from streams.settings import TopicNames, environment_names

COMPOSE = Path(__file__).resolve().parents[1] / "docker-compose.yml"


def _compose() -> dict:  # type: ignore[type-arg]
    return yaml.safe_load(COMPOSE.read_text())


def test_services_images_and_healthchecks() -> None:
    services = _compose()["services"]
    assert {"kafka", "redis", "worker", "index-agent", "trainer"} <= set(services)
    for name, svc in services.items():
        image = svc.get("image", "")
        assert re.fullmatch(r"[\w./-]+:[\w.-]+", image), f"{name}: image {image!r} not pinned"
        assert not image.endswith(":latest"), f"{name}: pin a version, not latest"
    assert services["kafka"]["image"].startswith("apache/kafka:")
    assert services["redis"]["image"].startswith("redis:7")
    assert "--appendonly" in services["redis"]["command"]
    for name in ("kafka", "redis", "worker", "index-agent"):
        assert "healthcheck" in services[name], f"{name} has no healthcheck"
    assert services["worker"]["deploy"]["replicas"] == 2


def test_environment_names_are_settings() -> None:
    known = set(environment_names())
    used = set(re.findall(r"\bNEARLINE_[A-Z_]+\b", COMPOSE.read_text()))
    assert used, "the compose file configures nearline through NEARLINE_* variables"
    assert used <= known, f"unknown settings: {sorted(used - known)}"


def _check(argv: list[str]) -> None:
    """Parse a nearline command line against the real CLI (nothing runs)."""
    group: click.Group = main
    while True:
        command = group.get_command(click.Context(group), argv[0])
        assert command is not None, f"no such command: nearline {' '.join(argv)}"
        argv = argv[1:]
        if not isinstance(command, click.Group):
            break
        group = command
    command.make_context(command.name or "", list(argv), resilient_parsing=False)


def test_service_commands_exist(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    # paths name container volumes: check the options, not whether the files exist here
    monkeypatch.setattr(click.Path, "convert", lambda self, value, param, ctx: value)
    services = _compose()["services"]
    checked = 0
    for name, svc in services.items():
        if not svc.get("image", "").startswith("nearline:"):
            continue
        command = svc["command"]
        if svc.get("entrypoint"):  # a shell line chaining nearline commands
            for part in " ".join(command).split("&&"):
                words = shlex.split(part)
                assert words[0] == "nearline", f"{name}: {part!r}"
                _check(words[1:])
                checked += 1
        else:
            _check(list(command))
            checked += 1
    assert checked >= 5


def test_topics_created_are_the_topics_workers_use() -> None:
    # the broker does not auto-create topics: every topic the settings name must be made
    services = _compose()["services"]
    script = " ".join(services["kafka-topics"]["command"])
    created = set(re.findall(r"--topic (nearline\.[\w.-]+)", script))
    for names in re.findall(r"for \w+ in ([^;]+);", script):
        created |= set(names.split())
    assert set(TopicNames().all()) <= created, sorted(set(TopicNames().all()) - created)
    env = _compose()["x-nearline-env"]
    loop_partitions = re.search(r"--topic \$\$t --partitions (\d+)", script)
    assert loop_partitions and loop_partitions.group(1) == env["NEARLINE_PARTITIONS"]


def test_dockerfile_runs_a_real_command() -> None:
    text = (COMPOSE.parent / "Dockerfile").read_text()
    entrypoint = re.search(r"^ENTRYPOINT (\[.*\])$", text, re.M)
    cmd = re.search(r"^CMD (\[.*\])$", text, re.M)
    assert entrypoint and yaml.safe_load(entrypoint.group(1)) == ["nearline"]
    assert cmd
    _check(yaml.safe_load(cmd.group(1)))
    used = set(re.findall(r"\bNEARLINE_[A-Z_]+\b", text))
    assert used <= set(environment_names()), sorted(used - set(environment_names()))
    assert re.search(r"^FROM python:3\.11[\w.-]*$", text, re.M), "pin the Python base image"

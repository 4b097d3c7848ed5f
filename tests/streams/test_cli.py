"""The `nearline` command line: every command's help, the data and model commands."""

from __future__ import annotations

import socket
from pathlib import Path

import orjson
import pytest
from click.testing import CliRunner

from streams.cli import main


def _commands(group=main, prefix=()):  # type: ignore[no-untyped-def]
    for name, command in group.commands.items():
        yield (*prefix, name)
        if hasattr(command, "commands"):
            yield from _commands(command, (*prefix, name))


@pytest.mark.parametrize("path", list(_commands()), ids=" ".join)
def test_every_command_has_help_with_an_example(path: tuple[str, ...]) -> None:
    result = CliRunner().invoke(main, [*path, "--help"])
    assert result.exit_code == 0, result.output
    assert "Example" in result.output or path == ("index",)


def test_simulate_train_evaluate_index(tmp_path: Path) -> None:
    runner = CliRunner()
    events = tmp_path / "market.jsonl"
    r = runner.invoke(main, ["simulate", "--out", str(events), "--days", "20", "--stores", "20",
                             "--skus", "60", "--seed", "2"])
    assert r.exit_code == 0, r.output
    assert events.stat().st_size > 0
    r = runner.invoke(main, ["train", "--dataset", "jsonl", "--data", str(events), "--out",
                             str(tmp_path / "runs"), "--epochs", "2", "--no-progress"])
    assert r.exit_code == 0, r.output
    [checkpoint] = list((tmp_path / "runs").iterdir())
    assert (checkpoint / "neighbours.json").is_file()
    r = runner.invoke(main, ["evaluate", "--dataset", "jsonl", "--data", str(events),
                             "--checkpoint", str(checkpoint), "--k", "10,50",
                             "--json", str(tmp_path / "eval.json")])
    assert r.exit_code == 0, r.output
    report = orjson.loads((tmp_path / "eval.json").read_bytes())
    assert {"popularity", "repeat", "itemcf", "two_tower", "nearline"} <= set(report["systems"])
    assert report["checkpoint"] == checkpoint.name
    r = runner.invoke(main, ["index", "build", "--checkpoint", str(checkpoint), "--out",
                             str(tmp_path / "index")])
    assert r.exit_code == 0, r.output
    r = runner.invoke(main, ["index", "info", str(tmp_path / "index")])
    assert r.exit_code == 0 and checkpoint.name in r.output


def test_bad_input_is_a_clear_error(tmp_path: Path) -> None:
    runner = CliRunner()
    bad = tmp_path / "bad.jsonl"
    bad.write_text("not json\n")
    r = runner.invoke(main, ["train", "--dataset", "retail-csv", "--data", str(bad), "--out",
                             str(tmp_path / "runs")])
    assert r.exit_code == 1 and "column mapping" in r.output and "Traceback" not in r.output
    r = runner.invoke(main, ["evaluate", "--dataset", "jsonl", "--data", str(bad),
                             "--k", "x"])
    assert r.exit_code == 2
    r = runner.invoke(main, ["index", "build", "--checkpoint", str(tmp_path), "--out",
                             str(tmp_path / "i")])
    assert r.exit_code == 1 and "manifest" in r.output


def test_up_status_down(tmp_path: Path) -> None:
    runner = CliRunner()
    home = str(tmp_path / "home")
    r = runner.invoke(main, ["up", "--home", home])
    assert r.exit_code == 0 and "started" in r.output, r.output
    try:
        info = orjson.loads((Path(home) / "services.json").read_bytes())
        for url in (info["kafka_url"], info["redis_url"].split("//")[1].split("/")[0]):
            host, port = url.rsplit(":", 1)
            socket.create_connection((host, int(port)), timeout=2).close()
        again = runner.invoke(main, ["up", "--home", home])
        assert "already running" in again.output
        assert runner.invoke(main, ["status", "--home", home]).exit_code == 0
    finally:
        r = runner.invoke(main, ["down", "--home", home])
    assert "broker" in r.output and "redis" in r.output
    assert not (Path(home) / "services.json").exists()
    assert runner.invoke(main, ["status", "--home", home]).exit_code == 1

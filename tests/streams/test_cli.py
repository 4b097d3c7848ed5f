"""The `nearline` command line: every command's help, the data and model commands.

`nearline up / down / status` run as real processes in test_services.py.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import click
import orjson
import pytest
from click.testing import CliRunner

from streams.cli import COMMANDS, main
from towers.datasets.registry import load_dataset


def _commands(group: click.Group = main, prefix: tuple[str, ...] = ()):  # type: ignore[no-untyped-def]
    ctx = click.Context(group)
    for name in group.list_commands(ctx):
        command = group.get_command(ctx, name)
        assert command is not None and command.name == name, name
        yield (*prefix, name)
        if isinstance(command, click.Group):
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
                             str(tmp_path / "runs"), "--epochs", "2", "--max-seconds", "20",
                             "--no-progress"])
    assert r.exit_code == 0, r.output
    [checkpoint] = list((tmp_path / "runs").iterdir())
    assert (checkpoint / "neighbours.json").is_file()
    assert f"checkpoint {checkpoint.name} in {checkpoint}" in r.output
    assert '"train_s"' in r.output
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
    assert r.exit_code == 0, r.output
    sidecar = orjson.loads(r.output)
    assert sidecar["version"] == checkpoint.name == sidecar["checkpoint"]
    assert sidecar["items"] == len(load_dataset("jsonl", events).catalogue())
    r = runner.invoke(main, ["evaluate", "--dataset", "jsonl", "--data", str(events),
                             "--k", "10", "--protocol", "offline"])
    assert r.exit_code == 0, r.output
    assert "popularity" in r.output and "two_tower" not in r.output


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


def test_invalid_options_exit_2_without_a_traceback(tmp_path: Path) -> None:
    runner = CliRunner()
    for args in (["simulate", "--out", str(tmp_path / "m.jsonl"), "--days", "0"],
                 ["train", "--dataset", "jsonl", "--out", str(tmp_path), "--epochs", "0"],
                 ["train", "--dataset", "jsonl", "--out", str(tmp_path), "--max-seconds", "-1"],
                 ["train", "--dataset", "nope", "--out", str(tmp_path)],
                 ["evaluate", "--dataset", "jsonl", "--protocol", "online"],
                 ["nosuchcommand"]):
        r = runner.invoke(main, args)
        # an uncaught exception would be exit code 1 with the exception kept
        assert r.exit_code == 2 and "Error: " in r.output, (args, r.output)


def test_version_and_python_dash_m() -> None:
    r = CliRunner().invoke(main, ["--version"])
    assert r.exit_code == 0 and r.output.startswith("nearline, version ")
    run = subprocess.run([sys.executable, "-m", "streams", "--help"], capture_output=True,
                         text=True, timeout=60)
    assert run.returncode == 0 and run.stdout.startswith("Usage: nearline ")
    assert all(name in run.stdout for name in COMMANDS)


def test_service_commands_load_without_torch_or_faiss(tmp_path: Path) -> None:
    code = ("import sys; from click.testing import CliRunner; from streams.cli import main; "
            f"r = CliRunner().invoke(main, ['status', '--home', {str(tmp_path)!r}]); "
            "print(r.exit_code, sorted({'torch', 'faiss', 'faust'} & set(sys.modules)))")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=60)
    assert run.stdout.split(None, 1) == ["1", "[]\n"], run.stdout + run.stderr

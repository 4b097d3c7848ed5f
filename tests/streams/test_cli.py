"""The `nearline` command line: every command's help, the data and model commands, and
every command's answer when the broker and Redis are down.

`nearline services up / down / status` run as real processes in test_services.py.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import click
import orjson
import pytest
from click.testing import CliRunner

from streams.cli.main import ALIASES, COMMANDS, main
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
    assert "Example" in result.output


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
    recipe = orjson.loads((checkpoint / "recipe.json").read_bytes())
    # the item-to-item table goes with a recipe that serves it
    assert (checkpoint / "neighbours.json").is_file() == (recipe["repurchase"] is None)
    assert f"checkpoint {checkpoint.name} in {checkpoint}" in r.output
    assert '"train_s"' in r.output
    r = runner.invoke(main, ["evaluate", "--dataset", "jsonl", "--data", str(events),
                             "--checkpoint", str(checkpoint), "--k", "10,50",
                             "--json", str(tmp_path / "eval.json")])
    assert r.exit_code == 0, r.output
    report = orjson.loads((tmp_path / "eval.json").read_bytes())
    assert {"popularity", "repeat", "itemcf", "two_tower", "nearline"} <= set(report["systems"])
    assert report["checkpoint"] == checkpoint.name
    assert report["recipe"] == recipe["chosen_on"]
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
    listed = {line.split()[0] for line in run.stdout.split("Commands:")[1].splitlines()
              if line.strip()}
    assert not listed & set(ALIASES)  # the previous names work but are not advertised


@pytest.mark.parametrize("alias", sorted(ALIASES))
def test_previous_names_still_run(alias: str) -> None:
    r = CliRunner().invoke(main, [alias, "--help"])
    assert r.exit_code == 0 and f"Usage: main {alias}" in r.output, r.output


@pytest.mark.parametrize("args", [["services", "status"], ["model", "versions"]],
                         ids=" ".join)
def test_light_commands_load_neither_torch_faiss_nor_faust(tmp_path: Path,
                                                           args: list[str]) -> None:
    argv = [*args, "--home", str(tmp_path)]
    if args[0] == "model":  # nothing listens there: the command fails after its imports
        argv += ["--kafka-url", "127.0.0.1:1", "--redis-url", "redis://127.0.0.1:1/0"]
    code = ("import sys; from click.testing import CliRunner; from streams.cli.main import main; "
            f"r = CliRunner().invoke(main, {argv!r}); "
            "print(r.exit_code, sorted({'torch', 'faiss', 'faust'} & set(sys.modules)))")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=60)
    assert run.stdout.split(None, 1) == ["1", "[]\n"], run.stdout + run.stderr


def test_publish_builds_the_index_before_announcing(broker, redis_server, tmp_path: Path,  # type: ignore[no-untyped-def]
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    from kafka import KafkaConsumer, TopicPartition

    from bench.synthetic_model import synthetic_dataset, untrained_checkpoint
    from index import load_index
    from streams.models.store import CheckpointStore

    store = CheckpointStore(tmp_path / "store")
    topic = f"checkpoints-{tmp_path.name}"
    for name, value in {"NEARLINE_KAFKA_URL": broker.url, "NEARLINE_REDIS_URL": redis_server.url,
                        "NEARLINE_CHECKPOINT_STORE": str(store.root),
                        "NEARLINE_TOPIC_CHECKPOINTS": topic, "NEARLINE_INDEX_BACKEND": "hnsw",
                        "NEARLINE_STATE_PREFIX": f"cli-{tmp_path.name}"}.items():
        monkeypatch.setenv(name, value)
    data = synthetic_dataset(n_items=60, n_users=20, n_events=400, seed=4)
    here, there = (untrained_checkpoint(tmp_path / "runs", data, seed=s, version=v, dim=16)
                   for s, v in ((1, "cli-built-here"), (2, "cli-built-there")))
    runner = CliRunner()
    r = runner.invoke(main, ["publish", str(here)])
    assert r.exit_code == 0, r.output
    assert "built the index of cli-built-here: 60 items" in r.output
    assert store.is_ready("cli-built-here")  # before any index agent has run
    assert load_index(store.index_dir("cli-built-here")).backend == "hnsw"  # the setting's
    r = runner.invoke(main, ["publish", str(there), "--no-build-index"])
    assert r.exit_code == 0, r.output
    assert not store.is_ready("cli-built-there") and "built the index" not in r.output
    consumer = KafkaConsumer(bootstrap_servers=broker.url, auto_offset_reset="earliest",
                             enable_auto_commit=False)
    consumer.assign([TopicPartition(topic, 0)])
    notes: list[dict] = []  # type: ignore[type-arg]
    for _ in range(20):
        for batch in consumer.poll(500).values():
            notes += [orjson.loads(m.value) for m in batch]
        if len(notes) >= 2:
            break
    consumer.close()
    assert [n["version"] for n in notes] == ["cli-built-here", "cli-built-there"]

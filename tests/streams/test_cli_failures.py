"""Every command, run as a user runs it, with the broker and Redis down, or with a missing
or corrupt checkpoint, a bad data path or bad `--columns`: exit code 1, one line on stderr
that says what is wrong, and no traceback."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from bench.synthetic_model import synthetic_dataset, untrained_checkpoint

VERSION = "cli-down-20260101T000000Z-0123abcd"


def _closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, str], dict[str, Path]]:
    root = tmp_path_factory.mktemp("down")
    data = synthetic_dataset(n_items=40, n_users=10, n_events=200, seed=3)
    good = untrained_checkpoint(root / "runs", data, seed=1, version=VERSION, dim=8)
    corrupt = root / "corrupt"
    corrupt.mkdir()
    (corrupt / "manifest.json").write_text("{not json")
    ready = root / "home" / "checkpoints" / VERSION
    ready.mkdir(parents=True)
    (ready / "READY").write_text("1\n")  # a ready version: rollback gets as far as Redis
    bad_csv = root / "sales.csv"
    bad_csv.write_text("customer,sku,day\nc1,s1,2024-01-01\n")
    env = {**os.environ, "NEARLINE_KAFKA_URL": f"127.0.0.1:{_closed_port()}",
           "NEARLINE_REDIS_URL": f"redis://127.0.0.1:{_closed_port()}/0",
           "NEARLINE_HOME": str(root / "home")}
    return env, {"good": good, "corrupt": corrupt, "csv": bad_csv, "root": root}


def _cases(p: dict[str, Path]) -> list[tuple[list[str], str]]:
    """(arguments, what the line must name)."""
    market = ["--dataset", "market"]
    return [
        (["model", "versions"], "Redis"),
        (["versions"], "Redis"),
        (["model", "rollback", VERSION], "Redis"),
        (["rollback", VERSION], "Redis"),
        (["model", "publish", "--checkpoint", str(p["good"]), "--no-build-index"], "Kafka"),
        (["publish", str(p["good"]), "--no-build-index"], "Kafka"),
        (["worker", "--web-port", "0"], "Kafka"),
        (["replay", *market, "--limit", "20"], "Kafka"),
        (["load", *market, "--max-rate", "10", "--duration", "1"], "Kafka"),
        (["model", "publish", "--checkpoint", str(p["corrupt"])], "manifest.json"),
        (["model", "publish", "--checkpoint", str(p["root"] / "missing")],
         "not a checkpoint directory"),
        (["evaluate", *market, "--checkpoint", str(p["corrupt"])], "manifest.json"),
        (["index", "build", "--checkpoint", str(p["root"] / "missing"), "--out",
          str(p["root"] / "idx")], "not a checkpoint directory"),
        (["index", "info", str(p["root"] / "missing")], "no saved index"),
        (["evaluate", "--dataset", "jsonl", "--data", str(p["root"] / "missing.jsonl")],
         "no such file"),
        (["train", "--dataset", "retail-csv", "--data", str(p["csv"]), "--columns",
          "user=customer,item=sku", "--out", str(p["root"] / "runs2")], "column mapping"),
    ]


def test_every_known_failure_is_one_line(setup: tuple[dict[str, str], dict[str, Path]]
                                         ) -> None:
    env, paths = setup
    cases = _cases(paths)
    runs = [subprocess.Popen([sys.executable, "-m", "streams", *args], env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             cwd=paths["root"]) for args, _ in cases]
    wrong = []
    for (args, names), run in zip(cases, runs, strict=True):
        _, err = run.communicate(timeout=120)
        lines = err.strip().splitlines()
        if run.returncode != 1 or len(lines) != 1 or "Traceback" in err \
                or names not in lines[0] or not lines[0].startswith("Error: "):
            wrong.append(f"{' '.join(args)} -> exit {run.returncode}, stderr:\n{err}")
    assert not wrong, "\n\n".join(wrong)


def test_services_down_says_what_to_do(setup: tuple[dict[str, str], dict[str, Path]]) -> None:
    env, paths = setup
    run = subprocess.run([sys.executable, "-m", "streams", "model", "versions"], env=env,
                         capture_output=True, text=True, timeout=60, cwd=paths["root"])
    assert "nearline services up" in run.stderr and "--redis-url" in run.stderr

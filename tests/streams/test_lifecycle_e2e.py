"""Publishing checkpoints to running workers: swaps, rejections, restarts."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import orjson
import pytest

from bench.synthetic_model import synthetic_dataset, untrained_checkpoint
from diskio import sha256_file
from streams.cli.models import announce
from streams.models.store import CheckpointStore
from streams.settings import load_settings
from tests.streams.harness import WorkerProcess, consume, deployment_env, get_json, produce

pytestmark = pytest.mark.services


def _wait(check, timeout: float = 60.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.2)


def _rehash(path: Path) -> None:
    manifest = orjson.loads((path / "manifest.json").read_bytes())
    manifest["files"] = {name: sha256_file(path / name) for name in manifest["files"]}
    (path / "manifest.json").write_bytes(orjson.dumps(manifest))


def _corrupt(source: Path, store: CheckpointStore, version: str, how: str) -> None:
    """Put a broken copy of `source` into the store under `version`, as a bad publisher would."""
    target = store.checkpoint_dir(version)
    shutil.copytree(source, target)
    manifest = orjson.loads((target / "manifest.json").read_bytes())
    manifest["version"] = version
    config = orjson.loads((target / "config.json").read_bytes())
    config["version"] = version
    if how == "wrong_dimension":
        config["tower"]["dim"] = config["tower"]["dim"] * 2
    (target / "config.json").write_bytes(orjson.dumps(config))
    (target / "manifest.json").write_bytes(orjson.dumps(manifest))
    weights = target / "weights.safetensors"
    if how == "truncated":
        weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    elif how == "pickle":
        marker = store.root / "PWNED"
        payload = (b"cos\nsystem\n(S'touch " + str(marker).encode() + b"'\ntR.")
        weights.write_bytes(payload)
    _rehash(target)
    if how == "bad_hash":
        weights.write_bytes(weights.read_bytes()[:-8] + b"\x00" * 8)


def test_publish_swap_reject_and_restart(broker, redis_server, tmp_path) -> None:  # type: ignore[no-untyped-def]
    store_root = tmp_path / "store"
    env = deployment_env(broker.url, redis_server.url, tmp_path,
                         checkpoint_store=store_root)
    settings = load_settings(env)
    data = synthetic_dataset(n_items=400, n_users=60, n_events=3000, seed=1)
    ckpt_a = untrained_checkpoint(tmp_path / "runs", data, seed=1, version="lc-a")
    ckpt_b = untrained_checkpoint(tmp_path / "runs", data, seed=2, version="lc-b")
    store = CheckpointStore(store_root)

    workers = [WorkerProcess({**env, "NEARLINE_WEB_PORT": str(port)},
                             tmp_path / f"w{j}.log").start()
               for j, port in enumerate((env["NEARLINE_WEB_PORT"], _other_port()))]
    try:
        def on(version: str) -> bool:
            return all(get_json(f"{w.web}/version")[1]["model_version"] == version
                       for w in workers)

        for version, ckpt in (("lc-a", ckpt_a), ("lc-b", ckpt_b)):
            store.publish(ckpt)
            announce(settings, {"kind": "published", "version": version,
                                "path": str(store.checkpoint_dir(version))})
            _wait(lambda v=version: on(v), 90)
            events = [(f"u{j}".encode(), orjson.dumps({
                "event_id": f"{version}-{j}", "user_id": f"u{j % 7}", "item_id": f"i{j}",
                "type": "purchase", "ts": time.time()})) for j in range(30)]
            produce(broker.url, env["NEARLINE_TOPIC_INTERACTIONS"], events)

        def lists(records):  # type: ignore[no-untyped-def]
            return [orjson.loads(r.value) for r in records]

        records = consume(broker.url, env["NEARLINE_TOPIC_RECALLS"], partitions=2,
                          done=lambda rs: sum(x["last_event_id"].startswith("lc-b")
                                              for x in lists(rs)) >= 7)
        got = lists(records)
        assert {x["version"] for x in got} == {"lc-a", "lc-b"}
        # lists computed from B events never come from A, and a user never goes back
        assert all(x["version"] == "lc-b" for x in got if x["last_event_id"].startswith("lc-b"))
        last: dict[str, str] = {}
        for x in got:
            assert not (last.get(x["user_id"]) == "lc-b" and x["version"] == "lc-a")
            last[x["user_id"]] = x["version"]

        for how in ("bad_hash", "wrong_dimension", "truncated", "pickle"):
            version = f"lc-bad-{how.replace('_', '-')}"
            _corrupt(ckpt_b, store, version, how)
            announce(settings, {"kind": "published", "version": version,
                                "path": str(store.checkpoint_dir(version))})
            _wait(lambda v=version: store.rejection(v) is not None, 60)
            assert on("lc-b")
        assert not (store_root / "PWNED").exists()
        status, body = get_json(f"{workers[0].web}/recall/u1?k=5")
        assert status == 200 and body["version"] == "lc-b"
        # every list's user embedding is cached under its version, whichever worker made it
        for user in ("u1", "u2"):
            status, body = get_json(f"{workers[0].web}/embedding/{user}")
            assert status == 200 and body["version"] == "lc-b", body
            assert abs(sum(x * x for x in body["vector"]) - 1.0) < 1e-4  # L2-normalised
        assert get_json(f"{workers[0].web}/embedding/nobody")[0] == 404

        workers[1].stop()
        workers[1].start()
        assert get_json(f"{workers[1].web}/version")[1]["model_version"] == "lc-b"
    finally:
        for w in workers:
            w.stop()


def _other_port() -> str:
    from streams.services.embedded import free_port

    return str(free_port())

"""Hostile checkpoints and index files on the serving side: the index builder rejects
them with a reason, the live-version watcher refuses to swap to them, nothing is executed
and the live version keeps serving.

(load_checkpoint / load_index on their own: tests/towers/test_checkpoint.py and
tests/index/test_store.py; a worker rejecting damaged weights: test_lifecycle_e2e.py.)
"""

from __future__ import annotations

import asyncio
import pickle
import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import orjson
import pytest

from bench.synthetic_model import synthetic_dataset, untrained_checkpoint
from diskio import sha256_file
from index import IndexConfig, IndexFileError, build_index, load_index, save_index
from index.config import BACKENDS
from streams.errors import SettingsError
from streams.models.lifecycle import IndexBuilder, load_live_model
from streams.models.store import CheckpointStore
from streams.recall.two_tower import TowerBundle
from streams.settings import INDEX_BACKENDS, load_settings
from streams.state.memory_store import InMemoryUserStateStore
from streams.worker.engine import RecallEngine
from streams.worker.watcher import LiveVersionWatcher
from towers.errors import CheckpointError

GOOD = "good-a"


class Marker:
    """Unpickling this creates a file: the proof that something was executed."""

    path = Path("/tmp/nearline-reliability-pwned")

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (Path.touch, (self.path,))


@dataclass
class Live:
    store: CheckpointStore
    state: InMemoryUserStateStore
    builder: IndexBuilder
    watcher: LiveVersionWatcher
    engine: RecallEngine
    rejected: list[tuple[str, str]] = field(default_factory=list)

    def live_version(self) -> str | None:
        return asyncio.run(self.state.live_version())


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    data = synthetic_dataset(n_items=80, n_users=30, n_events=600, seed=3)
    return untrained_checkpoint(tmp_path_factory.mktemp("runs"), data, seed=3, version=GOOD,
                                dim=16)


@pytest.fixture()
def live(source: Path, tmp_path: Path) -> Live:
    """A store whose version good-a is built, live, and served by an engine."""
    Marker.path.unlink(missing_ok=True)
    store = CheckpointStore(tmp_path / "store")
    state = InMemoryUserStateStore()
    rejected: list[tuple[str, str]] = []
    builder = IndexBuilder(store, state, on_rejected=lambda v, r: rejected.append((v, r)))
    assert store.publish(source) == GOOD
    assert asyncio.run(builder.build(GOOD))
    engine = RecallEngine(state, board=None)  # type: ignore[arg-type]  # no recall here
    watcher = LiveVersionWatcher(engine, store)
    assert asyncio.run(watcher.check()) and engine.model is not None
    return Live(store, state, builder, watcher, engine, rejected)


def _rehash_checkpoint(path: Path) -> None:
    manifest = orjson.loads((path / "manifest.json").read_bytes())
    manifest["files"] = {n: sha256_file(path / n) if (path / n).is_file() else h
                         for n, h in manifest["files"].items()}
    (path / "manifest.json").write_bytes(orjson.dumps(manifest))


def _rename(path: Path, version: str) -> None:
    for name in ("manifest.json", "config.json"):
        obj = orjson.loads((path / name).read_bytes())
        obj["version"] = version
        (path / name).write_bytes(orjson.dumps(obj))


def _edit_json(path: Path, change: Callable[[dict], None]) -> None:  # type: ignore[type-arg]
    obj = orjson.loads(path.read_bytes())
    change(obj)
    path.write_bytes(orjson.dumps(obj))


def _pickle_in(path: Path) -> None:
    path.write_bytes(pickle.dumps(Marker()))


# --- the index builder ---------------------------------------------------------------

def _set_dim(value: object) -> Callable[[Path], None]:
    return lambda p: _edit_json(p / "config.json",
                                lambda c: c["tower"].__setitem__("dim", value))


def _add_neighbours_pickle(p: Path) -> None:
    _pickle_in(p / "neighbours.json")
    _edit_json(p / "manifest.json", lambda m: m["files"].__setitem__("neighbours.json", ""))


BAD_CHECKPOINTS: dict[str, Callable[[Path], None]] = {
    "manifest names ../evil": lambda p: _edit_json(
        p / "manifest.json", lambda m: m["files"].__setitem__("../evil", "0" * 64)),
    "neighbours.json is a pickle": _add_neighbours_pickle,
    "items.json is not JSON": lambda p: (p / "items.json").write_bytes(b"\x80\x04garbage"),
    "weights are a pickle": lambda p: _pickle_in(p / "weights.safetensors"),
    "config dim is negative": _set_dim(-16),
    "config dim is a string": _set_dim("16"),
}


@pytest.mark.parametrize("how", list(BAD_CHECKPOINTS))
def test_index_builder_rejects_a_damaged_checkpoint(live: Live, source: Path, how: str) -> None:
    version = "bad-" + how.split()[0].replace(".", "-")
    target = live.store.checkpoint_dir(version)
    shutil.copytree(source, target)
    _rename(target, version)
    BAD_CHECKPOINTS[how](target)
    _rehash_checkpoint(target)  # the damage is all that is wrong: the hashes match
    assert asyncio.run(live.builder.build(version)) is False
    reason = live.store.rejection(version)
    assert reason and live.rejected == [(version, reason)]
    assert not live.store.is_ready(version)
    assert live.live_version() == GOOD
    assert asyncio.run(live.watcher.check()) is False and live.engine.model.version == GOOD
    assert not Marker.path.exists()


def test_index_builder_builds_the_configured_backend(source: Path, tmp_path: Path) -> None:
    store = CheckpointStore(tmp_path / "store")
    state = InMemoryUserStateStore()
    builder = IndexBuilder(store, state, config=IndexConfig(backend="hnsw"))
    assert store.publish(source) == GOOD
    assert asyncio.run(builder.build(GOOD))
    assert load_index(store.index_dir(GOOD)).backend == "hnsw"
    assert asyncio.run(state.live_version()) == GOOD
    assert load_live_model(store, GOOD) is not None  # the workers load what it built


def test_a_served_index_must_name_its_checkpoint(source: Path, tmp_path: Path) -> None:
    other = tmp_path / "good-b"
    shutil.copytree(source, other)
    _rename(other, "good-b")
    _rehash_checkpoint(other)
    save_index(TowerBundle.from_checkpoint(other).index, tmp_path / "index-b")
    served = TowerBundle.from_checkpoint(other, index_dir=tmp_path / "index-b")
    assert served.items is None and len(served.index) == 80  # the table is not parsed
    with pytest.raises(IndexFileError, match="holds version good-b, not good-a"):
        TowerBundle.from_checkpoint(source, index_dir=tmp_path / "index-b")
    # tagged with good-a's version but built from another checkpoint (or from none named)
    for built_from in ("good-b", ""):
        index = build_index([str(i) for i in range(80)], np.eye(80, 16, dtype=np.float32),
                            version=GOOD, checkpoint=built_from)
        shutil.rmtree(tmp_path / "index-x", ignore_errors=True)
        save_index(index, tmp_path / "index-x")
        with pytest.raises(CheckpointError, match="holds the embeddings of checkpoint"):
            TowerBundle.from_checkpoint(source, index_dir=tmp_path / "index-x")


def test_settings_reject_an_unknown_index_backend() -> None:
    with pytest.raises(SettingsError, match="NEARLINE_INDEX_BACKEND='annoy'"):
        load_settings(env={"NEARLINE_INDEX_BACKEND": "annoy", "NEARLINE_KAFKA_URL": "k:1",
                           "NEARLINE_REDIS_URL": "redis://r:1"})
    assert load_settings(env={"NEARLINE_INDEX_BACKEND": "ivf", "NEARLINE_KAFKA_URL": "k:1",
                              "NEARLINE_REDIS_URL": "redis://r:1"}).index_backend == "ivf"
    assert INDEX_BACKENDS == BACKENDS  # the settings' copy of the index's list


def test_index_builder_rejects_an_announced_path_traversal(live: Live) -> None:
    for version in ("../evil", "..", "a/../../evil", ""):
        assert asyncio.run(live.builder.build(version)) is False
    assert not (live.store.root.parent / "evil").exists()
    assert live.live_version() == GOOD


def test_publishing_a_damaged_checkpoint_copies_nothing(live: Live, source: Path,
                                                        tmp_path: Path) -> None:
    for how, damage in BAD_CHECKPOINTS.items():
        if how.startswith("neighbours"):
            continue  # the table is parsed by the builder only
        name = re.sub(r"\W+", "-", how)
        bad = Path(shutil.copytree(source, tmp_path / "incoming" / name))
        damage(bad)
        _rehash_checkpoint(bad)
        with pytest.raises(Exception, match=r"\w") as caught:
            live.store.publish(bad)
        assert type(caught.value).__name__ == "CheckpointError", how
    assert [v["version"] for v in live.store.versions()] == [GOOD]
    assert not Marker.path.exists()


# --- the live-version watcher ---------------------------------------------------------

def _rehash_index(path: Path) -> None:
    def change(sidecar: dict) -> None:  # type: ignore[type-arg]
        for entry in sidecar["files"].values():
            f = path / entry["name"]
            entry.update(bytes=f.stat().st_size, sha256=sha256_file(f))
        sidecar["id_map_sha256"] = sidecar["files"]["ids"]["sha256"]
    _edit_json(path / "index.json", change)


def _index_file(path: Path, name: str) -> Path:
    return path / orjson.loads((path / "index.json").read_bytes())["files"][name]["name"]


def _pickled_ids(p: Path) -> None:
    np.save(_index_file(p / "index", "ids"), np.array([Marker()], dtype=object),
            allow_pickle=True)


def _garbage_faiss(p: Path) -> None:
    f = _index_file(p / "index", "index")
    f.write_bytes(b"IxMp" + bytes(range(256)) * (f.stat().st_size // 256))


def _sidecar_escapes(p: Path) -> None:
    good = _index_file(p.parent / GOOD / "index", "index").name
    _edit_json(p / "index" / "index.json", lambda s: s["files"]["index"].__setitem__(
        "name", f"../../{GOOD}/index/{good}"))


BAD_VERSIONS: dict[str, Callable[[Path], None]] = {
    "index ids are a pickle": _pickled_ids,
    "index file is garbage": _garbage_faiss,
    "sidecar names a file of another version": _sidecar_escapes,
    "sidecar config is a string": lambda p: _edit_json(
        p / "index" / "index.json", lambda s: s.__setitem__("config", "exact")),
    "index of another version": lambda p: _edit_json(
        p / "index" / "index.json", lambda s: s.__setitem__("version", GOOD)),
    "weights are a pickle": lambda p: _pickle_in(p / "checkpoint" / "weights.safetensors"),
    "neighbours.json is a pickle": lambda p: _add_neighbours_pickle(p / "checkpoint"),
    "not ready": lambda p: (p / "READY").unlink(),
    "config dim is a string": lambda p: _set_dim("16")(p / "checkpoint"),
}


def _ready_copy(live: Live, version: str, damage: Callable[[Path], None]) -> None:
    """The good version copied under another name, made consistent, then damaged."""
    target = live.store.version_dir(version)
    shutil.copytree(live.store.version_dir(GOOD), target)
    _rename(target / "checkpoint", version)
    _edit_json(target / "index" / "index.json", lambda s: s.__setitem__("version", version))
    damage(target)
    _rehash_checkpoint(target / "checkpoint")
    _rehash_index(target / "index")


@pytest.mark.parametrize("how", list(BAD_VERSIONS))
def test_watcher_keeps_the_live_model_when_the_new_version_is_bad(live: Live, how: str
                                                                  ) -> None:
    version = "bad-" + "-".join(how.split()[:2]).replace(".", "-")
    _ready_copy(live, version, BAD_VERSIONS[how])
    before = live.engine.model
    asyncio.run(live.state.set_live_version(version))
    assert asyncio.run(live.watcher.check()) is False
    assert live.engine.model is before and version in live.watcher.failed
    assert asyncio.run(live.watcher.check()) is False  # not retried on every poll
    assert load_live_model(live.store, version) is None  # a restart serves without it
    assert not Marker.path.exists()


@pytest.mark.parametrize("version", ["../evil", "..", "no-such-version", "a" * 200])
def test_watcher_ignores_a_live_key_naming_no_valid_version(live: Live, version: str) -> None:
    before = live.engine.model
    asyncio.run(live.state.set_live_version(version))
    assert asyncio.run(live.watcher.check()) is False
    assert live.engine.model is before


def test_two_publishers_of_one_version_both_succeed(source: Path, tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """Another process commits the same version between our existence check and our rename:
    ours gives way to theirs instead of failing on a non-empty target."""
    import streams.models.store as store_module

    real_commit = store_module.commit_dir
    store = CheckpointStore(tmp_path / "store")

    def other_publisher_first(tmp: Path, final: Path) -> None:
        monkeypatch.setattr(store_module, "commit_dir", real_commit)
        assert CheckpointStore(store.root).publish(source) == final.parent.name
        real_commit(tmp, final)

    monkeypatch.setattr(store_module, "commit_dir", other_publisher_first)
    version = store.publish(source)
    assert store.checkpoint_dir(version).is_dir()
    assert not [p for p in store.version_dir(version).iterdir() if p.name.startswith(".tmp")]

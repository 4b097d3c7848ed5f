from __future__ import annotations

import pickle
import shutil
from pathlib import Path

import numpy as np
import orjson
import pytest
import torch
from safetensors.torch import save_file

from towers.checkpoint import load_checkpoint, save_checkpoint
from towers.errors import CheckpointError
from towers.features import encode_items
from towers.train import TrainConfig, train

from .planted import planted_dataset

SMALL = {"dim": 16, "emb_dim": 16, "hidden": 32}


@pytest.fixture(scope="module")
def saved(tmp_path_factory: pytest.TempPathFactory) -> Path:
    result = train(planted_dataset(n_users=40), tower=SMALL,
                   config=TrainConfig(epochs=1, progress=False, refit=False))
    return save_checkpoint(tmp_path_factory.mktemp("ckpt"), model=result.model,
                           spec=result.spec, items=result.items, metrics=result.metrics,
                           dataset="planted")


@pytest.fixture()
def copy(saved: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(saved, tmp_path / saved.name))


def _rehash(path: Path) -> None:
    """Rewrite the manifest so only the deliberate damage remains."""
    from diskio import sha256_file
    from towers.checkpoint import FILES
    manifest = orjson.loads((path / "manifest.json").read_bytes())
    manifest["files"] = {name: sha256_file(path / name) for name in FILES}
    (path / "manifest.json").write_bytes(orjson.dumps(manifest))


def test_round_trip_gives_identical_embeddings(saved: Path) -> None:
    ckpt = load_checkpoint(saved)
    assert ckpt.version == saved.name and ckpt.version.startswith("planted-")
    first = load_checkpoint(saved)
    batch = encode_items(ckpt.spec, ckpt.items)
    np.testing.assert_array_equal(ckpt.model.embed_items(batch), first.model.embed_items(batch))
    assert not any(p.suffix in {".pt", ".pkl", ".pth"} for p in saved.iterdir())


def test_saving_never_overwrites_a_version(saved: Path) -> None:
    ckpt = load_checkpoint(saved)
    with pytest.raises(CheckpointError, match="already exists"):
        save_checkpoint(saved.parent, model=ckpt.model, spec=ckpt.spec, items=ckpt.items,
                        metrics={}, dataset="planted", version=saved.name)


def test_rejects_a_modified_file(copy: Path) -> None:
    with open(copy / "weights.safetensors", "r+b") as fh:
        fh.seek(-4, 2)
        fh.write(b"\x00\x01\x02\x03")
    with pytest.raises(CheckpointError, match=r"weights\.safetensors does not match its sha256"):
        load_checkpoint(copy)


def test_rejects_a_truncated_weights_file_even_with_a_matching_hash(copy: Path) -> None:
    data = (copy / "weights.safetensors").read_bytes()
    (copy / "weights.safetensors").write_bytes(data[: len(data) // 2])
    _rehash(copy)
    with pytest.raises(CheckpointError, match="cannot be read"):
        load_checkpoint(copy)


def test_rejects_wrong_shapes(copy: Path) -> None:
    tensors = {"item_emb.weight": torch.zeros(3, 16)}
    save_file(tensors, str(copy / "weights.safetensors"))
    _rehash(copy)
    with pytest.raises(CheckpointError, match="differ from the model"):
        load_checkpoint(copy)


def test_rejects_a_pickle_in_place_of_the_weights(copy: Path) -> None:
    class Boom:
        def __reduce__(self):  # type: ignore[no-untyped-def]
            return (Path("/tmp/nearline-pwned").touch, ())

    (copy / "weights.safetensors").write_bytes(pickle.dumps(Boom()))
    _rehash(copy)
    with pytest.raises(CheckpointError):
        load_checkpoint(copy)
    assert not Path("/tmp/nearline-pwned").exists()


def test_rejects_a_path_traversal_name_in_the_manifest(copy: Path) -> None:
    manifest = orjson.loads((copy / "manifest.json").read_bytes())
    manifest["files"]["../../etc/passwd"] = "0" * 64
    (copy / "manifest.json").write_bytes(orjson.dumps(manifest))
    with pytest.raises(CheckpointError, match="unexpected file"):
        load_checkpoint(copy)


def test_rejects_a_config_that_does_not_match_the_feature_spec(copy: Path) -> None:
    config = orjson.loads((copy / "config.json").read_bytes())
    config["tower"]["n_items"] += 1
    (copy / "config.json").write_bytes(orjson.dumps(config))
    _rehash(copy)
    with pytest.raises(CheckpointError, match="n_items"):
        load_checkpoint(copy)


def test_rejects_a_changed_feature_spec(copy: Path) -> None:
    spec = orjson.loads((copy / "features.json").read_bytes())
    spec["settings"]["seq_len"] = 7
    (copy / "features.json").write_bytes(orjson.dumps(spec))
    _rehash(copy)
    with pytest.raises(CheckpointError, match="fingerprint"):
        load_checkpoint(copy)


def test_rejects_missing_manifest_and_bad_json(copy: Path, tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="not a checkpoint directory"):
        load_checkpoint(tmp_path / "nope")
    (copy / "manifest.json").write_bytes(b"{not json")
    with pytest.raises(CheckpointError, match="not valid JSON"):
        load_checkpoint(copy)
    (copy / "manifest.json").unlink()
    with pytest.raises(CheckpointError, match="no manifest"):
        load_checkpoint(copy)


def test_loading_without_the_item_table_still_checks_it(copy: Path) -> None:
    full, lean = load_checkpoint(copy), load_checkpoint(copy, item_table=False)
    assert lean.items is None and full.items is not None
    assert lean.version == full.version and lean.spec.fingerprint() == full.spec.fingerprint()
    with open(copy / "items.json", "ab") as fh:
        fh.write(b" ")
    with pytest.raises(CheckpointError, match=r"items\.json does not match its sha256"):
        load_checkpoint(copy, item_table=False)

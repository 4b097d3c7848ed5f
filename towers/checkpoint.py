"""Checkpoints: a versioned directory that rebuilds the towers without unpickling anything.

    <root>/<version>/
        manifest.json        format, version, sha256 of every file below
        config.json          TowerConfig, version, dataset, feature-spec fingerprint
        features.json        vocabularies, normalisation statistics, feature settings
        items.json           the catalogue the item tower was fitted on (ids, category, ...)
        weights.safetensors  all tensors of the TwoTower
        metrics.json         training metrics

Loading checks the manifest before reading anything else, and every shape against the
stored config; any mismatch is a `CheckpointError` naming the file and what is wrong.
"""

from __future__ import annotations

import logging
import os
import shutil
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import orjson
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from diskio import commit_dir, sha256_file, write_synced
from towers.errors import CheckpointError, FeatureError
from towers.features import FeatureSpec, ItemTable
from towers.model import TowerConfig, TwoTower
from towers.versions import VERSION_RE

logger = logging.getLogger(__name__)

__all__ = ["Checkpoint", "load_checkpoint", "save_checkpoint"]

FORMAT = 1
FILES = ("config.json", "features.json", "items.json", "weights.safetensors", "metrics.json")
# artefacts a checkpoint may carry besides the towers (hashed like the rest):
# neighbours.json = the item-to-item table built offline from the same training log;
# recipe.json = recall settings chosen on the valid window and what they fitted
OPTIONAL_FILES = ("neighbours.json", "recipe.json")
MAX_JSON_BYTES = 512 * 1024 * 1024


@dataclass
class Checkpoint:
    version: str
    model: TwoTower
    spec: FeatureSpec
    items: ItemTable | None  # None when loaded without it (`load_checkpoint(item_table=False)`)
    metrics: dict[str, object]
    path: Path | None = None
    extras: dict[str, Path] = field(default_factory=dict)  # optional file name -> path


def save_checkpoint(root: Path | str, *, model: TwoTower, spec: FeatureSpec, items: ItemTable,
                    metrics: dict[str, object], dataset: str, version: str | None = None,
                    extras: dict[str, bytes] | None = None) -> Path:
    """Write a new checkpoint directory under `root` atomically and return its path."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    tmp = root / f".tmp-{os.getpid()}-{time.monotonic_ns()}"
    tmp.mkdir()
    try:
        state = {k: v.detach().contiguous() for k, v in model.state_dict().items()
                 if k.startswith(("user_tower.", "item_tower.", "item_emb."))}
        # the item table is shared by both towers: store it once
        state = {k: v for k, v in state.items()
                 if not k.endswith("tower.item_emb.weight")}
        save_file(state, str(tmp / "weights.safetensors"))
        weights_sha = sha256_file(tmp / "weights.safetensors")
        version = version or f"{dataset}-{stamp}-{weights_sha[:8]}"
        if not VERSION_RE.match(version):
            raise CheckpointError(f"version {version!r} must match {VERSION_RE.pattern}")
        config = {"format": FORMAT, "version": version, "dataset": dataset, "created": stamp,
                  "tower": asdict(model.config), "feature_fingerprint": spec.fingerprint()}
        write_synced(tmp / "config.json", orjson.dumps(config, option=orjson.OPT_INDENT_2))
        write_synced(tmp / "features.json", orjson.dumps(spec.to_json()))
        write_synced(tmp / "items.json", orjson.dumps(items.to_json()))
        write_synced(tmp / "metrics.json", orjson.dumps(metrics, option=orjson.OPT_INDENT_2
                                                 | orjson.OPT_SERIALIZE_NUMPY))
        for name, data in (extras or {}).items():
            if name not in OPTIONAL_FILES:
                raise CheckpointError(f"extra file {name!r} is not one of {OPTIONAL_FILES}")
            write_synced(tmp / name, data)
        names = [*FILES, *sorted(extras or {})]
        manifest = {"format": FORMAT, "version": version,
                    "files": {name: sha256_file(tmp / name) for name in names}}
        write_synced(tmp / "manifest.json", orjson.dumps(manifest, option=orjson.OPT_INDENT_2))
        final = root / version
        if final.exists():
            raise CheckpointError(f"{final} already exists: versions are never overwritten")
        commit_dir(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    logger.info("checkpoint %s saved to %s", version, final)
    return final


def _read_json(path: Path) -> dict[str, object]:
    if path.stat().st_size > MAX_JSON_BYTES:
        raise CheckpointError(f"{path.name} is larger than {MAX_JSON_BYTES} bytes")
    try:
        obj = orjson.loads(path.read_bytes())
    except orjson.JSONDecodeError as exc:
        raise CheckpointError(f"{path.name} is not valid JSON: {exc}") from exc
    if not isinstance(obj, dict):
        raise CheckpointError(f"{path.name} must hold a JSON object")
    return obj


def verify_manifest(path: Path) -> dict[str, object]:
    """Check the manifest: known format, exactly the expected plain file names, hashes."""
    if not path.is_dir():
        raise CheckpointError(f"{path} is not a checkpoint directory")
    if not (path / "manifest.json").is_file():
        raise CheckpointError(f"{path} has no manifest.json")
    manifest = _read_json(path / "manifest.json")
    if manifest.get("format") != FORMAT:
        raise CheckpointError(f"manifest format {manifest.get('format')!r} is not {FORMAT}")
    files = _listed_files(manifest)
    for name in files:
        if not isinstance(name, str) or name not in FILES + OPTIONAL_FILES:
            raise CheckpointError(f"manifest names an unexpected file {name!r} "
                                  f"(allowed: {', '.join(FILES + OPTIONAL_FILES)})")
    for name in FILES:
        if name not in files:
            raise CheckpointError(f"manifest does not list {name}")
    for name in [*FILES, *(n for n in OPTIONAL_FILES if n in files)]:
        target = path / name
        if target.is_symlink() or not target.is_file():
            raise CheckpointError(f"{name} is missing or not a regular file")
        if sha256_file(target) != files[name]:
            raise CheckpointError(f"{name} does not match its sha256 in the manifest "
                                  "(corrupt or modified checkpoint)")
    return manifest


def _listed_files(manifest: dict[str, object]) -> dict[str, object]:
    """The manifest's file name -> sha256 object."""
    files = manifest.get("files")
    if not isinstance(files, dict):
        raise CheckpointError("manifest.json has no 'files' object")
    return files


def _tower_config(obj: object) -> TowerConfig:
    if not isinstance(obj, dict):
        raise CheckpointError("config.json 'tower' must be an object")
    names = {f.name: f.type for f in fields(TowerConfig)}
    unknown = set(obj) - set(names)
    if unknown:
        raise CheckpointError(f"config.json 'tower' has unknown fields {sorted(unknown)}")
    for name, value in obj.items():
        kind = str(names[name])
        ok = (isinstance(value, bool) if kind == "bool" else
              isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= 1 << 24
              if kind == "int" else
              isinstance(value, int | float) and not isinstance(value, bool)
              and 0.0 <= value <= 1.0)
        if not ok:
            raise CheckpointError(f"config.json 'tower' field {name}={value!r:.40} is not a "
                                  f"valid {kind}")
    try:
        config = TowerConfig(**obj)
    except TypeError as exc:
        raise CheckpointError(f"config.json 'tower' is incomplete: {exc}") from exc
    if min(config.dim, config.emb_dim, config.hidden) < 1 or config.emb_dim % 8:
        raise CheckpointError("config.json 'tower': dim, emb_dim and hidden must be positive, "
                              "emb_dim a multiple of 8")
    return config


def load_checkpoint(path: Path | str, *, item_table: bool = True) -> Checkpoint:
    """Validate and load a checkpoint directory; raises CheckpointError on any mismatch.

    With `item_table=False` items.json is checked against its hash but not parsed
    (`items` is None): a worker serving a saved index needs only the vocabularies, and
    parsing a large catalogue holds the interpreter lock for tens of milliseconds.
    """
    path = Path(path)
    manifest = verify_manifest(path)
    config = _read_json(path / "config.json")
    if config.get("version") != manifest.get("version"):
        raise CheckpointError("config.json and manifest.json name different versions")
    tower = _tower_config(config.get("tower"))
    try:
        spec = FeatureSpec.from_json(_read_json(path / "features.json"))
        items = ItemTable.from_json(_read_json(path / "items.json")) if item_table else None
    except FeatureError as exc:
        raise CheckpointError(str(exc)) from exc
    if spec.fingerprint() != config.get("feature_fingerprint"):
        raise CheckpointError("features.json does not match the fingerprint in config.json")
    _check_sizes(tower, spec)
    with torch.device("meta"):  # no random initialisation: every weight comes from the file
        model = TwoTower(tower)
    _load_weights(model, path / "weights.safetensors")
    model.eval()
    version = str(manifest["version"])
    logger.info("checkpoint %s loaded from %s", version, path)
    extras = {name: path / name for name in OPTIONAL_FILES if name in _listed_files(manifest)}
    return Checkpoint(version=version, model=model, spec=spec, items=items,
                      metrics=_read_json(path / "metrics.json"), path=path, extras=extras)


def _check_sizes(tower: TowerConfig, spec: FeatureSpec) -> None:
    expected = {"n_users": spec.users.size, "n_items": spec.items.size,
                "n_categories": spec.categories.size, "n_price_bands": spec.n_price_bands,
                "n_regions": spec.regions.size, "n_half_lives": len(spec.settings.half_lives_s)}
    for name, size in expected.items():
        if getattr(tower, name) != size:
            raise CheckpointError(f"config.json {name}={getattr(tower, name)} does not match "
                                  f"the feature spec ({size})")


def _load_weights(model: TwoTower, path: Path) -> None:
    try:
        tensors = load_file(str(path))  # safetensors: a JSON header and raw bytes, no pickle
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(f"weights.safetensors cannot be read: {exc}") from exc
    expected = {k: v for k, v in model.state_dict().items()
                if not k.endswith("tower.item_emb.weight")}
    missing = sorted(set(expected) - set(tensors))
    extra = sorted(set(tensors) - set(expected))
    if missing or extra:
        raise CheckpointError(f"weights.safetensors tensors differ from the model: "
                              f"missing {missing[:5]}, unexpected {extra[:5]}")
    for name, value in tensors.items():
        if value.shape != expected[name].shape or value.dtype != expected[name].dtype:
            raise CheckpointError(f"weights.safetensors {name} has shape {tuple(value.shape)} "
                                  f"{value.dtype}, expected {tuple(expected[name].shape)} "
                                  f"{expected[name].dtype}")
    with torch.no_grad():  # assign: the meta tensors are replaced by the file's
        model.load_state_dict(tensors, strict=False, assign=True)
    stray = [name for name, t in model.state_dict().items() if t.is_meta]
    assert not stray, f"weights left uninitialised: {stray}"

"""A checkpoint's recipe: the profile whose settings were chosen on the valid window of the
data the checkpoint was trained on, plus what those settings fitted (the repurchase rates).

`nearline train` writes it as `recipe.json` next to the towers; the workers serve it and
`nearline evaluate --checkpoint` scores it, so no setting is carried over by hand from
another data set. A checkpoint without one is served with the named profile.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from streams.recall.profiles import Profile, profile_from_json, profile_to_json
from streams.recall.repurchase import RepurchaseModel
from towers.errors import CheckpointError

__all__ = ["RECIPE_FILE", "Recipe", "read_recipe"]

RECIPE_FILE = "recipe.json"


@dataclass(frozen=True)
class Recipe:
    profile: Profile
    repurchase: RepurchaseModel | None = None  # fitted when the profile uses repurchase
    # how the settings were chosen: grid point -> valid-window figures (a record only)
    chosen_on: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.profile.repurchase is not None and self.repurchase is None:
            raise ValueError(f"recipe: profile {self.profile.name!r} uses repurchase but "
                             "no fitted repurchase model is given")

    def to_json(self) -> dict[str, Any]:
        return {"profile": profile_to_json(self.profile),
                "repurchase": self.repurchase.to_json() if self.repurchase else None,
                "chosen_on": dict(self.chosen_on)}

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> Recipe:
        """Rebuild a stored recipe; anything malformed raises ValueError naming it."""
        if not isinstance(doc, Mapping) or not isinstance(doc.get("profile"), Mapping):
            raise ValueError("recipe: expected an object with a 'profile' object")
        stored = doc.get("repurchase")
        if stored is not None and not isinstance(stored, Mapping):
            raise ValueError("recipe: 'repurchase' must be an object or null")
        return cls(profile=profile_from_json(doc["profile"]),
                   repurchase=RepurchaseModel.from_json(stored) if stored else None,
                   chosen_on=dict(doc.get("chosen_on") or {}))

    def to_bytes(self) -> bytes:
        return orjson.dumps(self.to_json(), option=orjson.OPT_SERIALIZE_NUMPY)


def read_recipe(checkpoint_dir: Path | str) -> Recipe | None:
    """The recipe stored in a checkpoint directory, None when it has none; a malformed one
    raises CheckpointError naming what is wrong."""
    path = Path(checkpoint_dir) / RECIPE_FILE
    if not path.is_file():
        return None
    try:
        return Recipe.from_json(orjson.loads(path.read_bytes()))
    except orjson.JSONDecodeError as exc:
        raise CheckpointError(f"{path}: not JSON ({exc})") from exc
    except ValueError as exc:
        raise CheckpointError(f"{path}: {exc}") from exc

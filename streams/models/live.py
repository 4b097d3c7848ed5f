"""The live model: one version's channels, which a batch reads once.

A worker serves one `LiveModel` at a time and replaces it in one assignment, so every
list of a batch comes from one version and names it.
"""

from __future__ import annotations

from dataclasses import dataclass

from streams.recall.channels import Channel
from streams.recall.recipe import Recipe
from towers.sequence import UserHistory

__all__ = ["LiveModel", "warm_up"]


@dataclass(frozen=True)
class LiveModel:
    version: str
    channel: Channel  # two-tower channel bound to this version's towers and index
    extra: tuple[Channel, ...] = ()  # channels built offline with it (item-to-item table)
    index_items: int = 0  # size of the version's item index
    recipe: Recipe | None = None  # recall settings chosen with it (None: the named profile)


def warm_up(model: LiveModel, item_id: str = "warm-up") -> None:
    """One recall through the new towers and index, so the first batch served after the
    swap does not pay the first-call costs (allocations, lazy initialisation); an unknown
    item takes the same path (its out-of-vocabulary bucket)."""
    history = UserHistory("warm-up")
    history.append(item_id, 0.0)
    model.channel.candidates([history], k=10, now=0.0)

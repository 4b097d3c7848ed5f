"""The two-tower recall channel: user tower forward + item index search, one version.

A `TowerBundle` holds one checkpoint's towers and the index of its item embeddings. The
channel reads its bundle once per call and uses that same bundle for the user forward
and the search, so an embedding of version A is never searched in the index of B.

Users are encoded by `towers.features.encode_histories`, the code training uses: the
sequence, region and the hour / weekday of the clock. Training examples carry no
temperature or holiday (they are encoded as missing), so serving leaves them missing too.
"""

from __future__ import annotations

import logging
from collections.abc import Container, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from index import IndexConfig, ItemIndex, build_index, load_index
from streams.recall.channels import Candidates
from towers.checkpoint import Checkpoint, load_checkpoint
from towers.errors import CheckpointError
from towers.features import FeatureSpec, ItemTable, encode_histories, encode_items
from towers.model import TwoTower
from towers.sequence import UserHistory

if TYPE_CHECKING:  # serving never imports the training code
    from towers.train import TrainResult

__all__ = ["BatchEmbeddings", "TowerBundle", "TwoTowerChannel"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class TowerBundle:
    """One version's towers and item index, loaded and validated together."""

    version: str
    model: TwoTower
    spec: FeatureSpec
    items: ItemTable | None  # the catalogue's features; None when served from a saved index
    index: ItemIndex

    @classmethod
    def from_checkpoint(cls, path: Path | str, *, index_dir: Path | str | None = None,
                        config: IndexConfig | None = None) -> TowerBundle:
        """Load a checkpoint; load its saved index from `index_dir` or build one.

        With a saved index the checkpoint's item table is not parsed (`items` is None):
        the index, tagged with this checkpoint's version, already holds the catalogue.
        """
        ckpt = load_checkpoint(path, item_table=index_dir is None)
        if index_dir is not None:
            index = load_index(index_dir, expect_version=ckpt.version)
            if index.checkpoint != ckpt.version:
                raise CheckpointError(f"index in {index_dir} holds the embeddings of checkpoint "
                                      f"{index.checkpoint or 'none named'}, not {ckpt.version}: "
                                      "rebuild it")
            if index.dim != ckpt.model.config.dim:
                raise CheckpointError(f"index dimension {index.dim} != tower output "
                                      f"{ckpt.model.config.dim}")
        else:
            index = item_index(ckpt, config=config)
        return cls(ckpt.version, ckpt.model.eval(), ckpt.spec, ckpt.items, index)

    @classmethod
    def from_training(cls, result: TrainResult, version: str, *,
                      config: IndexConfig | None = None) -> TowerBundle:
        """A bundle over freshly trained towers (in process, nothing saved)."""
        ckpt = Checkpoint(version=version, model=result.model.eval(), spec=result.spec,
                          items=result.items, metrics=dict(result.metrics))
        return cls(version, ckpt.model, ckpt.spec, ckpt.items, item_index(ckpt, config=config))


def item_index(ckpt: Checkpoint, *, config: IndexConfig | None = None) -> ItemIndex:
    """Embed every catalogue item with the item tower (batched) and index them."""
    if ckpt.items is None:
        raise CheckpointError(f"checkpoint {ckpt.version} was loaded without its item table")
    with torch.inference_mode():
        vectors = ckpt.model.embed_items(encode_items(ckpt.spec, ckpt.items))
    return build_index([str(i) for i in ckpt.items.ids], vectors, version=ckpt.version,
                       checkpoint=ckpt.version, config=config)


class TwoTowerChannel:
    """Items nearest to the user's embedding; see the module docstring."""

    def __init__(self, bundle: TowerBundle, *, name: str = "two_tower") -> None:
        self.bundle = bundle
        self.name = name

    def use(self, bundle: TowerBundle) -> None:
        """Serve another version from the next call on (one assignment)."""
        self.bundle = bundle

    def fit(self, dataset: object, history: object) -> None:  # the towers come trained
        return None

    def observe(self, events: object) -> None:  # state lives in the histories
        return None

    def embed(self, histories: Sequence[UserHistory], *, now: float | None = None,
              bundle: TowerBundle | None = None) -> np.ndarray:
        """(B, dim) float32 user embeddings (histories must not be empty).

        The tower's clock (hour, weekday, recency) is each user's newest event unless
        `now` is given: training saw the state as of the last event, and a list is
        recomputed when an event arrives, so both paths agree whatever batch it rode in.
        """
        bundle = bundle or self.bundle
        at = None if now is None else np.full(len(histories), now, dtype=np.float64)
        batch = encode_histories(bundle.spec, histories, now=at)
        with torch.inference_mode():
            return bundle.model.embed_users(batch)

    def search(self, vectors: np.ndarray, *, k: int,
               exclude: Sequence[Container[str]] | None = None,
               bundle: TowerBundle | None = None) -> list[Candidates]:
        """Top `k` per row, over-fetching so exclusions still leave `k` when possible."""
        bundle = bundle or self.bundle
        n = len(bundle.index)
        out: list[Candidates] = [[] for _ in range(len(vectors))]
        todo = list(range(len(vectors)))
        blocking = exclude is not None and any(exclude[row] for row in todo)
        fetch = min(n, k * 2 + 16 if blocking else k)  # room for what filters drop
        while todo:
            found = bundle.index.search(vectors[todo], fetch)
            short = []
            for row, ids, scores in zip(todo, found.ids.tolist(), found.scores.tolist(),
                                        strict=True):
                excl = exclude[row] if exclude is not None else None
                if excl:  # "" pads a row the index could not fill
                    keep = [(i, s) for i, s in zip(ids, scores, strict=True)
                            if i and i not in excl]
                else:  # nothing blocked: no per-item test
                    keep = [(i, s) for i, s in zip(ids[:k], scores[:k], strict=True) if i]
                out[row] = keep[:k]
                if len(keep) < k and fetch < n:
                    short.append(row)
            todo, fetch = short, min(n, fetch * 4)
        return out

    def candidates(self, histories: Sequence[UserHistory | None], *, k: int, now: float,
                   exclude: Sequence[Container[str]] | None = None) -> list[Candidates]:
        return BatchEmbeddings(self, histories).candidates(histories, k=k, now=now,
                                                           exclude=exclude)


class BatchEmbeddings:
    """The two-tower channel over one batch's user embeddings, computed once.

    A batch's lists and the embeddings the worker caches must be the same vectors: this
    channel embeds the batch's users up front (`vectors`) and answers `candidates` for
    those same history objects by searching them, all with one bundle. The channel's own
    `candidates` is this with a fresh batch.
    """

    def __init__(self, channel: TwoTowerChannel,
                 histories: Sequence[UserHistory | None]) -> None:
        self.name = channel.name
        self.channel = channel
        self.bundle = channel.bundle  # one version for the embedding and the search
        present = [(j, h) for j, h in enumerate(histories) if h is not None and len(h)]
        self.rows = [j for j, _ in present]
        self._row_of = {id(h): n for n, (_, h) in enumerate(present)}
        self.vectors = (channel.embed([h for _, h in present], bundle=self.bundle)
                        if present else np.zeros((0, self.bundle.index.dim), np.float32))

    def fit(self, dataset: object, history: object) -> None:
        return None

    def observe(self, events: object) -> None:
        return None

    def candidates(self, histories: Sequence[UserHistory | None], *, k: int, now: float,
                   exclude: Sequence[Container[str]] | None = None) -> list[Candidates]:
        out: list[Candidates] = [[] for _ in histories]
        rows = [j for j, h in enumerate(histories) if h is not None and len(h)]
        if not rows:
            return out
        mine = [self._row_of[id(histories[j])] for j in rows]  # KeyError: not this batch
        found = self.channel.search(self.vectors[mine], k=k, bundle=self.bundle,
                                    exclude=[exclude[j] for j in rows]
                                    if exclude is not None else None)
        for j, cands in zip(rows, found, strict=True):
            out[j] = cands
        return out

"""The two-tower channel: one version per call, exclusions, bundle loading checks."""

from __future__ import annotations

import numpy as np
import pytest

from bench.synthetic_model import synthetic_dataset, untrained_checkpoint
from index import IndexFileError, save_index
from streams.two_tower import TowerBundle, TwoTowerChannel
from towers.errors import CheckpointError
from towers.sequence import UserHistory


@pytest.fixture(scope="module")
def bundles(tmp_path_factory):  # type: ignore[no-untyped-def]
    root = tmp_path_factory.mktemp("ckpt")
    data = synthetic_dataset(n_items=300, n_users=40, n_events=2000, seed=4)
    a = untrained_checkpoint(root, data, seed=1, version="tt-a")
    b = untrained_checkpoint(root, data, seed=2, version="tt-b")
    return a, b, TowerBundle.from_checkpoint(a), TowerBundle.from_checkpoint(b)


def _history(user: str, items: list[str]) -> UserHistory:
    h = UserHistory(user)
    for j, item in enumerate(items):
        h.append(item, 1.7e9 + j)
    return h


def test_candidates_are_distinct_respect_exclusions_and_match_embed_search(bundles) -> None:  # type: ignore[no-untyped-def]
    _, _, a, _ = bundles
    channel = TwoTowerChannel(a)
    hs = [_history("u1", ["i1", "i2", "i3"]), None, _history("new-user", ["i9"])]
    out = channel.candidates(hs, k=20, now=1.7e9 + 10)
    assert out[1] == [] and all(len(c) == 20 for c in (out[0], out[2]))
    assert len({i for i, _ in out[0]}) == 20
    excluded = {i for i, _ in out[0][:15]}
    again = channel.candidates(hs, k=20, now=1.7e9 + 10, exclude=[excluded, set(), set()])
    assert len(again[0]) == 20 and not excluded & {i for i, _ in again[0]}
    vectors = channel.embed([hs[0]], now=1.7e9 + 10)
    assert vectors.shape == (1, a.model.config.dim)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    alone = channel.search(vectors, k=20)[0]  # batch size changes the last float bits only
    assert [i for i, _ in alone] == [i for i, _ in out[0]]
    assert np.allclose([s for _, s in alone], [s for _, s in out[0]], atol=1e-5)


def test_use_swaps_the_version(bundles) -> None:  # type: ignore[no-untyped-def]
    _, _, a, b = bundles
    channel = TwoTowerChannel(a)
    h = [_history("u1", ["i1", "i2"])]
    first = channel.candidates(h, k=10, now=1.7e9)
    channel.use(b)
    assert channel.candidates(h, k=10, now=1.7e9) != first
    assert channel.bundle.version == "tt-b"


def test_saved_index_of_another_version_is_rejected(bundles, tmp_path) -> None:  # type: ignore[no-untyped-def]
    path_a, _, a, b = bundles
    save_index(b.index, tmp_path / "index-b")
    with pytest.raises(IndexFileError, match="tt-b"):
        TowerBundle.from_checkpoint(path_a, index_dir=tmp_path / "index-b")
    save_index(a.index, tmp_path / "index-a")
    loaded = TowerBundle.from_checkpoint(path_a, index_dir=tmp_path / "index-a")
    assert len(loaded.index) == len(a.index)
    with pytest.raises(CheckpointError):
        TowerBundle.from_checkpoint(tmp_path / "index-a")  # not a checkpoint

"""The compact id map: lookups, slot reuse, widening, and the lazily built sorted view."""

from __future__ import annotations

import numpy as np
import pytest

from index.errors import IndexInputError
from index.idmap import IdMap, check_unique, encode_ids


def test_insert_lookup_release_and_reuse() -> None:
    idmap = IdMap()
    slots = idmap.insert(encode_ids(["b", "a", "c"]), reuse_free=True)
    assert slots.tolist() == [0, 1, 2] and len(idmap) == 3
    assert idmap.lookup(encode_ids(["c", "zz", "a"])).tolist() == [2, -1, 1]
    idmap.release(np.array([1]), reuse=True)
    assert idmap.lookup(encode_ids(["a"])).tolist() == [-1] and len(idmap) == 2
    assert idmap.insert(encode_ids(["d", "e"]), reuse_free=True).tolist() == [1, 3]
    assert idmap.external(np.array([[0, 1, -1], [3, 2, -1]])).tolist() == [
        ["b", "d", ""], ["e", "c", ""]]


def test_slots_are_not_reused_when_told_not_to() -> None:
    idmap = IdMap()
    idmap.insert(encode_ids(["a", "b"]), reuse_free=False)
    idmap.release(np.array([0]), reuse=False)
    assert idmap.insert(encode_ids(["a"]), reuse_free=True).tolist() == [2]
    assert idmap.n_slots == 3 and idmap.live_slots().tolist() == [1, 2]


def test_longer_ids_widen_the_array_without_truncating() -> None:
    idmap = IdMap()
    idmap.insert(encode_ids(["ab"]), reuse_free=True)
    idmap.lookup(encode_ids(["ab"]))  # builds the sorted view at the narrow width
    idmap.insert(encode_ids(["abcdefghij", "abc"]), reuse_free=True)
    assert idmap.lookup(encode_ids(["abc", "abcdefghij", "ab", "abcd"])).tolist() == [2, 1, 0, -1]


def test_sorted_view_stays_in_step_with_random_changes() -> None:
    rng = np.random.default_rng(0)
    idmap, truth = IdMap(), {}
    for round_ in range(30):
        fresh = [f"k{int(v)}" for v in rng.integers(0, 5000, 40)]
        fresh = [k for k in dict.fromkeys(fresh) if k not in truth]
        for key, slot in zip(fresh, idmap.insert(encode_ids(fresh), reuse_free=True), strict=True):
            truth[key] = int(slot)
        gone = list(rng.choice(sorted(truth), 15, replace=False))
        idmap.release(idmap.lookup(encode_ids(gone)), reuse=round_ % 2 == 0)
        for key in gone:
            del truth[key]
    keys = sorted(truth)
    assert idmap.lookup(encode_ids(keys)).tolist() == [truth[k] for k in keys]
    assert sorted(idmap.external(np.array(list(truth.values()))).tolist()) == keys
    rebuilt = IdMap(idmap.keys.copy())  # the state a loaded index starts from
    assert rebuilt.lookup(encode_ids(keys)).tolist() == [truth[k] for k in keys]


def test_keys_view_is_read_only() -> None:
    idmap = IdMap(np.array([b"a", b""]))
    with pytest.raises(ValueError, match="read-only"):
        idmap.keys[0] = b"z"
    assert len(idmap) == 1 and idmap.insert(encode_ids(["b"]), reuse_free=True).tolist() == [1]


def test_compact_storage() -> None:
    keys = encode_ids([f"item-{i:07d}" for i in range(10_000)])
    assert keys.dtype == np.dtype("S12") and keys.nbytes == 120_000


def test_duplicates_are_named() -> None:
    with pytest.raises(IndexInputError, match=r"2 item ids appear more than once.*'x', 'y'"):
        check_unique(encode_ids(["x", "y", "z", "y", "x"]))

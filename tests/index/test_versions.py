"""Version states, swaps, rollback, and readers racing swaps."""

from __future__ import annotations

import itertools
import threading
import time

import pytest

from index import IndexConfig, IndexVersionError, VersionedIndex, VersionState, build_index
from index.backends import ExactBackend
from index.idmap import IdMap
from index.items import ItemIndex
from index.versions import MOVES, check_move

from .conftest import IndexFactory
from .synthetic import item_ids, unit_vectors

DIM = 16


def version_index(tag: str, *, n: int = 2000, backend: str = "exact") -> ItemIndex:
    """Ids carry the version tag, so a result shows which version produced each id."""
    return build_index(item_ids(n, prefix=f"{tag}:"), unit_vectors(n, DIM, seed=len(tag)),
                       version=tag, config=IndexConfig(backend=backend, probe_fraction=0.3))


def test_every_illegal_move_raises() -> None:
    for state, to in itertools.product(VersionState, VersionState):
        if to in MOVES[state]:
            check_move("v1", state, to)
        else:
            with pytest.raises(IndexVersionError, match=f"cannot move v1 from {state.name}"):
                check_move("v1", state, to)


def test_states_through_swap_and_rollback() -> None:
    holder = VersionedIndex()
    v1, v2 = version_index("v1"), version_index("v2")
    assert v1.state is VersionState.READY
    assert holder.swap(v1) is None and v1.state is VersionState.LIVE
    assert holder.swap(v2) is v1
    assert (v1.state, v2.state) == (VersionState.RETIRED, VersionState.LIVE)
    assert holder.previous is v1 and holder.version == "v2"
    assert holder.rollback() is v1
    assert (v1.state, v2.state) == (VersionState.LIVE, VersionState.RETIRED)
    assert holder.live is v1 and holder.previous is v2


def test_swap_refuses_versions_that_are_not_ready() -> None:
    config = IndexConfig()
    building = ItemIndex(backend=ExactBackend.create(DIM, 0, config), idmap=IdMap(),
                         config=config, version="v12")
    holder = VersionedIndex()
    with pytest.raises(IndexVersionError, match=r"cannot swap to v12: not READY \(BUILDING\)"):
        holder.swap(building)
    live = version_index("v1")
    holder.swap(live)
    with pytest.raises(IndexVersionError, match="cannot swap to v1: not READY \\(LIVE\\)"):
        VersionedIndex().swap(live)
    with pytest.raises(IndexVersionError, match="cannot move v1 from LIVE to READY"):
        live.mark_ready()
    with pytest.raises(IndexVersionError, match="already live"):
        holder.swap(version_index("v1"))
    with pytest.raises(IndexVersionError, match="no previous version"):
        holder.rollback()
    assert holder.live is live and live.state is VersionState.LIVE


def test_retired_versions_answer_but_refuse_changes() -> None:
    holder = VersionedIndex(version_index("v1"))
    old = holder.live
    holder.swap(version_index("v2"))
    assert old is not None and old.search(unit_vectors(1, DIM, seed=1), 3).version == "v1"
    with pytest.raises(IndexVersionError, match="v1 is RETIRED"):
        old.upsert(["v1:x"], unit_vectors(1, DIM, seed=2))


def test_search_names_and_honours_the_version(make_index: IndexFactory) -> None:
    holder = VersionedIndex()
    queries = unit_vectors(4, DIM, seed=3)
    with pytest.raises(IndexVersionError, match="no index is live"):
        holder.search(queries, 5)
    holder.swap(version_index("v1"))
    holder.swap(version_index("v2"))
    assert holder.search(queries, 5).version == "v2"
    older = holder.search(queries, 5, version="v1")  # embeddings of the previous tower
    assert older.version == "v1" and all(i.startswith("v1:") for i in older.ids.ravel())
    with pytest.raises(IndexVersionError, match="index version v0 is not loaded"):
        holder.search(queries, 5, version="v0")


@pytest.mark.parametrize("backend", ["exact", "ivf"])
def test_readers_see_one_whole_version_during_swaps(backend: str) -> None:
    holder = VersionedIndex(version_index("v0", backend=backend))
    queries = unit_vectors(8, DIM, seed=4)
    seen: set[str] = set()
    errors: list[BaseException] = []
    stop = threading.Event()

    def reader() -> None:
        try:
            while not stop.is_set():
                result = holder.search(queries, 10)
                prefixes = {i.split(":")[0] for i in result.ids.ravel()}
                assert prefixes == {result.version}, (prefixes, result.version)
                assert result.ids.shape == (8, 10)
                seen.add(result.version)
        except BaseException as exc:  # reported to the main thread
            errors.append(exc)

    threads = [threading.Thread(target=reader) for _ in range(3)]
    for t in threads:
        t.start()
    for round_ in range(1, 6):  # build aside while readers run, then swap; roll back once
        holder.swap(version_index(f"v{round_}", backend=backend))
        if round_ == 3:
            holder.rollback()
        deadline = time.monotonic() + 10  # let the readers meet each version (a busy
        while holder.version not in seen and time.monotonic() < deadline:  # machine may
            time.sleep(0.001)  # not schedule them between two swaps otherwise)
    stop.set()
    for t in threads:
        t.join()
    assert not errors, errors[0]
    assert len(seen) >= 2
    assert holder.version == "v5" and holder.previous is not None


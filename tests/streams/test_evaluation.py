"""The offline and streaming protocols on a tiny log with hand-computed hits."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import orjson
import pytest

from streams.evaluation.protocols import (
    EvalSplit,
    evaluate,
    evaluate_system,
    format_table,
    write_json,
)
from towers.data import ContextRecord, Dataset, Interactions

L3 = 1.0 / np.log2(3)

# history: u1 a@1 b@2, u2 c@1; test: u1 basket {a, c, c}@10, u3 a@11, u1 b@12, u3 d@12,
# u2 c@13 (row 5 repeats row 4's basket line: one event)
LOG = Interactions.from_columns(
    user=["u1", "u1", "u2", "u1", "u1", "u1", "u3", "u1", "u3", "u2"],
    item=["a", "b", "c", "a", "c", "c", "a", "b", "d", "c"],
    ts=[1.0, 2.0, 1.0, 10.0, 10.0, 10.0, 11.0, 12.0, 12.0, 13.0])
CONTEXTS = [ContextRecord(ts=1.5), ContextRecord(ts=11.0, region="r"), ContextRecord(ts=11.5)]


class Echo:
    """Lists the user's own items newest first, then d and e; records its calls."""

    def __init__(self, *, frozen: bool = False, name: str = "echo") -> None:
        self.name = name
        self.frozen = frozen
        self.calls: list[tuple[list[str], float]] = []
        self.contexts: list[list[float]] = []
        self.seq: dict[str, list[str]] = {}

    def fit(self, dataset: Dataset, history: Interactions) -> None:
        self.seq = {}
        self.observe(history)

    def observe(self, events: Interactions) -> None:
        for r in np.argsort(events.ts, kind="stable"):
            self.seq.setdefault(events.user[r], []).append(events.item[r])

    def observe_context(self, records: Sequence[ContextRecord]) -> None:
        self.contexts.append([c.ts for c in records])

    def recall(self, users: Sequence[str], *, k: int, now: float) -> list[list[str]]:
        self.calls.append((list(users), now))
        out = []
        for u in users:
            own = list(dict.fromkeys(reversed(self.seq.get(u, []))))
            out.append((own + [i for i in ("d", "e") if i not in own])[:k])
        return out


def split(seen_filter: bool) -> EvalSplit:
    data = Dataset(name="tiny", interactions=LOG, seen_filter=seen_filter,
                   contexts=CONTEXTS)
    return EvalSplit(data, np.array([0, 2, 1]), np.arange(3, 10),
                     {"train": 3, "valid": 0, "test": 7})


def run(seen_filter: bool, **options: object) -> tuple[dict, Echo]:  # type: ignore[type-arg]
    system = Echo(**options)  # type: ignore[arg-type]
    return evaluate_system(system, split(seen_filter), ks=(1, 2, 3)), system


def rates(block: dict) -> list[float]:  # type: ignore[type-arg]
    return [block["HitRate@1"], block["HitRate@2"], block["HitRate@3"]]


def test_stream_live_basket_and_strictly_earlier_rule() -> None:
    out, system = run(False)
    stream = out["stream"]
    # u1's basket at 10 is judged against the boundary list [b, a, d, e]: a hit at 2, c
    # misses; u3 has no list at 11; at 12 u1 has [c, a, b, d, e] (b hit at 3) and u3
    # [a, d, e] (d hit at 2); u2's boundary list [c, d, e] hits at 1
    assert stream["events"] == 6
    assert rates(stream) == pytest.approx([1 / 6, 3 / 6, 4 / 6])
    assert stream["coverage"] == pytest.approx(5 / 6)
    assert stream["HitRate@3_with_list"] == pytest.approx(4 / 5)
    # one batched recall per timestamp for the users it touched
    assert system.calls[-4:] == [(["u1"], 10.0), (["u3"], 11.0), (["u1", "u3"], 12.0),
                                 (["u2"], 13.0)]
    assert system.contexts == [[11.0], [11.5]]  # after the boundary, up to each timestamp


def test_stream_frozen_lists_never_change() -> None:
    out, _ = run(False)
    frozen = out["frozen"]
    # lists u1 [b, a, d, e], u2 [c, d, e]; u3 never has one
    assert frozen["events"] == 6
    assert rates(frozen) == pytest.approx([2 / 6, 3 / 6, 3 / 6])
    assert frozen["coverage"] == pytest.approx(4 / 6)


def test_seen_filter_skips_items_had_before() -> None:
    out, _ = run(True)
    # u1 a@10, u1 b@12 and u2 c@13 repeat older items: only u1 c, u3 a and u3 d count
    assert out["stream"]["events"] == 3
    assert rates(out["stream"]) == pytest.approx([0.0, 1 / 3, 1 / 3])
    assert out["stream"]["coverage"] == pytest.approx(2 / 3)
    assert rates(out["frozen"]) == [0.0, 0.0, 0.0]
    assert out["frozen"]["coverage"] == pytest.approx(1 / 3)


def test_a_frozen_system_streams_its_boundary_lists() -> None:
    out, system = run(False, frozen=True)
    assert out["stream"] == out["frozen"] and out["is_frozen"]
    assert all(now == 2.0 for _, now in system.calls)


def test_offline_protocol() -> None:
    out, _ = run(False)
    off = out["offline"]
    # u1: T {a, b, c}, list [b, a, d, e]; u2: T {c}, list [c, d, e]
    assert off["users"] == 2
    assert rates(off) == [1.0, 1.0, 1.0]
    assert off["Recall@2"] == pytest.approx((2 / 3 + 1) / 2)
    assert off["NDCG@3"] == pytest.approx(((1 + L3) / (1 + L3 + 0.5) + 1) / 2)
    assert out["offline_cold"]["users"] == 1  # u3, list [d, e], T {a, d}
    assert out["offline_cold"]["HitRate@1"] == 1.0


def test_offline_seen_filter_trims_targets_and_rankings() -> None:
    out, _ = run(True)
    # u1: T {c} once a and b are removed, ranking [d, e]; u2's T becomes empty
    assert out["offline"]["users"] == 1
    assert rates(out["offline"]) == [0.0, 0.0, 0.0]


def test_report_document_table_and_json(tmp_path: Path) -> None:
    data = split(False).dataset
    report = evaluate(data, [Echo(), Echo(frozen=True, name="nightly")], ks=(10, 50, 100),
                      checkpoint="v1", split=split(False))
    assert report["dataset"] == "tiny" and report["checkpoint"] == "v1"
    assert report["split"] == {"train": 3, "valid": 0, "test": 7}
    for name in ("echo", "nightly"):
        entry = report["systems"][name]
        assert set(entry["offline"]) >= {"HitRate@10", "HitRate@50", "HitRate@100",
                                         "Recall@50", "NDCG@50", "users"}
        assert set(entry["stream"]) >= {"HitRate@10", "HitRate@50", "HitRate@100", "events",
                                        "coverage"}
    assert report["users"] == {"warm_test": 2, "cold_test": 1}
    table = format_table(report)
    assert "echo" in table and "nightly" in table and "str HR@50" in table
    write_json(report, tmp_path / "r.json")
    assert orjson.loads((tmp_path / "r.json").read_bytes()) == report


def test_temporal_split_boundary() -> None:
    data = Dataset(name="t", interactions=LOG)
    s = EvalSplit.from_dataset(data)
    assert s.sizes == {"train": 8, "valid": 1, "test": 1}
    assert s.history_rows.tolist() == [0, 2, 1, 3, 4, 5, 6, 7, 8]
    assert s.target_rows.tolist() == [9] and s.boundary() == 12.0
    tune = EvalSplit.for_tuning(data)
    assert len(tune.history_rows) == 8 and tune.target_rows.tolist() == [8]


@pytest.mark.data
def test_movielens_sanity_figures(shared_data: Path) -> None:
    from streams.evaluation.baselines import baseline_systems
    from towers.datasets import read_movielens

    data = read_movielens(shared_data / "movielens" / "ml-100k")
    systems = [s for s in baseline_systems(data) if s.name.startswith("popularity")]
    report = evaluate(data, systems)
    assert report["split"] == {"train": 80_000, "valid": 10_000, "test": 10_000}
    assert report["users"] == {"warm_test": 90, "cold_test": 76}
    frozen, live = report["systems"]["popularity"], report["systems"]["popularity_live"]
    assert frozen["offline"]["users"] == live["offline"]["users"] == 90
    assert frozen["offline_cold"]["users"] == 76
    assert frozen["stream"]["events"] == live["stream"]["events"] == 10_000
    # most test events come from users who first appear in the test window
    assert frozen["stream"]["coverage"] < 0.5 < live["stream"]["coverage"]
    assert live["stream"]["HitRate@50"] > 2 * frozen["stream"]["HitRate@50"]


def test_baselines_run_end_to_end_on_a_small_market() -> None:
    from streams.evaluation.baselines import baseline_systems
    from streams.recall.profiles import profile_named

    rng = np.random.default_rng(11)
    n = 3000
    users = rng.integers(0, 60, n)
    # each user prefers its own slice of the catalogue, so repeat and item-CF have signal
    items = (users * 7 + rng.integers(0, 12, n)) % 90
    log = Interactions.from_columns(user=[f"u{u}" for u in users], item=[f"i{i}" for i in items],
                                    ts=np.sort(rng.integers(0, 200, n)) * 3600.0,
                                    quantity=rng.integers(1, 4, n))
    data = Dataset(name="market", interactions=log)
    systems = baseline_systems(data)
    assert [s.name for s in systems] == ["popularity", "popularity_live", "repeat", "itemcf",
                                         "itemcf_live", "tifu_knn"]
    assert [s.frozen for s in systems] == [True, False, False, False, False, False]
    report = evaluate(data, systems)
    rows = report["systems"]
    assert all(r["stream"]["events"] == rows["popularity"]["stream"]["events"]
               for r in rows.values())
    assert rows["popularity"]["stream"] == rows["popularity"]["frozen"]
    assert rows["repeat"]["stream"]["HitRate@10"] > rows["popularity_live"]["stream"]["HitRate@10"]
    assert rows["itemcf_live"]["stream"]["HitRate@10"] > rows["popularity"]["stream"]["HitRate@10"]
    assert rows["tifu_knn"]["stream"]["HitRate@10"] > rows["popularity_live"]["stream"][
        "HitRate@10"]
    basket = rows["repeat"]["stream"]["basket"]  # the next-basket table (seen filter off)
    assert basket["baskets"] > 0 and 0 < basket["repeat_share"] <= 1
    assert basket["Recall@20"] == pytest.approx(basket["Recall@20_repeat"]
                                                + basket["Recall@20_new"])
    stream = rows["repeat"]["stream"]
    assert stream["HitRate@10"] == pytest.approx(
        stream["repeat_events"] * stream["HitRate@10_repeat"]
        + (1 - stream["repeat_events"]) * stream["HitRate@10_new"])
    with pytest.raises(ValueError, match="unknown profile 'books'"):
        profile_named("books")

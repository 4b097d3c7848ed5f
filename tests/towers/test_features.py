from __future__ import annotations

import numpy as np
import pytest

from towers.data import Interactions, temporal_split
from towers.errors import FeatureError
from towers.examples import build_examples, latest_histories
from towers.features import (
    FeatureSettings,
    FeatureSpec,
    ItemTable,
    encode_histories,
    encode_items,
    fit_feature_spec,
)
from towers.sequence import DAY, UserHistory, recency_weights
from towers.vocab import DenseStats, Vocabulary

from .planted import planted_dataset


def test_vocabulary_known_oov_and_padding() -> None:
    vocab = Vocabulary.build(["b", "a", "b", "c", "c", "c"], n_oov=5)
    assert vocab.tokens == ["c", "b", "a"]
    assert vocab.size == 1 + 5 + 3
    codes = vocab.encode(["c", "a", "", "never-seen"])
    assert codes[0] == 6 and codes[1] == 8 and codes[2] == 0
    assert 1 <= codes[3] <= 5
    assert vocab.encode(["never-seen"])[0] == codes[3]  # stable bucket
    again = Vocabulary.from_json(vocab.to_json())
    assert list(again.encode(["c", "a", "never-seen"])) == [6, 8, codes[3]]


def test_vocabulary_rejects_bad_json() -> None:
    with pytest.raises(FeatureError):
        Vocabulary.from_json({"tokens": [1, 2], "n_oov": 1})
    with pytest.raises(FeatureError):
        Vocabulary.from_json({"tokens": ["a", "a"], "n_oov": 1})


def test_dense_stats_normalise_and_missing() -> None:
    stats = DenseStats.fit(np.array([1.0, 3.0, np.nan]))
    assert stats.mean == 2.0 and stats.std == 1.0
    np.testing.assert_allclose(stats.normalise(np.array([2.0, 4.0, np.nan])), [0.0, 2.0, 0.0])


def test_recency_weights_follow_half_life_and_quantity() -> None:
    w = recency_weights(np.array([0.0, DAY, 2 * DAY]), np.array([1.0, 2.0, 1.0]),
                        now=2 * DAY, half_life_s=DAY)
    np.testing.assert_allclose(w, [0.25, 1.0, 1.0])


def test_user_history_keeps_time_order_and_bound() -> None:
    hist = UserHistory(user_id="u", max_len=3)
    for item, ts in [("a", 1.0), ("c", 3.0), ("b", 2.0), ("d", 4.0)]:
        hist.append(item, ts)
    assert hist.items == ["b", "c", "d"] and hist.ts == [2.0, 3.0, 4.0]


def test_spec_round_trip_and_new_users_and_items_encode() -> None:
    ds = planted_dataset()
    split = temporal_split(ds.interactions)
    spec = fit_feature_spec(ds, ds.interactions.take(split.train), FeatureSettings(seq_len=5))
    again = FeatureSpec.from_json(spec.to_json())
    assert again.fingerprint() == spec.fingerprint()
    hist = UserHistory(user_id="brand-new-user")
    hist.append("i3", 10.0)
    hist.append("brand-new-item", 20.0, quantity=2.0)
    batch = encode_histories(again, [hist])
    assert batch.seq_items.shape == (1, 5)
    assert list(batch.seq_items[0, :3]) == [0, 0, 0]
    assert 1 <= batch.user[0] <= spec.settings.user_oov  # OOV bucket, not an error
    assert 1 <= batch.seq_items[0, 4] <= spec.settings.item_oov
    np.testing.assert_allclose(batch.seq_weights.sum(axis=2), 1.0, rtol=1e-5)
    items = encode_items(again, ItemTable.from_dataset(ds, ds.interactions.take(split.train)))
    assert items.dense.shape[1] == 3 and (items.item > spec.settings.item_oov).all()


def test_empty_history_is_refused_with_a_clear_error() -> None:
    ds = planted_dataset()
    spec = fit_feature_spec(ds, ds.interactions)
    with pytest.raises(FeatureError, match="empty history"):
        encode_histories(spec, [UserHistory(user_id="x")])


def test_examples_never_see_their_own_basket_or_the_future() -> None:
    log = Interactions.from_columns(user=["u", "u", "u", "u", "v"],
                                    item=["a", "b", "c", "d", "a"],
                                    ts=[1.0, 1.0, 2.0, 3.0, 1.0])
    from towers.data import Dataset
    ds = Dataset(name="t", interactions=log)
    spec = fit_feature_spec(ds, log, FeatureSettings(seq_len=3))
    ex = build_examples(spec, log, np.arange(len(log)))
    decode = {spec.items.encode_one(x): x for x in "abcd"} | {0: "-"}
    got = [("".join(decode[int(i)] for i in row), decode[int(t)])
           for row, t in zip(ex.seq_items, ex.target, strict=True)]
    # c (t=2) sees the whole basket {a, b} (t=1); d (t=3) sees a, b, c; basket lines nothing
    assert got == [("-ab", "c"), ("abc", "d")]
    assert list(ex.now) == [1.0, 2.0]


def test_latest_histories_is_the_state_after_the_rows() -> None:
    ds = planted_dataset(n_users=3, steps=6)
    hist = latest_histories(ds.interactions, np.arange(len(ds.interactions)), max_len=4)
    assert set(hist) == {"u0", "u1", "u2"}
    assert all(len(h) == 4 and h.ts == sorted(h.ts) for h in hist.values())

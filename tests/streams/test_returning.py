"""The returning channel: popularity only for users whose newest event is old enough."""

from __future__ import annotations

from collections.abc import Container, Sequence

from streams.returning import ReturningConfig, ReturningPopularity
from towers.sequence import DAY, UserHistory


class _Ranked:
    """A popularity stand-in that records whom it was asked about."""

    name = "popularity"

    def __init__(self) -> None:
        self.asked: list[str] = []

    def fit(self, dataset: object, history: object) -> None: ...
    def observe(self, events: object) -> None: ...

    def candidates(self, histories: Sequence[UserHistory | None], *, k: int, now: float,
                   exclude: Sequence[Container[str]] | None = None
                   ) -> list[list[tuple[str, float]]]:
        self.asked += [h.user_id for h in histories if h is not None]
        out = []
        for j, _ in enumerate(histories):
            banned = exclude[j] if exclude is not None else ()
            out.append([(i, 1.0) for i in ("a", "b", "c") if i not in banned][:k])
        return out


def _history(user: str, last_ts: float) -> UserHistory:
    h = UserHistory(user)
    h.append("x", last_ts - 10.0)
    h.append("y", last_ts)
    return h


def test_only_users_away_long_enough_get_the_popular_items() -> None:
    ranked = _Ranked()
    channel = ReturningPopularity(ranked, ReturningConfig(away_s=DAY))
    now = 100 * DAY
    users = [_history("back", now - 2 * DAY), _history("here", now - 60.0), None,
             _history("edge", now - DAY)]
    out = channel.candidates(users, k=2, now=now, exclude=[{"a"}, set(), set(), set()])
    assert out == [[("b", 1.0), ("c", 1.0)], [], [], [("a", 1.0), ("b", 1.0)]]
    assert ranked.asked == ["back", "edge"]  # nobody else costs a lookup


def test_nobody_away_asks_nothing() -> None:
    ranked = _Ranked()
    channel = ReturningPopularity(ranked, ReturningConfig(away_s=DAY))
    assert channel.candidates([_history("u", 5.0)], k=3, now=6.0) == [[]]
    assert ranked.asked == []

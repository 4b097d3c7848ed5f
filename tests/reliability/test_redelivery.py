"""Redelivery: events delivered twice and a consumer-group rebalance change nothing twice."""

from __future__ import annotations

import time

import pytest

from tests.reliability.conftest import STREAM, account, check_metrics, differences, normal_form

pytestmark = pytest.mark.services


def test_duplicates_and_a_rebalance_leave_the_state_of_one_delivery(deploy, reference) -> None:  # type: ignore[no-untyped-def]
    msgs = STREAM.messages
    third = len(msgs) // 3
    copies = msgs[60:200] + msgs[-40:]  # a stretch sent again mid-stream, the tail at the end
    deliveries = msgs[:third] + msgs[60:200] + msgs[third:] + msgs[-40:]
    d = deploy()
    w1 = d.worker("w1", assigned=d.settings.partitions)
    hold = int(len(deliveries) * 0.85)
    pacer = d.pace(deliveries, rate=50.0, hold_at=hold)
    pacer.wait_sent(100)
    w2 = d.worker("w2", assigned=1)  # joins mid-stream: the group rebalances
    pacer.wait_sent(min(pacer.sent + 40, hold))  # both consume for a while
    deadline = time.monotonic() + 30
    while w2.metrics()["nearline_events_in_total"] == 0:
        assert time.monotonic() < deadline, "the second worker consumed nothing"
        time.sleep(0.2)
    assert w2.stop() == 0, w2.logs()  # leaves mid-stream: rebalances again
    pacer.release()
    pacer.finish()
    w1.wait_assigned(d.settings.partitions)

    snap = d.wait_applied(STREAM.messages)
    letters = d.dead_letters(STREAM.bad + [m for m in copies if m.event_id is None])
    counters = d.counters()
    row = account("redelivered x2 + rebalance (2 workers)", STREAM, snap, letters, counters,
                  produced=len(deliveries))
    assert not differences(normal_form(snap, d.board()), reference.state)
    assert {u for u, s in snap["users"].items() if s.get("recall")} == reference.users_with_lists

    good_copies = sum(1 for m in copies if m.event_id is not None)
    # a worker stopping cancels its batch in flight: events it applied may miss their
    # counter increment and come back as duplicates to the other worker
    assert counters["applied"] <= len(STREAM.good) <= counters["applied"] + counters["duplicates"]
    assert counters["duplicates"] >= good_copies  # + whatever the rebalance redelivered
    assert row.duplicated >= len(copies)
    # every delivery was consumed at least once and ended applied, duplicate or dead
    assert counters["applied"] + counters["duplicates"] + len(letters) >= len(deliveries)
    check_metrics(w1.metrics())
    assert w1.stop() == 0, w1.logs()

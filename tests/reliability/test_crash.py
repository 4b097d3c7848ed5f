"""Crash: a worker killed with SIGKILL mid-stream and restarted loses and doubles nothing."""

from __future__ import annotations

import base64
import signal

import pytest

from tests.reliability.conftest import (
    STREAM,
    account,
    applied_ids,
    check_metrics,
    differences,
    normal_form,
)

pytestmark = pytest.mark.services


def test_kill_9_mid_stream_and_restart_give_the_uninterrupted_state(deploy, reference) -> None:  # type: ignore[no-untyped-def]
    msgs = STREAM.messages
    d = deploy()
    w = d.worker("w1", assigned=d.settings.partitions)
    pacer = d.pace(msgs, rate=80.0, hold_at=int(len(msgs) * 0.8))
    pacer.wait_sent(len(msgs) // 3)
    applied_before = len(applied_ids(d.snapshot()))
    assert w.stop(signal.SIGKILL) == -signal.SIGKILL
    produced_before = msgs[:pacer.sent]
    assert 0 < applied_before < len(STREAM.good), "the kill must land mid-stream"
    pacer.release()  # the stream goes on while no worker runs
    restarted = d.worker("w1-restarted", assigned=d.settings.partitions)
    pacer.finish()

    snap = d.wait_applied(STREAM.messages)
    letters = d.dead_letters(STREAM.bad)
    counters = d.counters()
    account("kill -9 mid-stream, restart", STREAM, snap, letters, counters,
            produced=len(msgs))
    assert not differences(normal_form(snap, d.board()), reference.state)
    assert {u for u, s in snap["users"].items() if s.get("recall")} == reference.users_with_lists

    # what was produced before the kill: applied (once, see account) or dead-lettered
    dead = {base64.b64decode(x["original_b64"]) for x in letters}
    assert {m.event_id for m in produced_before if m.event_id} <= applied_ids(snap)
    assert {m.value for m in produced_before if m.event_id is None} <= dead
    # the killed worker may lose its unflushed counter increments, never add any; what it
    # had applied but not committed comes back as duplicates
    assert counters["applied"] <= len(STREAM.good) <= counters["applied"] + counters["duplicates"]
    check_metrics(restarted.metrics())
    assert restarted.stop() == 0, restarted.logs()

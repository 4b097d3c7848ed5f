"""Replaying history through the real path: Kafka in, workers, Redis, recall topic out.

The state before the replay window is bulk-loaded into Redis (and the popularity board),
the window's events are produced in timestamp order at a chosen pace, and the recall
topic is read back. Scoring follows the streaming protocol of docs/evaluation.md: each event
is judged against the newest list of its user computed from events strictly earlier
than it (a `RecallResult` names the last event its state held). Before a user's first
list from the stream, the boundary list counts: the one the same engine computes from
the warmed state, which is also the frozen (nightly batch) variant. The end of a replay
is detected from what was produced: every user's last produced event named by a list.

Modules: `window` (what is sent), `kafka_io` (sending and reading back), `score`
(the streaming protocol on what was read), `reference` (the same engine in process, one
event at a time), `run` (one replay end to end), `load` (endless load for running
workers), `plot`.

Imports: `streams.worker`, `streams.models`, `streams.state`, `streams.services` and the
top-level modules.
"""

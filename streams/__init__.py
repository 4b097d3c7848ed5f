"""streams: everything of nearline that touches Kafka or Redis, and what runs on it.

Sub-packages, each a room with one concern; imports point down this list only
(`tests/test_layering.py` checks it):

    cli/         the `nearline` command: parses options, calls the functions below
    replay/      historical events through Kafka and real workers, scored and timed
    services/    the embedded broker and Redis for development (`nearline up`)
    worker/      the Faust application: agents, pipeline, engine, records, live swap
    evaluation/  the offline and streaming protocols, run in process; the baselines
    models/      published checkpoints: store, index build, loading a live version
    recall/      channels, fusion, filters, profiles: the ranking code, no I/O
    state/       per-user state and live popularity, in Redis or in memory

At the top: `settings` (read once at an entry point), `topics`, `errors`, `logs`.
`state` and `recall` import neither faust nor torch at import time.
"""

"""A worker process: the Faust application, its agents and the work they hand off.

`run` starts a worker (settings -> topics, state, engine, app), `app` builds the Faust
app and its agents, `web` its HTTP endpoints, `pipeline` handles one micro-batch (no
Faust), `engine` applies events and computes lists (no Kafka), `records` decodes
messages, `watcher` swaps in a new live version, `metrics` serves `/metrics`,
`faust_fetch` makes the consumer's fetch wait a setting.

Imports: `streams.state`, `streams.recall`, `streams.models` and the top-level modules.
"""

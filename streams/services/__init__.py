"""Local services for development and tests: the embedded Kafka-protocol broker and
redis-server (`embedded`), run in the background by `nearline up` (`control`).

Imports: `streams.errors` only.
"""

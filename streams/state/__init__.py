"""Per-user streaming state and live popularity: the store contract, Redis and in memory.

`contract` is the protocol both stores keep (and the key layout), `redis_store` and
`memory_store` implement it, `lua` holds the Redis scripts, `snapshot` reads a Redis
store back for checks, `bulk` warms Redis from a log, `popularity` is the board every
worker shares, `connect` opens a store from a URL.

Imports: `streams.errors` and `towers.sequence`; never faust, torch or `streams.recall`.
"""

from streams.state.connect import live_version_now, open_state_store
from streams.state.contract import (
    InteractionUpdate,
    StateConfig,
    StateKeys,
    StateStoreError,
    UserFeatures,
    UserStateStore,
)

__all__ = [
    "InteractionUpdate",
    "StateConfig",
    "StateKeys",
    "StateStoreError",
    "UserFeatures",
    "UserStateStore",
    "live_version_now",
    "open_state_store",
]

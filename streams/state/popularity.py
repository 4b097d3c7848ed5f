"""Live popularity shared by every worker: decayed counts in Redis sorted sets.

The same scores as `streams.recall.channels.PopularityChannel` (counts anchored at a time,
weight x 2^((ts - anchor) / half_life), so the ranking does not depend on `now`), kept
in Redis so all workers of a group rank alike and a restart keeps them. One Lua call
adds a batch and, when the exponents grow large, rescales every set to a newer anchor.

Keys (`P` = prefix, one hash tag so a cluster keeps them in one slot):
    P:{pop}:anchor   string  anchor time
    P:{pop}:g        zset    item -> decayed count, all regions
    P:{pop}:r:REGION zset    item -> decayed count in one region
    P:{pop}:regions  set     regions with a zset
    P:{pop}:totals   hash    "" or REGION -> sum of the counts (scores are shares of it)
    P:{pop}:ids      zset    event ids counted (score = event ts), the newest `max_ids`

Counting is idempotent on its own: an event id already counted adds nothing, so a batch
retried after a crash between the state update and the board update counts each event
exactly once. Ids beyond the newest `max_ids` are forgotten.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson

from streams.state.contract import StateStoreError

__all__ = ["PopularityBoard"]

Ranking = tuple[np.ndarray, np.ndarray]  # (item ids, scores) best first

_ADD = """
local hl = tonumber(ARGV[1])
local max_ids = tonumber(ARGV[2])
local n = (#ARGV - 2) / 5
local fresh = {}
local tmax = -math.huge
for j = 0, n - 1 do
  local b = 3 + 5 * j
  if redis.call('ZADD', KEYS[6], 'NX', ARGV[b + 3], ARGV[b]) == 1 then
    table.insert(fresh, b)
    tmax = math.max(tmax, tonumber(ARGV[b + 3]))
  end
end
if #fresh == 0 then return 0 end
local extra = redis.call('ZCARD', KEYS[6]) - max_ids
if extra > 0 then redis.call('ZREMRANGEBYRANK', KEYS[6], 0, extra - 1) end
local anchor = tonumber(redis.call('GET', KEYS[1]) or '')
if not anchor then anchor = tmax; redis.call('SET', KEYS[1], string.format('%.17g', anchor)) end
if hl > 0 and (tmax - anchor) / hl > 500 then
  local factor = 2 ^ (-(tmax - anchor) / hl)
  local keys = {KEYS[2]}
  for _, r in ipairs(redis.call('SMEMBERS', KEYS[3])) do table.insert(keys, KEYS[4] .. r) end
  for _, k in ipairs(keys) do redis.call('ZUNIONSTORE', k, 1, k, 'WEIGHTS', factor) end
  for _, f in ipairs(redis.call('HKEYS', KEYS[5])) do
    local t = tonumber(redis.call('HGET', KEYS[5], f)) * factor
    redis.call('HSET', KEYS[5], f, string.format('%.17g', t))
  end
  anchor = tmax
  redis.call('SET', KEYS[1], string.format('%.17g', anchor))
end
for _, b in ipairs(fresh) do
  local item, region = ARGV[b + 1], ARGV[b + 2]
  local ts, w = tonumber(ARGV[b + 3]), tonumber(ARGV[b + 4])
  if hl > 0 then w = w * 2 ^ ((ts - anchor) / hl) end
  redis.call('ZINCRBY', KEYS[2], w, item)
  redis.call('HINCRBYFLOAT', KEYS[5], '', w)
  if region ~= '' then
    redis.call('ZINCRBY', KEYS[4] .. region, w, item)
    redis.call('HINCRBYFLOAT', KEYS[5], region, w)
    redis.call('SADD', KEYS[3], region)
  end
end
return #fresh
"""


_RANKING = """
local rows = redis.call('ZREVRANGE', KEYS[1], 0, tonumber(ARGV[1]) - 1, 'WITHSCORES')
return cjson.encode({rows, redis.call('HGET', KEYS[2], ARGV[2]) or '0'})
"""


@dataclass(frozen=True)
class PopularityBoard:
    """Decayed item counts in Redis, global and per region."""

    redis: Any  # redis.asyncio.Redis
    prefix: str = "nl"
    half_life_s: float | None = 14 * 86_400.0  # None: plain counts
    quantity_weighted: bool = False
    max_ids: int = 1_000_000  # event ids remembered for idempotence

    def _key(self, name: str) -> str:
        return f"{self.prefix}:{{pop}}:{name}"

    async def add(self, event_ids: Sequence[str], items: Sequence[str], regions: Sequence[str],
                  ts: Sequence[float], quantities: Sequence[float]) -> int:
        """Count interactions not counted before; returns how many were new."""
        if not items:
            return 0
        args: list[Any] = [self.half_life_s or 0.0, self.max_ids]
        for event_id, item, region, t, q in zip(event_ids, items, regions, ts, quantities,
                                                strict=True):
            args += [event_id, item, region, repr(float(t)),
                     repr(float(q) if self.quantity_weighted else 1.0)]
        keys = [self._key("anchor"), self._key("g"), self._key("regions"), self._key("r:"),
                self._key("totals"), self._key("ids")]
        try:
            return int(await self.redis.eval(_ADD, len(keys), *keys, *args))
        except Exception as exc:  # redis errors of every kind: the batch is retried
            raise StateStoreError(f"popularity update failed: {exc}") from exc

    async def ranking(self, region: str = "", *, n: int) -> Ranking:
        """The `n` best items of a region ("" = all), scores as shares of the total."""
        key = self._key(f"r:{region}") if region else self._key("g")
        try:  # one round trip, one JSON string: parsing n score pairs in Python cost more
            raw = await self.redis.eval(_RANKING, 2, key, self._key("totals"), n, region)
        except Exception as exc:
            raise StateStoreError(f"popularity read failed: {exc}") from exc
        rows, total = orjson.loads(raw)
        rows = rows or []  # cjson writes an empty table as {}
        ids = np.array(rows[0::2], dtype=object)
        # scores come as Redis prints them (17 significant digits): the same doubles
        scores = np.array(rows[1::2], dtype=np.float64) / max(float(total), 1e-300)
        return ids, scores

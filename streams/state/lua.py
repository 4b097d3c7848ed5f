"""Lua scripts of the Redis store.

A script call applies a group of events in order, each event as its own check-and-apply
step; the whole call is atomic, so no event is ever half applied. Numbers cross into Lua
as Python `repr` strings and come back as '%.17g', so doubles round-trip exactly and the
in-memory store (plain float arithmetic) stays bit-identical.
"""

from __future__ import annotations

__all__ = ["APPLY_CONTEXT", "APPLY_INTERACTIONS", "READ_HISTORIES"]

# True when the event id is new (and records it); a duplicate writes nothing. `now` and
# `cutoff` (= now - ttl) are strings, so the scores are stored exactly. An id older than
# the cutoff no longer counts; such ids are not purged one by one (that costs a call per
# event): they go with the size bound or when the key expires, ttl after the last event.
_FRESH = """
local function fresh(ids, event_id, now, cutoff, ttl_ms, max_ids)
  local at = redis.call('ZSCORE', ids, event_id)
  if at and tonumber(at) >= tonumber(cutoff) then return false end
  redis.call('ZADD', ids, now, event_id)
  redis.call('ZREMRANGEBYRANK', ids, 0, -max_ids - 1)
  redis.call('PEXPIRE', ids, ttl_ms)
  return true
end
"""

# KEYS: ids, seq, feat, seen of each user of the group. ARGV[1] now, [2] cutoff,
# [3] ttl ms, [4] ids kept, [5] max_len, [6] JSON list of events
# [user index, event id, ts, member payload, item, quantity, region] (ts and quantity as
# strings). The user's event count is the arrival number that breaks ts ties. Returns
# one character per event: '1' applied, '0' duplicate.
APPLY_INTERACTIONS = _FRESH + """
local now, cutoff, ttl_ms = ARGV[1], ARGV[2], ARGV[3]
local max_ids, max_len = tonumber(ARGV[4]), tonumber(ARGV[5])
local out = {}
for i, e in ipairs(cjson.decode(ARGV[6])) do
  local k = e[1] * 4
  local seq, feat, ts = KEYS[k + 2], KEYS[k + 3], e[3]
  if fresh(KEYS[k + 1], e[2], now, cutoff, ttl_ms, max_ids) then
    local f = redis.call('HMGET', feat, 'events', 'quantity', 'max_ts')
    local n = tonumber(f[1] or '0') + 1
    redis.call('ZADD', seq, ts, '["' .. string.format('%012x', n) .. '",' .. e[4])
    redis.call('ZREMRANGEBYRANK', seq, 0, -max_len - 1)
    local q = tonumber(f[2] or '0') + tonumber(e[6])
    local max_ts = f[3]
    if not max_ts or tonumber(ts) > tonumber(max_ts) then max_ts = ts end
    local fields = {'events', string.format('%d', n), 'quantity', string.format('%.17g', q),
                    'last_event_id', e[2], 'last_event_ts', ts, 'max_ts', max_ts}
    if e[7] ~= '' then
      fields[#fields + 1] = 'region'
      fields[#fields + 1] = e[7]
    end
    redis.call('HSET', feat, unpack(fields))
    redis.call('SADD', KEYS[k + 4], e[5])
    out[i] = '1'
  else
    out[i] = '0'
  end
end
return table.concat(out)
"""

# KEYS: ids, regions hash, stock_ts hash, unavailable set. ARGV[1] event id, [2] now,
# [3] cutoff, [4] ttl ms, [5] ids kept, [6] '1' when the event carries region context,
# [7] region, [8] ts, [9] context JSON, [10..] item, '1' | '0' (in stock).
APPLY_CONTEXT = _FRESH + """
if not fresh(KEYS[1], ARGV[1], ARGV[2], ARGV[3], ARGV[4], tonumber(ARGV[5])) then return 0 end
local ts = tonumber(ARGV[8])
if ARGV[6] == '1' then
  local old = redis.call('HGET', KEYS[2], ARGV[7])
  if not old or ts >= cjson.decode(old)['ts'] then redis.call('HSET', KEYS[2], ARGV[7], ARGV[9]) end
end
for i = 10, #ARGV, 2 do
  local old = redis.call('HGET', KEYS[3], ARGV[i])
  if not old or ts >= tonumber(old) then
    redis.call('HSET', KEYS[3], ARGV[i], ARGV[8])
    if ARGV[i + 1] == '1' then
      redis.call('SREM', KEYS[4], ARGV[i])
    else
      redis.call('SADD', KEYS[4], ARGV[i])
    end
  end
end
return 1
"""

# KEYS: seq, feat of each user; ARGV[1] how many of the newest events to read (0: all).
# One JSON array, an element per user: null (unknown) or [[member, ...], region, last
# event id]; members are JSON arrays already, so the client parses a whole group with
# one call instead of one per reply element.
READ_HISTORIES = """
local out, first = {}, -tonumber(ARGV[1])
if first == 0 then first = 0 end
for i = 1, #KEYS, 2 do
  local members = redis.call('ZRANGE', KEYS[i], first, -1)
  if #members == 0 then
    out[#out + 1] = 'null'
  else
    local f = redis.call('HMGET', KEYS[i + 1], 'region', 'last_event_id')
    out[#out + 1] = '[[' .. table.concat(members, ',') .. '],' .. cjson.encode(f[1] or '') ..
                    ',' .. cjson.encode(f[2] or '') .. ']'
  end
end
return '[' .. table.concat(out, ',') .. ']'
"""

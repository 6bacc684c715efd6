"""The Redis broker's Lua scripts, and the keys they work on.

Each script runs atomically in Redis: a publication is appended to history and
published to the nodes in one step, so it is never in one without the other, and
a user's join or leave is decided and told once, however many nodes race. All
keys of one channel share the hash tag ``{CHANNEL}``, so that on Redis Cluster
they live in one slot with the channel's (sharded) pub/sub channel.

Times come from Redis (``TIME``): one clock for the whole cluster. A script given
a ``now`` uses that instead (the broker contract tests move a clock by hand).
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["JOIN", "LEAVE", "MEMBERS", "PUBLISH", "READ", "SCRIPTS", "ChannelKeys", "Script"]


@dataclass(frozen=True, slots=True)
class Script:
    name: str
    source: str


@dataclass(frozen=True, slots=True)
class ChannelKeys:
    """The keys of one channel under ``prefix``; the pub/sub channel is ``topic``."""

    topic: bytes
    meta: bytes
    stream: bytes
    members: bytes
    expiry: bytes
    users: bytes

    @classmethod
    def of(cls, prefix: str, channel: str) -> ChannelKeys:
        base = f"{prefix}:{{{channel}}}".encode()
        return cls(
            topic=base,
            meta=base + b":meta",
            stream=base + b":stream",
            members=base + b":members",
            expiry=base + b":expiry",
            users=base + b":users",
        )

    @property
    def presence(self) -> list[bytes]:
        return [self.members, self.expiry, self.users]


# A clock shared by the scripts: ARGV "now" when given, else Redis's own.
_NOW = """
local function clock(given)
  if given ~= '' then return given end
  local t = redis.call('time')
  return t[1] .. '.' .. string.format('%06d', tonumber(t[2]))
end
"""

# How a script tells the nodes: SPUBLISH (sharded, Redis 7+) or PUBLISH.
_TELL = """
local function tell(mode, topic, message)
  if mode == 's' then redis.call('spublish', topic, message)
  else redis.call('publish', topic, message) end
end
"""

#: KEYS meta, stream. ARGV topic, data, event, publisher, size, ttl, meta_ttl,
#: new_epoch, now, mode. Returns {epoch, offset, time}.
#: The message to the nodes: "p" EPOCH " " OFFSET " " TIME " " EVENT_LEN " "
#: PUBLISHER_LEN " " EVENT PUBLISHER DATA (lengths in bytes; empty means none).
PUBLISH = Script(
    "publish",
    _NOW
    + _TELL
    + """
local epoch = redis.call('hget', KEYS[1], 'e')
if not epoch then
  -- A new stream: whatever an older one left (a longer TTL than the metadata's) goes.
  epoch = ARGV[8]
  redis.call('hset', KEYS[1], 'e', epoch)
  redis.call('del', KEYS[2])
end
local offset = redis.call('hincrby', KEYS[1], 's', 1)
local now = clock(ARGV[9])
local size = tonumber(ARGV[5])
if size > 0 then
  redis.call('xadd', KEYS[2], 'MAXLEN', size, offset .. '-1',
    'd', ARGV[2], 'e', ARGV[3], 'p', ARGV[4], 't', now)
  redis.call('expire', KEYS[2], ARGV[6])
else
  redis.call('del', KEYS[2])
end
redis.call('expire', KEYS[1], ARGV[7])
tell(ARGV[10], ARGV[1], 'p' .. epoch .. ' ' .. offset .. ' ' .. now .. ' ' .. #ARGV[3] .. ' '
  .. #ARGV[4] .. ' ' .. ARGV[3] .. ARGV[4] .. ARGV[2])
return {epoch, offset, now}
""",
)

#: KEYS meta, stream. ARGV since_offset ('' for the newest), limit, new_epoch,
#: empty_ttl, now. Returns {epoch, top, now, entries}; entries as XRANGE gives them.
#: A channel never published to gets its epoch here (kept for ``empty_ttl``), so
#: that a subscriber's cursor stays in the epoch its first publication will have.
READ = Script(
    "read",
    _NOW
    + """
local meta = redis.call('hmget', KEYS[1], 'e', 's')
local epoch, top = meta[1], tonumber(meta[2] or '0')
if not epoch then
  epoch = ARGV[3]
  redis.call('hset', KEYS[1], 'e', epoch)
  redis.call('expire', KEYS[1], ARGV[4])
end
local now = clock(ARGV[5])
local limit = tonumber(ARGV[2])
local entries = {}
if limit > 0 then
  if ARGV[1] == '' then
    entries = redis.call('xrevrange', KEYS[2], '+', '-', 'COUNT', limit)
  else
    entries = redis.call('xrange', KEYS[2], '(' .. ARGV[1] .. '-1', '+', 'COUNT', limit)
  end
end
return {epoch, top, now, entries, ARGV[1] == '' and 1 or 0}
""",
)

_EXPIRE_STALE = """
local function expire_stale(now, mode, topic)
  local stale = redis.call('zrangebyscore', KEYS[2], '-inf', now)
  for _, field in ipairs(stale) do
    local payload = redis.call('hget', KEYS[1], field)
    redis.call('hdel', KEYS[1], field)
    redis.call('zrem', KEYS[2], field)
    if payload then
      local user = string.sub(field, 1, string.find(field, '\\0', 1, true) - 1)
      if redis.call('hincrby', KEYS[3], user, -1) <= 0 then
        redis.call('hdel', KEYS[3], user)
        tell(mode, topic, 'l' .. payload)
      end
    end
  end
end
"""

#: KEYS members, expiry, users. ARGV field (USER \\0 NODE), payload (JSON of
#: user, info, connections), user, ttl, topic, mode. Returns 1 for a first join.
JOIN = Script(
    "join",
    _NOW
    + _TELL
    + """
local now = tonumber(clock(''))
local ttl = tonumber(ARGV[4])
local new = redis.call('hset', KEYS[1], ARGV[1], ARGV[2])
redis.call('zadd', KEYS[2], now + ttl, ARGV[1])
local first = 0
if new == 1 and redis.call('hincrby', KEYS[3], ARGV[3], 1) == 1 then
  first = 1
  tell(ARGV[6], ARGV[5], 'j' .. ARGV[2])
end
for i = 1, 3 do redis.call('expire', KEYS[i], math.ceil(ttl * 2)) end
return first
""",
)

#: KEYS members, expiry, users. ARGV field, user, topic, mode. Returns 1 for a last leave.
LEAVE = Script(
    "leave",
    _TELL
    + """
local payload = redis.call('hget', KEYS[1], ARGV[1])
if not payload then return 0 end
redis.call('hdel', KEYS[1], ARGV[1])
redis.call('zrem', KEYS[2], ARGV[1])
if redis.call('hincrby', KEYS[3], ARGV[2], -1) <= 0 then
  redis.call('hdel', KEYS[3], ARGV[2])
  tell(ARGV[4], ARGV[3], 'l' .. payload)
  return 1
end
return 0
""",
)

#: KEYS members, expiry, users. ARGV topic, mode. Drops members whose node stopped
#: refreshing them (telling the nodes of each user that left), then returns the
#: rest as HVALS gives them.
MEMBERS = Script(
    "members",
    _NOW
    + _TELL
    + _EXPIRE_STALE
    + """
expire_stale(tonumber(clock('')), ARGV[2], ARGV[1])
return redis.call('hvals', KEYS[1])
""",
)

SCRIPTS = (PUBLISH, READ, JOIN, LEAVE, MEMBERS)

"""Redis projection of current tiers (SPEC section 7), written atomically per customer.

One Lua script per customer updates the record, the tier-count hashes and the membership sets together,
and only when the new record's `version` is greater than the stored one. Counts are derived from the
record Redis already holds, so replays, crashes and rebalances can never double count.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence

import orjson
import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from tenacity import AsyncRetrying, retry_if_exception_type, wait_exponential

log = logging.getLogger(__name__)

# KEYS[1] record key. ARGV: prefix, customer_id, version, n_dimensions, dimension names..., then the record's
# fields as one JSON object of strings (one argument instead of two per field: cheaper to build and send).
PROJECT_SCRIPT = """
local key = KEYS[1]
local prefix, customer, version = ARGV[1], ARGV[2], tonumber(ARGV[3])
local current = redis.call('HGET', key, 'version')
if current and tonumber(current) >= version then return 0 end
local ndims = tonumber(ARGV[4])
local fields = cjson.decode(ARGV[5 + ndims])
local flat = {}
for name, value in pairs(fields) do
  flat[#flat + 1] = name
  flat[#flat + 1] = value
end
for i = 1, ndims do
  local dim = ARGV[4 + i]
  local old = redis.call('HGET', key, dim)
  if old == false then old = nil end
  local new = fields[dim]
  if old ~= new then
    local counts = prefix .. ':tier-counts:' .. dim
    if old then
      redis.call('SREM', prefix .. ':tier:' .. dim .. ':' .. old, customer)
      if redis.call('HINCRBY', counts, old, -1) <= 0 then redis.call('HDEL', counts, old) end
    end
    if new then
      redis.call('SADD', prefix .. ':tier:' .. dim .. ':' .. new, customer)
      redis.call('HINCRBY', counts, new, 1)
    end
  end
end
redis.call('DEL', key)
redis.call('HSET', key, unpack(flat))
return 1
"""

RETRYABLE = (RedisConnectionError, RedisTimeoutError, OSError)


def record_key(prefix: str, customer_id: str) -> str:
    return f"{prefix}:customer:{customer_id}"


class RedisProjection:
    """Pipelined, version-guarded, retried writes of customer records."""

    def __init__(self, url: str, prefix: str = "segmenter", on_error: object = None) -> None:
        self.prefix = prefix
        self.client = aioredis.Redis.from_url(url, socket_timeout=10, socket_connect_timeout=5)
        self._script = self.client.register_script(PROJECT_SCRIPT)
        self._on_error = on_error  # callable() counting failures, e.g. a Prometheus counter's inc

    async def ping(self) -> None:
        await self.client.ping()

    async def write(self, records: Iterable[tuple[str, Mapping[str, str]]], dimensions: Sequence[str]) -> int:
        """Write (customer_id, fields) records, retrying with backoff until Redis takes them; count writes."""
        batch = list(records)
        if not batch:
            return 0
        async for attempt in AsyncRetrying(
            retry=retry_if_exception_type(RETRYABLE),
            wait=wait_exponential(multiplier=0.1, max=10),
            before_sleep=self._before_retry,
            reraise=True,
        ):
            with attempt:
                pipe = self.client.pipeline(transaction=False)
                head = [str(len(dimensions)), *dimensions]
                for customer_id, fields in batch:
                    args = [self.prefix, customer_id, fields["version"], *head, orjson.dumps(fields)]
                    await self._script(keys=[record_key(self.prefix, customer_id)], args=args, client=pipe)
                results = await pipe.execute()
        return sum(1 for result in results if result == 1)

    def _before_retry(self, retry_state) -> None:  # type: ignore[no-untyped-def]
        if self._on_error is not None:
            self._on_error()
        exc = retry_state.outcome.exception() if retry_state.outcome else None
        log.warning(
            "Redis write failed (%s); retrying in %.1fs", type(exc).__name__, retry_state.next_action.sleep
        )

    async def delete_all(self) -> int:
        """Remove every key under the prefix (before a rebuild)."""
        deleted = 0
        async for key in self.client.scan_iter(match=f"{self.prefix}:*", count=1000):
            deleted += await self.client.delete(key)
        return deleted

    async def close(self) -> None:
        await self.client.aclose()

"""Redis projection of current tiers (SPEC section 7), written atomically per customer.

A Lua script updates a customer's record, the tier-count hashes and the membership sets together, and only
when the new record's `version` is greater than the stored one. Counts are derived from the record Redis
already holds, so replays, crashes and rebalances can never double count.

The worker writes a batch with one script call (`BATCH_SCRIPT`, faster than a pipeline of per-customer
calls: bench/redis_batch.py), after the batch's Kafka transaction committed, so Redis only ever shows
committed state. The same call raises the batch's partitions in the `projected` hash to the customers
changelog offsets the batch wrote: a restore re-projects the customers written past it (a crash between
the commit and the Redis write). `write` (per-customer calls) serves `redis rebuild`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import orjson
import redis
import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from tenacity import AsyncRetrying, Retrying, retry_if_exception_type, wait_exponential

from segmenter.customer import Emitted
from segmenter.timeutil import day_iso

log = logging.getLogger(__name__)

# Lua shared by both scripts: write one record (version-guarded) and move the customer between the
# tier-count hashes and membership sets by diffing against the record Redis holds; push the tier changes
# newer than the record Redis holds to the customer's history (capped at `keep`) and count them in the
# flows (SPEC section 14). `args[first..]`: n_changes, then per change: record version, event JSON, flows
# key suffix `{dimension}:{day}`, flows field `FROM>TO`. `dims`: the dimensions of the record's rules, and
# `-NAME` for one they dropped (a dimension may share its name with a feature field). Returns 1 if written.
_PROJECT_FUNCTION = """
local function project(prefix, dims, key, customer, version, fields_json, keep, args, first)
  local current = redis.call('HGET', key, 'version')
  if current and tonumber(current) >= version then return 0 end
  local held = current and tonumber(current) or -1
  local nchanges = tonumber(args[first])
  local history = prefix .. ':history:' .. customer
  local pushed = false
  for j = 0, nchanges - 1 do
    local at = first + 1 + 4 * j
    if tonumber(args[at]) > held then
      if keep > 0 then
        redis.call('LPUSH', history, args[at + 1])
        pushed = true
      end
      redis.call('HINCRBY', prefix .. ':flows:' .. args[at + 2], args[at + 3], 1)
    end
  end
  if pushed then redis.call('LTRIM', history, 0, keep - 1) end
  local fields = cjson.decode(fields_json)
  local flat = {}
  for name, value in pairs(fields) do
    flat[#flat + 1] = name
    flat[#flat + 1] = value
  end
  for i = 1, #dims do
    local dim = dims[i]
    local new = nil
    if string.sub(dim, 1, 1) == '-' then
      dim = string.sub(dim, 2)  -- a dimension the rules dropped: the record no longer holds its tier
    else
      new = fields[dim]
    end
    local old = redis.call('HGET', key, dim)
    if old == false then old = nil end
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
end
"""

# KEYS[1] record key. ARGV: prefix, customer_id, version, n_dimensions, dimension names..., then the record's
# fields as one JSON object of strings (one argument instead of two per field: cheaper to build and send).
# No tier changes: `redis rebuild` rebuilds history and flows from the tier-changes topic.
PROJECT_SCRIPT = (
    _PROJECT_FUNCTION
    + """
local ndims = tonumber(ARGV[4])
local dims = {}
for i = 1, ndims do dims[i] = ARGV[4 + i] end
return project(ARGV[1], dims, KEYS[1], ARGV[2], tonumber(ARGV[3]), ARGV[5 + ndims], 0, {'0'}, 1)
"""
)

# KEYS[1] the projected-offsets hash, KEYS[2] the rebuild flag, KEYS[3..] record keys. ARGV: prefix,
# history length kept, n_dimensions, dimension names..., n_offsets, (field, offset) pairs..., n_expected,
# fields that must exist in the projected hash, then per record: customer_id, version, fields as one JSON
# object, n_changes, the changes (see `project`).
# Returns the number of records written, -1 while `redis rebuild` runs (nothing written), -2 when a mark
# the worker wrote before is gone (Redis lost data: nothing written, the worker re-projects everything).
BATCH_SCRIPT = (
    _PROJECT_FUNCTION
    + """
if redis.call('EXISTS', KEYS[2]) == 1 then return -1 end
local prefix = ARGV[1]
local keep = tonumber(ARGV[2])
local ndims = tonumber(ARGV[3])
local dims = {}
for i = 1, ndims do dims[i] = ARGV[3 + i] end
local at = 4 + ndims
local noffsets = tonumber(ARGV[at])
local marks = at
at = at + 2 * noffsets + 1
local nexpected = tonumber(ARGV[at])
for i = 1, nexpected do
  if redis.call('HEXISTS', KEYS[1], ARGV[at + i]) == 0 then return -2 end
end
at = at + nexpected + 1
for i = 1, noffsets do
  local field, offset = ARGV[marks + 2 * i - 1], tonumber(ARGV[marks + 2 * i])
  local current = redis.call('HGET', KEYS[1], field)
  if (not current) or tonumber(current) < offset then redis.call('HSET', KEYS[1], field, offset) end
end
local written = 0
for k = 3, #KEYS do
  written = written + project(prefix, dims, KEYS[k], ARGV[at], tonumber(ARGV[at + 1]), ARGV[at + 2], keep,
    ARGV, at + 3)
  at = at + 4 + 4 * tonumber(ARGV[at + 3])
end
return written
"""
)

RETRYABLE: tuple[type[Exception], ...] = (RedisConnectionError, RedisTimeoutError, OSError)
SCRIPT_CHUNK = 2000
DEFAULT_HISTORY = 100  # records per script call: bounds how long one call holds Redis


def projected_key(prefix: str) -> str:
    """Hash: `{app_id}:{partition}` -> customers changelog offset up to which Redis shows the states."""
    return f"{prefix}:projected"


def rebuild_flag_key(prefix: str) -> str:
    """Set while `segmenter redis rebuild` runs: workers hold their Redis writes (it has their commits)."""
    return f"{prefix}:rebuilding"


class RedisRebuilding(Exception):
    """`redis rebuild` is running: the write waits (retried) until it is done."""


class RedisLostData(Exception):
    """A projected mark this worker wrote is gone: Redis lost data (flushed, restarted empty)."""


class BatchProjection:
    """The worker's writer: one script call per batch (chunked), retried while Redis is away.

    Synchronous: the worker's loop waits for it, so nothing after a batch runs before Redis has it.
    """

    def __init__(
        self,
        url: str,
        prefix: str,
        app_id: str,
        on_error: Callable[[], None] | None = None,
        history: int = DEFAULT_HISTORY,
    ) -> None:
        """`history`: how many tier changes each customer's history list keeps (0: none)."""
        self.prefix = prefix
        self.app_id = app_id
        self.history = history
        self.client = redis.Redis.from_url(url, socket_timeout=10, socket_connect_timeout=5)
        self._script = self.client.register_script(BATCH_SCRIPT)
        self._on_error = on_error

    def ping(self) -> bool:
        try:
            return bool(self.client.ping())
        except (redis.exceptions.RedisError, OSError):
            return False

    def publish_rules(self, version: str, text: str) -> None:
        """Keep a rules file's text by version (`explain`, the UI); a warning if Redis is away."""
        try:
            self.client.set(rules_key(self.prefix, version), text)
        except (redis.exceptions.RedisError, OSError) as exc:
            log.warning("cannot store the rules text in Redis: %s", exc)

    def projected(self, partitions: Iterable[int]) -> dict[int, int | None]:
        """Per partition, the changelog offset from which Redis may lag (None: Redis knows nothing)."""
        chosen = list(partitions)
        if not chosen:
            return {}
        values = self._retried(
            lambda: self.client.hmget(projected_key(self.prefix), [f"{self.app_id}:{p}" for p in chosen])
        )
        return {p: None if v is None else int(v) for p, v in zip(chosen, values, strict=True)}

    def write(
        self,
        records: Mapping[str, Mapping[str, str]],
        dimensions: Sequence[str],
        offsets: Mapping[int, int],
        expected: Iterable[int] = (),
        emitted: Mapping[str, Sequence[Emitted]] | None = None,
    ) -> int:
        """Write the records (version-guarded) and raise the partitions' projected offsets; count writes.

        `emitted`: per customer, the tier changes of its state (history and flows). `expected`: partitions
        whose mark this worker wrote before; `RedisLostData` if one is gone. Waits (retrying) while
        `redis rebuild` runs.
        """
        changes = emitted or {}
        must_exist = [f"{self.app_id}:{p}" for p in expected]
        if not records and not offsets:
            return 0
        items = list(records.items())
        head = [self.prefix, str(self.history), str(len(dimensions)), *dimensions]
        marks: list[Any] = [str(len(offsets))]
        for partition, offset in offsets.items():
            marks += [f"{self.app_id}:{partition}", offset]
        checks = [str(len(must_exist)), *must_exist]
        fixed_keys = [projected_key(self.prefix), rebuild_flag_key(self.prefix)]

        def send() -> int:
            pipe = self.client.pipeline(transaction=False)
            chunks = [items[i : i + SCRIPT_CHUNK] for i in range(0, len(items), SCRIPT_CHUNK)] or [[]]
            for index, chunk in enumerate(chunks):
                keys = fixed_keys + [record_key(self.prefix, cid) for cid, _ in chunk]
                args: list[Any] = [*head, *(marks if index == len(chunks) - 1 else ["0"]), *checks]
                for customer_id, fields in chunk:
                    args += [customer_id, fields["version"], orjson.dumps(fields)]
                    args += change_args(changes.get(customer_id, ()))
                self._script(keys=keys, args=args, client=pipe)
            results = [int(n) for n in pipe.execute()]
            if -2 in results:
                raise RedisLostData("a projected mark is gone")
            if -1 in results:
                raise RedisRebuilding("redis rebuild in progress")
            return sum(results)

        return self._retried(send)

    def _retried(self, call: Callable[[], Any]) -> Any:
        for attempt in Retrying(
            retry=retry_if_exception_type((*RETRYABLE, RedisRebuilding)),
            wait=wait_exponential(multiplier=0.1, max=5),
            before_sleep=self._before_retry,
            reraise=True,
        ):
            with attempt:
                return call()
        raise AssertionError("unreachable")  # pragma: no cover - Retrying re-raises

    def _before_retry(self, retry_state: Any) -> None:
        if self._on_error is not None:
            self._on_error()
        exc = retry_state.outcome.exception() if retry_state.outcome else None
        log.warning(
            "Redis write failed (%s); retrying in %.1fs", type(exc).__name__, retry_state.next_action.sleep
        )

    def close(self) -> None:
        self.client.close()


def record_key(prefix: str, customer_id: str) -> str:
    return f"{prefix}:customer:{customer_id}"


def rules_key(prefix: str, version: str) -> str:
    """The text of a rules file by version: what `explain` and the UI evaluate a record's tiers with."""
    return f"{prefix}:rules:{version}"


def history_key(prefix: str, customer_id: str) -> str:
    """List of the customer's last tier-change events (JSON), newest first (SPEC section 14)."""
    return f"{prefix}:history:{customer_id}"


def flows_key(prefix: str, dimension: str, day: str) -> str:
    """Hash `FROM>TO` -> tier changes with `at` on `day` (`YYYY-MM-DD`); FROM empty for a first one."""
    return f"{prefix}:flows:{dimension}:{day}"


def flow_field(from_tier: str | None, to_tier: str) -> str:
    return f"{from_tier or ''}>{to_tier}"


def change_args(changes: Sequence[Emitted]) -> list[Any]:
    """The script arguments of a record's tier changes (see `_PROJECT_FUNCTION`)."""
    args: list[Any] = [str(len(changes))]
    for change in changes:
        args += [
            change.version,
            change.body,
            f"{change.dimension}:{day_iso(change.day)}",
            flow_field(change.from_tier, change.to_tier),
        ]
    return args


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
        """Remove every key under the prefix (before a rebuild), except the rebuild flag and the rules
        texts (they are not in the tables)."""
        deleted = 0
        flag = rebuild_flag_key(self.prefix).encode()
        rules = rules_key(self.prefix, "").encode()
        async for key in self.client.scan_iter(match=f"{self.prefix}:*", count=1000):
            if key != flag and not key.startswith(rules):
                deleted += await self.client.delete(key)
        return deleted

    async def close(self) -> None:
        await self.client.aclose()

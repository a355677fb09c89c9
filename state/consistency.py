"""Compare the Redis projection with the tables: records, tier counts and membership sets."""

from __future__ import annotations

from collections import Counter, defaultdict

import redis.asyncio as aioredis

from segmenter.customer import CustomerState
from segmenter.engine import Engine
from state.history import HistoryAndFlows
from state.redis_projection import record_key


async def compare(
    engine: Engine,
    customers: dict[str, CustomerState],
    redis_url: str,
    prefix: str,
    changes: HistoryAndFlows | None = None,
) -> list[str]:
    """Human-readable differences; empty when Redis equals what the tables (and, if given, the tier
    changes: history and flows) imply."""
    if changes is not None:
        return await _compare_history(redis_url, prefix, changes) + await compare(
            engine, customers, redis_url, prefix
        )
    client = aioredis.Redis.from_url(url=redis_url, decode_responses=True)
    differences: list[str] = []
    try:
        expected_counts: dict[str, Counter[str]] = defaultdict(Counter)
        expected_members: dict[tuple[str, str], set[str]] = defaultdict(set)
        items = list(customers.items())
        for start in range(0, len(items), 1000):
            chunk = items[start : start + 1000]
            pipe = client.pipeline(transaction=False)
            for customer_id, _ in chunk:
                pipe.hgetall(record_key(prefix, customer_id))
            stored = await pipe.execute()
            for (customer_id, state), actual in zip(chunk, stored, strict=True):
                expected = engine.record_fields(state)
                if actual != expected:
                    differences.append(f"record {customer_id}: redis={actual} tables={expected}")
                for dimension in engine.rules_for(state.partition).dimension_names:
                    tier = state.tiers.get(dimension)
                    if tier is not None:
                        expected_counts[dimension][tier] += 1
                        expected_members[(dimension, tier)].add(customer_id)
        known = set(customers)
        async for key in client.scan_iter(match=f"{prefix}:customer:*", count=1000):
            customer_id = key[len(f"{prefix}:customer:") :]
            if customer_id not in known:
                differences.append(f"record {customer_id}: in redis but not in the tables")
        for partition in {state.partition for state in customers.values()}:
            engine.context_for(partition)
        for dimension in engine.known_dimensions():
            actual_counts = {
                t: int(n) for t, n in (await client.hgetall(f"{prefix}:tier-counts:{dimension}")).items()
            }
            wanted = {t: n for t, n in expected_counts[dimension].items() if n}
            if {t: n for t, n in actual_counts.items() if n} != wanted:
                differences.append(f"tier-counts {dimension}: redis={actual_counts} tables={wanted}")
            tiers = set(wanted) | set(actual_counts)
            async for key in client.scan_iter(match=f"{prefix}:tier:{dimension}:*", count=1000):
                tiers.add(key.rsplit(":", 1)[1])
            for tier in sorted(tiers):
                members = await client.smembers(f"{prefix}:tier:{dimension}:{tier}")
                if members != expected_members[(dimension, tier)]:
                    missing = len(expected_members[(dimension, tier)] - members)
                    extra = len(members - expected_members[(dimension, tier)])
                    differences.append(f"set {dimension}:{tier}: {missing} missing, {extra} extra")
        return differences
    finally:
        await client.aclose()


async def _compare_history(redis_url: str, prefix: str, changes: HistoryAndFlows) -> list[str]:
    """History lists and flows hashes against the tier-changes topic."""
    client = aioredis.Redis.from_url(url=redis_url)
    differences: list[str] = []
    try:
        expected_history = changes.redis_history(prefix)
        async for key in client.scan_iter(match=f"{prefix}:history:*", count=1000):
            expected_history.setdefault(key.decode(), [])
        for key, wanted in expected_history.items():
            actual = await client.lrange(key, 0, -1)
            if actual != wanted:
                differences.append(
                    f"history {key}: redis has {len(actual)} entries, the tier changes {len(wanted)}"
                )
        expected_flows = changes.redis_flows(prefix)
        async for key in client.scan_iter(match=f"{prefix}:flows:*", count=1000):
            expected_flows.setdefault(key.decode(), {})
        for key, counts in expected_flows.items():
            actual_flows = {f.decode(): int(n) for f, n in (await client.hgetall(key)).items()}
            if actual_flows != counts:
                differences.append(f"flows {key}: redis={actual_flows} tier changes={counts}")
        return differences
    finally:
        await client.aclose()

"""Turns engine Effects into the outside world: Redis records, tier-change and dead-letter sends, metrics."""

from __future__ import annotations

import time
from typing import Any

from segmenter.engine import Effects, Engine
from state.redis_projection import RedisProjection
from streams import metrics


class EffectSink:
    def __init__(self, engine: Engine, projection: RedisProjection, tier_topic: Any, dlq_topic: Any) -> None:
        self.engine = engine
        self.projection = projection
        self.tier_topic = tier_topic
        self.dlq_topic = dlq_topic
        self.customers_by_tier: dict[tuple[str, str], int] = {}

    async def flush(self, effects: Effects) -> None:
        """Project to Redis first, then send: a crash in between replays to the same versions (idempotent)."""
        if effects.projections:
            started = time.perf_counter()
            records = [
                (customer_id, self.engine.record_fields(state))
                for customer_id, state in effects.projections.items()
            ]
            await self.projection.write(records, self.engine.rules.dimension_names)
            metrics.REDIS_WRITE_SECONDS.observe(time.perf_counter() - started)
        for change in effects.transitions:
            # Buffered: Faust flushes its producer before committing offsets (and inside the transaction
            # with exactly_once), so nothing is acknowledged before it is sent.
            self.tier_topic.send_soon(
                key=change.customer_id.encode(), value=change.to_json(), headers=change.headers()
            )
            metrics.TRANSITIONS.labels(
                change.dimension, change.from_tier or "", change.to_tier, change.reason
            ).inc()
            if change.from_tier is not None:
                metrics.CUSTOMERS.labels(change.dimension, change.from_tier).dec()
            metrics.CUSTOMERS.labels(change.dimension, change.to_tier).inc()
        for letter in effects.dead_letters:
            headers = list(letter.headers or []) + [
                ("x-dlq-reason", letter.reason.value.encode()),
                ("x-dlq-detail", letter.detail.encode("utf-8", "replace")[:1024]),
                ("x-dlq-source-topic", letter.topic.encode()),
                ("x-dlq-source-partition", str(letter.partition).encode()),
                ("x-dlq-source-offset", str(letter.offset).encode()),
            ]
            self.dlq_topic.send_soon(key=letter.key, value=letter.value, headers=headers)
            metrics.DEAD_LETTERS.labels(letter.reason.value).inc()
        for (topic, outcome), count in effects.outcomes.items():
            metrics.EVENTS.labels(topic, outcome).inc(count)
        if effects.event_times:
            now_micros = time.time() * 1e6
            for ts in effects.event_times:
                metrics.EVENT_LAG.observe(max(0.0, (now_micros - ts) / 1e6))
        effects.clear()

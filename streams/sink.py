"""Turns engine Effects into the outside world: Redis records, tier-change and dead-letter sends, metrics.

The agent calls the steps in order, each after the previous one is acknowledged: tables (elsewhere), then
`project`, then `send`, then `count`. See `Engine.take_dirty` for why this order makes re-sends exact.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterable
from typing import Any

from segmenter.customer import CustomerState
from segmenter.engine import Effects, Engine
from segmenter.transitions import headers_of_body
from state.redis_projection import RedisProjection
from streams import metrics


class EffectSink:
    def __init__(self, engine: Engine, projection: RedisProjection, tier_topic: Any, dlq_topic: Any) -> None:
        self.engine = engine
        self.projection = projection
        self.tier_topic = tier_topic
        self.dlq_topic = dlq_topic

    async def project(self, effects: Effects) -> None:
        """Write the Redis records (retried until Redis answers; versioned, so a replay is harmless)."""
        if not effects.projections:
            return
        started = time.perf_counter()
        records = [
            (customer_id, self.engine.record_fields(state))
            for customer_id, state in effects.projections.items()
        ]
        await self.projection.write(records, self.engine.rules.dimension_names)
        metrics.REDIS_WRITE_SECONDS.observe(time.perf_counter() - started)

    def send(self, written: Iterable[CustomerState], effects: Effects) -> list[Any]:
        """Send the outboxes of the written customers and the dead letters; the futures of every send."""
        futures = []
        for state in written:
            for body in state.outbox:
                futures.append(
                    self.tier_topic.send_soon(
                        key=state.customer_id.encode(), value=body, headers=headers_of_body(body)
                    )
                )
        for letter in effects.dead_letters:
            headers = list(letter.headers or []) + [
                ("x-dlq-reason", letter.reason.value.encode()),
                ("x-dlq-detail", letter.detail.encode("utf-8", "replace")[:1024]),
                ("x-dlq-source-topic", letter.topic.encode()),
                ("x-dlq-source-partition", str(letter.partition).encode()),
                ("x-dlq-source-offset", str(letter.offset).encode()),
            ]
            futures.append(self.dlq_topic.send_soon(key=letter.key, value=letter.value, headers=headers))
        return futures

    @staticmethod
    def count(effects: Effects) -> None:
        """Metrics of a batch whose effects are acknowledged."""
        moves = Counter((c.dimension, c.from_tier or "", c.to_tier, c.reason) for c in effects.transitions)
        tier_deltas: Counter[tuple[str, str]] = Counter()
        for (dimension, from_tier, to_tier, reason), count in moves.items():
            metrics.TRANSITIONS.labels(dimension, from_tier, to_tier, reason).inc(count)
            if from_tier:
                tier_deltas[(dimension, from_tier)] -= count
            tier_deltas[(dimension, to_tier)] += count
        for (dimension, tier), delta in tier_deltas.items():
            if delta:
                metrics.CUSTOMERS.labels(dimension, tier).inc(delta)
        if effects.resent:
            metrics.RESENT.inc(effects.resent)
        for letter in effects.dead_letters:
            metrics.DEAD_LETTERS.labels(letter.reason.value).inc()
        for (topic, outcome), count in effects.outcomes.items():
            metrics.EVENTS.labels(topic, outcome).inc(count)
        if effects.event_times:
            now_micros = time.time() * 1e6
            for ts in effects.event_times:
                metrics.EVENT_LAG.observe(max(0.0, (now_micros - ts) / 1e6))

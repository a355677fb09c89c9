"""Prometheus metrics of a worker (SPEC section 8).

Names follow Prometheus practice: base units, `_total` counters, bounded labels only — never a customer id
or event id in a label. Every metric lives in one registry so tests and the `/metrics` view agree.
"""

from __future__ import annotations

import time
from collections import Counter as Tally

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from segmenter.engine import BatchResult

REGISTRY = CollectorRegistry(auto_describe=True)

EVENTS = Counter(
    "segmenter_events",
    "Input events handled, by input topic and outcome (applied, duplicate, dead_letter).",
    ["topic", "outcome"],
    registry=REGISTRY,
)
DEAD_LETTERS = Counter(
    "segmenter_dead_letters",
    "Messages written to the dead-letter topic, by reason.",
    ["reason"],
    registry=REGISTRY,
)
TRANSITIONS = Counter(
    "segmenter_tier_transitions",
    "Tier-change events emitted, by dimension, from tier, to tier and reason.",
    ["dimension", "from", "to", "reason"],
    registry=REGISTRY,
)
CUSTOMERS = Gauge(
    "segmenter_customers",
    "Customers currently in each tier, over the partitions this worker owns.",
    ["dimension", "tier"],
    registry=REGISTRY,
)
EVENT_LAG = Histogram(
    "segmenter_event_lag_seconds",
    "Processing time minus event time of applied events.",
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 3600, 86400, float("inf")),
    registry=REGISTRY,
)
WATERMARK = Gauge(
    "segmenter_watermark_timestamp_seconds",
    "Event-time watermark of each input partition this worker owns (Unix seconds).",
    ["partition"],
    registry=REGISTRY,
)
REDIS_ERRORS = Counter(
    "segmenter_redis_errors",
    "Failed Redis projection attempts (each retried until it succeeds).",
    registry=REGISTRY,
)
REDIS_WRITE_SECONDS = Histogram(
    "segmenter_redis_write_seconds",
    "Duration of one pipelined Redis projection write (one batch of customers).",
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, float("inf")),
    registry=REGISTRY,
)
BATCH_SECONDS = Histogram(
    "segmenter_batch_processing_seconds",
    "Duration of processing one batch of input messages, Redis write and sends included.",
    buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, float("inf")),
    registry=REGISTRY,
)
CONSUMER_LAG = Gauge(
    "segmenter_consumer_lag_messages",
    "Messages between the committed offset and the end of each input partition this worker owns.",
    ["topic", "partition"],
    registry=REGISTRY,
)
READY = Gauge(
    "segmenter_ready",
    "1 once this worker's tables are recovered and it is processing, else 0.",
    registry=REGISTRY,
)
TRANSACTIONS_ABORTED = Counter(
    "segmenter_transactions_aborted",
    "Batches whose Kafka transaction was aborted (rebalance, broker down); their records are handled again.",
    registry=REGISTRY,
)
RESTORE_SECONDS = Histogram(
    "segmenter_restore_seconds",
    "Duration of restoring newly assigned partitions from their changelogs (before processing them).",
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, float("inf")),
    registry=REGISTRY,
)
RESTORED_RECORDS = Counter(
    "segmenter_restored_records",
    "Changelog records read while restoring partition stores.",
    registry=REGISTRY,
)


def count_batch(result: BatchResult) -> None:
    """Metrics of a committed batch (counted once, after its commit)."""
    moves = Tally((c.dimension, c.from_tier or "", c.to_tier, c.reason) for c in result.transitions)
    for (dimension, from_tier, to_tier, reason), count in moves.items():
        TRANSITIONS.labels(dimension, from_tier, to_tier, reason).inc(count)
    for reason, count in Tally(letter.reason.value for letter in result.dead_letters).items():
        DEAD_LETTERS.labels(reason).inc(count)
    for (topic, outcome), count in result.outcomes.items():
        EVENTS.labels(topic, outcome).inc(count)
    if result.event_times:
        now_micros = time.time() * 1e6
        observe = EVENT_LAG.observe
        for ts in result.event_times:
            observe(max(0.0, (now_micros - ts) / 1e6))

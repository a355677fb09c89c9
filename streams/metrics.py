"""Prometheus metrics of a worker (SPEC section 8).

Names follow Prometheus practice: base units, `_total` counters, bounded labels only — never a customer id
or event id in a label. Every metric lives in one registry so tests and the `/metrics` view agree.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

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
RESENT = Counter(
    "segmenter_tier_changes_resent",
    "Tier changes sent again after a takeover because a crash cut their batch (same event_id and bytes).",
    registry=REGISTRY,
)
MISSED_RECORDS = Counter(
    "segmenter_missed_records_recovered",
    "Records Faust skipped around a rebalance that the worker read from Kafka itself (none lost).",
    ["topic"],
    registry=REGISTRY,
)

"""librdkafka configurations of the worker's clients: one place for every Kafka setting the runtime relies on.

- Consumer: the `range` assignor (co-partitioned topics land together: the same partition numbers of every
  input topic on one member), `read_committed`, offsets only committed by the worker (in its transactions),
  optional static membership (`group.instance.id`) so a restarted worker rejoins without a rebalance.
- Transactional producer (KIP-447): one per process, `transactional.id` stable per worker so that a
  restarted worker aborts its predecessor's open transaction at once.
- Ticks producer: plain idempotent producer for the wall-clock records of the control topic.
"""

from __future__ import annotations

import hashlib
import socket
from pathlib import Path
from typing import Any

from streams.kafka_security import librdkafka_security
from streams.preflight import DEAD_LETTER_MAX_BYTES

SESSION_TIMEOUT_MS = 10_000  # a killed worker's partitions move after this long (without static membership)
TRANSACTION_TIMEOUT_MS = 30_000  # longer than any batch; how long a dead worker's transaction blocks readers


def default_instance_id(data_dir: Path) -> str:
    """Stable per worker across restarts, distinct between workers of one host: host name + data dir."""
    digest = hashlib.sha256(str(data_dir.resolve()).encode()).hexdigest()[:8]
    return f"{socket.gethostname()}-{digest}"


def common(broker: str) -> dict[str, Any]:
    return {"bootstrap.servers": broker, **librdkafka_security()}


def consumer_config(
    broker: str, group: str, static_instance_id: str | None, max_poll_interval_ms: int = 600_000
) -> dict[str, Any]:
    config: dict[str, Any] = {
        **common(broker),
        "group.id": group,
        "partition.assignment.strategy": "range",
        "isolation.level": "read_committed",
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        "auto.offset.reset": "earliest",
        "session.timeout.ms": SESSION_TIMEOUT_MS,
        "heartbeat.interval.ms": 1000,
        "max.poll.interval.ms": max_poll_interval_ms,
        "fetch.max.bytes": 16 * 1024 * 1024,
        "max.partition.fetch.bytes": 4 * 1024 * 1024,
        "queued.max.messages.kbytes": 256 * 1024,
    }
    if static_instance_id:
        config["group.instance.id"] = static_instance_id
    return config


def transactional_producer_config(broker: str, transactional_id: str) -> dict[str, Any]:
    return {
        **common(broker),
        "transactional.id": transactional_id,
        "transaction.timeout.ms": TRANSACTION_TIMEOUT_MS,
        **_producer_common(),
    }


def producer_config(broker: str) -> dict[str, Any]:
    return {**common(broker), "enable.idempotence": True, **_producer_common()}


def _producer_common() -> dict[str, Any]:
    return {
        "linger.ms": 5,
        "batch.num.messages": 10_000,
        "queue.buffering.max.messages": 500_000,
        "queue.buffering.max.kbytes": 1024 * 1024,
        "message.max.bytes": DEAD_LETTER_MAX_BYTES + 64 * 1024,  # a dead letter is the original + headers
    }

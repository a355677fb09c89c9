"""Restoring partition stores from their changelog topics before a worker processes the partitions.

Read with `read_committed` up to the last stable offset (librdkafka signals partition EOF there), so the
records of an aborted or still open transaction (a worker killed in the middle of a batch) are never
restored. A RocksDB store resumes from its checkpoint; a memory store starts from the beginning.

The restore also says which customers Redis may not show yet: those whose changelog record is at or past
the partition's projected position (`state.redis_projection`), i.e. a batch committed to Kafka whose Redis
write a crash cut. The worker re-projects them.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from state.stores import PartitionStore, StoreWrite

log = logging.getLogger(__name__)
DUE_HEADER = "due"
CHUNK = 20_000


@dataclass(frozen=True)
class ChangelogTopics:
    customers: str
    clocks: str

    @classmethod
    def of(cls, app_id: str) -> ChangelogTopics:
        return cls(f"{app_id}-customers-changelog", f"{app_id}-clocks-changelog")

    def all(self) -> tuple[str, str]:
        return (self.customers, self.clocks)


@dataclass
class Restored:
    partition: int
    records: int = 0
    to_project: set[str] = field(default_factory=set)  # customers Redis may not have seen
    customers_end: int = 0  # next offset of the customers changelog partition after the restore


def due_of(headers: list[tuple[str, bytes]] | None) -> int | None:
    for name, value in headers or ():
        if name == DUE_HEADER:
            return int(value)
    return None


def restore(
    consumer_config: Mapping[str, Any],
    topics: ChangelogTopics,
    stores: Mapping[int, PartitionStore],
    projected: Mapping[int, int | None],
    on_progress: Callable[[int], None] | None = None,
    timeout_s: float = 300.0,
) -> dict[int, Restored]:
    """Bring every store up to its changelog's last stable offset; see the module docstring.

    `projected[p]`: the customers changelog offset from which Redis may lag (None: unknown, everything).
    """
    from confluent_kafka import Consumer, KafkaError, TopicPartition

    if not stores:
        return {}
    consumer = Consumer(
        {
            **consumer_config,
            "group.id": "segmenter-restore",  # never joins: partitions are assigned explicitly
            "enable.auto.commit": False,
            "enable.partition.eof": True,
            "isolation.level": "read_committed",
            "auto.offset.reset": "earliest",
        }
    )
    results = {p: Restored(p) for p in stores}
    lagging: dict[int, int | None] = {}
    started = time.monotonic()
    try:
        assignment = []
        for partition, store in stores.items():
            ends = {topic: _end_offset(consumer, TopicPartition(topic, partition)) for topic in topics.all()}
            checkpoint = store.checkpoint()
            starts = {topic: checkpoint.get(topic, 0) for topic in topics.all()}
            if any(starts[topic] > ends[topic] for topic in topics.all()):
                # The changelog is younger than the store (topics recreated): the store is stale.
                log.warning(
                    "partition %d: store checkpoint %s is past the changelog ends %s; restoring from scratch",
                    partition,
                    starts,
                    ends,
                )
                store.clear()
                starts = dict.fromkeys(topics.all(), 0)
            seen = projected.get(partition)
            if seen is not None and seen > ends[topics.customers]:
                seen = None  # Redis remembers other topics: re-project everything
            lagging[partition] = seen
            starts[topics.customers] = min(starts[topics.customers], 0 if seen is None else seen)
            results[partition].customers_end = starts[topics.customers]
            assignment += [TopicPartition(topic, partition, start) for topic, start in starts.items()]
        consumer.assign(assignment)
        remaining = {(tp.topic, tp.partition) for tp in assignment}
        pending: dict[int, StoreWrite] = {p: StoreWrite() for p in stores}
        customers_topic = topics.customers
        eof = KafkaError._PARTITION_EOF
        while remaining:
            if time.monotonic() - started > timeout_s:
                raise TimeoutError(
                    f"changelog restore not finished after {timeout_s:.0f}s: {sorted(remaining)}"
                )
            # A short timeout: librdkafka's batch consume waits it out when fewer records arrive, and the
            # partition EOFs (at the last stable offset) end the loop.
            messages = consumer.consume(num_messages=CHUNK, timeout=0.05)
            for message in messages:
                error = message.error()
                if error is not None:
                    if error.code() == eof:
                        remaining.discard((message.topic(), message.partition()))
                        continue
                    raise RuntimeError(f"changelog restore failed: {error}")
                key = message.key()
                value = message.value()
                if key is None or value is None:
                    continue
                partition = message.partition()
                change = pending[partition]
                result = results[partition]
                result.records += 1
                offset = message.offset()
                if message.topic() == customers_topic:
                    customer_id = key.decode()
                    change.customers[customer_id] = value
                    headers = message.headers()
                    change.due[customer_id] = None if headers is None else due_of(headers)
                    seen = lagging[partition]
                    if seen is None or offset >= seen:
                        result.to_project.add(customer_id)
                    result.customers_end = offset + 1
                    change.checkpoint[customers_topic] = offset + 1
                else:
                    change.clock = value
                    change.checkpoint[topics.clocks] = offset + 1
            for partition, change in pending.items():
                if change.customers or change.clock is not None:
                    stores[partition].write(change)
                    pending[partition] = StoreWrite()
            if on_progress is not None and messages:
                on_progress(len(messages))
        for partition, change in pending.items():
            if change.checkpoint:
                stores[partition].write(change)
    finally:
        consumer.close()
    return results


def _end_offset(consumer: Any, tp: Any) -> int:
    """The last stable offset, retried while the partition has no leader yet (a topic just created)."""
    from confluent_kafka import KafkaException
    from tenacity import Retrying, retry_if_exception, stop_after_delay, wait_exponential

    def retriable(exc: BaseException) -> bool:
        return isinstance(exc, KafkaException) and exc.args[0].retriable() or "leader" in str(exc).lower()

    for attempt in Retrying(
        retry=retry_if_exception(retriable),
        wait=wait_exponential(multiplier=0.1, max=2),
        stop=stop_after_delay(60),
        reraise=True,
    ):
        with attempt:
            high: int = consumer.get_watermark_offsets(tp, timeout=10)[1]
            return high
    raise AssertionError("unreachable")  # pragma: no cover - Retrying re-raises

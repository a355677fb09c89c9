"""Reading the customers changelog directly: the state of every customer without running a worker.

Used by `redis rebuild` and `redis check`: the changelog (read_committed) is the source of truth.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import msgspec
from kafka import KafkaConsumer, TopicPartition

from segmenter.clock import PartitionClock
from segmenter.customer import CustomerState
from streams.kafka_security import kafka_python_security


def changelog_topic(app_id: str, table: str = "customers") -> str:
    """The worker names a store's changelog `{app_id}-{table}-changelog` (`state.restore.ChangelogTopics`)."""
    return f"{app_id}-{table}-changelog"


def read_customers(
    broker: str,
    app_id: str,
    on_progress: Callable[[int, int], None] | None = None,
    ends: dict[int, int] | None = None,
) -> dict[str, CustomerState]:
    """Latest state of every customer in the changelog (tombstones remove customers).

    `ends`, if given, receives each partition's end offset as read (what the states reflect).
    """
    decoder = msgspec.msgpack.Decoder(CustomerState)
    customers: dict[str, CustomerState] = {}
    for key, value in _read_compacted(broker, changelog_topic(app_id), on_progress, ends):
        customer_id = key.decode()
        if value is None:
            customers.pop(customer_id, None)
        else:
            customers[customer_id] = decoder.decode(value)
    return customers


def read_customer(broker: str, app_id: str, customer_id: str) -> CustomerState | None:
    """One customer's latest state: only its partition of the changelog (the default partitioner's, as
    the inputs and the changelog are co-partitioned)."""
    from kafka.partitioner.default import murmur2

    key = customer_id.encode()
    consumer = KafkaConsumer(bootstrap_servers=broker.split(","), **kafka_python_security())
    try:
        partitions = consumer.partitions_for_topic(changelog_topic(app_id)) or set()
    finally:
        consumer.close()
    if not partitions:
        raise LookupError(f"changelog topic {changelog_topic(app_id)} does not exist")
    partition = (murmur2(key) & 0x7FFFFFFF) % len(partitions)
    found: bytes | None = None
    for record_key, value in _read_compacted(broker, changelog_topic(app_id), None, only=partition):
        if record_key == key:
            found = value
    return None if found is None else msgspec.msgpack.decode(found, type=CustomerState)


def read_clocks(broker: str, app_id: str) -> dict[int, PartitionClock]:
    """Latest clock of every partition (its watermark, counts and the rules in effect, SPEC section 13)."""
    decoder = msgspec.msgpack.Decoder(PartitionClock)
    clocks: dict[int, PartitionClock] = {}
    try:
        for _, value in _read_compacted(broker, changelog_topic(app_id, "clocks"), None):
            if value is not None:
                clock = decoder.decode(value)
                clocks[clock.partition] = clock
    except LookupError:
        return {}  # no worker kept a clock yet
    return clocks


def read_tier_changes(
    broker: str, topic: str, on_progress: Callable[[int, int], None] | None = None
) -> Iterator[bytes]:
    """Every committed tier-change event body of the topic, in order per partition (so per customer)."""
    for _, value in _read_compacted(broker, topic, on_progress, keyed=False):
        if value is not None:
            yield value


def _read_compacted(
    broker: str,
    topic: str,
    on_progress: Callable[[int, int], None] | None,
    ends: dict[int, int] | None = None,
    keyed: bool = True,
    only: int | None = None,
) -> Iterator[tuple[bytes, bytes | None]]:
    consumer = KafkaConsumer(
        bootstrap_servers=broker.split(","),
        enable_auto_commit=False,
        isolation_level="read_committed",
        request_timeout_ms=30_000,
        consumer_timeout_ms=10_000,
        **kafka_python_security(),
    )
    try:
        partitions = consumer.partitions_for_topic(topic)
        if not partitions:
            raise LookupError(
                f"changelog topic {topic} does not exist (wrong --app-id, or no worker ran yet)"
            )
        tps = [TopicPartition(topic, p) for p in sorted(partitions) if only is None or p == only]
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        end = consumer.end_offsets(tps)
        if ends is not None:
            ends.update({tp.partition: end[tp] for tp in tps})
        total = sum(end[tp] - consumer.position(tp) for tp in tps)
        done = 0
        remaining = {tp for tp in tps if consumer.position(tp) < end[tp]}
        while remaining:
            batches = consumer.poll(timeout_ms=1000, max_records=5000)
            for records in batches.values():
                for record in records:
                    if record.key is not None or not keyed:
                        yield record.key or b"", record.value
                done += len(records)
            for tp in list(remaining):
                if consumer.position(tp) >= end[tp]:
                    remaining.discard(tp)
            if on_progress is not None:
                on_progress(done, total)
    finally:
        consumer.close()

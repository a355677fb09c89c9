"""The commit protocol of one batch: the only place where the worker's effects are made durable.

exactly_once (default, KIP-447): one Kafka transaction per batch holds the changelog records (one per
changed customer, plus the partition clocks), the tier-change events, the dead letters and the input
offsets (`send_offsets_to_transaction` with the consumer's group metadata, so a zombie whose partitions
moved is fenced). Either all of it becomes visible to `read_committed` readers, or none of it.

at_least_once: the same records without a transaction, flushed, then the offsets committed. A crash between
the two replays the batch: the states already in the changelog recognise its records (per-customer offsets,
`segmenter.engine`), but a crash *while* the records are being written can leave a batch partly written, so
tier changes of that batch may be lost or, when the replay decides them again, duplicated.

Then, in both modes: Redis (one script call, only committed state; it records the changelog offsets it
reflects, see `state.redis_projection`), then the local stores (a RocksDB checkpoint never runs ahead of
Redis or Kafka). A failure before the commit aborts the batch (`BatchAborted`): the caller rewinds.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from segmenter.engine import BatchResult, DeadLetter
from state.codec import encode_clock, encode_customer
from state.redis_projection import BatchProjection, RedisLostData
from state.restore import DUE_HEADER, ChangelogTopics
from state.stores import PartitionStore, StoreWrite
from streams.topic_names import TopicNames

log = logging.getLogger(__name__)
COMMIT_TIMEOUT_S = 60.0
FLUSH_TIMEOUT_S = 120.0


class BatchAborted(Exception):
    """The batch's transaction was aborted (or its records not acknowledged): nothing of it is visible.

    `uncertain`: the commit request itself failed, so the broker may have committed it all the same (the
    caller checks the group's committed offsets).
    """

    def __init__(self, message: str, uncertain: bool = False) -> None:
        super().__init__(message)
        self.uncertain = uncertain


@dataclass
class _Delivery:
    """Offsets of the last changelog records of each partition, and the first delivery error."""

    last: dict[tuple[str, int], int] = field(default_factory=dict)
    error: Any = None

    def callback(self, err: Any, message: Any) -> None:
        if err is not None:
            if self.error is None:
                self.error = err
            return
        key = (message.topic(), message.partition())
        if message.offset() > self.last.get(key, -1):
            self.last[key] = message.offset()

    def failure(self, err: Any, message: Any) -> None:
        if err is not None and self.error is None:
            self.error = err


class Checkpoint:
    def __init__(
        self,
        consumer: Any,
        producer: Any,
        topics: TopicNames,
        changelogs: ChangelogTopics,
        projection: BatchProjection,
        stores: Callable[[int], PartitionStore],
        exactly_once: bool,
        reproject_all: Callable[[], None],
    ) -> None:
        """`reproject_all`: rewrite every owned customer to Redis (it lost its data)."""
        self.consumer = consumer
        self.producer = producer
        self.topics = topics
        self.changelogs = changelogs
        self.projection = projection
        self.stores = stores
        self.exactly_once = exactly_once
        self.reproject_all = reproject_all

    def commit(self, result: BatchResult, offsets: Mapping[tuple[str, int], int]) -> None:
        """Make the batch durable: Kafka (atomically), then Redis, then the local stores."""
        from confluent_kafka import KafkaException

        delivery = _Delivery()
        try:
            if self.exactly_once:
                self.producer.begin_transaction()
            changes = self._produce(result, delivery)
            self._flush(delivery)
            if self.exactly_once:
                self.producer.send_offsets_to_transaction(
                    _topic_partitions(offsets), self.consumer.consumer_group_metadata(), COMMIT_TIMEOUT_S
                )
                try:
                    self._commit_transaction()
                except KafkaException as exc:
                    self._abort(exc)
                    raise BatchAborted(str(exc), uncertain=True) from exc
            elif offsets:
                self.consumer.commit(offsets=_topic_partitions(offsets), asynchronous=False)
        except KafkaException as exc:
            self._abort(exc)
            raise BatchAborted(str(exc)) from exc
        except BatchAborted:
            self._abort(None)
            raise
        projected = {
            partition: offset + 1
            for (topic, partition), offset in delivery.last.items()
            if topic == self.changelogs.customers
        }
        try:
            self._project(result, projected, expected=projected)
        except RedisLostData:
            log.error(
                "Redis lost the projection (its marks are gone): re-projecting every owned customer; history "
                "and flows before now are gone until `segmenter redis rebuild` (it reads the tier changes)"
            )
            self.reproject_all()
            self._project(result, projected)
        self._write_stores(changes, delivery)

    def _project(self, result: BatchResult, projected: dict[int, int], expected: Iterable[int] = ()) -> None:
        """One write per group of records with the same dimensions (one, unless partitions run different
        rules); the projected marks go with the last."""
        groups = result.groups or [((), [])]
        for index, (dimensions, customer_ids) in enumerate(groups):
            last = index == len(groups) - 1
            self.projection.write(
                {cid: result.records[cid] for cid in customer_ids},
                dimensions,
                projected if last else {},
                expected=expected,
                emitted=result.emitted,
            )

    # ------------------------------------------------------------------ steps
    def _produce(self, result: BatchResult, delivery: _Delivery) -> dict[int, StoreWrite]:
        """Send the batch's records; return, per partition, the store writes of the same encoded bytes."""
        changes: dict[int, StoreWrite] = {}
        last_of: dict[int, str] = {}
        for customer_id, state in result.customers.items():
            change = changes.setdefault(state.partition, StoreWrite())
            change.customers[customer_id] = encode_customer(state)
            change.due[customer_id] = state.next_due
            last_of[state.partition] = customer_id
        for customer_id, state in result.customers.items():
            headers = None if state.next_due is None else [(DUE_HEADER, str(state.next_due).encode())]
            last = last_of[state.partition] == customer_id
            self._send(
                self.changelogs.customers,
                customer_id.encode(),
                changes[state.partition].customers[customer_id],
                headers,
                state.partition,
                delivery.callback if last else delivery.failure,
            )
        for partition, clock in result.clocks.items():
            change = changes.setdefault(partition, StoreWrite())
            change.clock = encode_clock(clock)
            self._send(
                self.changelogs.clocks,
                str(partition).encode(),
                change.clock,
                None,
                partition,
                delivery.callback,
            )
        for change in result.transitions:
            self._send(
                self.topics.tier_changes,
                change.customer_id.encode(),
                change.to_json(),
                change.headers(),
                None,
                delivery.failure,
            )
        for letter in result.dead_letters:
            self._send(
                self.topics.dead_letters,
                letter.key,
                letter.value,
                dead_letter_headers(letter),
                None,
                delivery.failure,
            )
        return changes

    def _send(
        self,
        topic: str,
        key: bytes | None,
        value: bytes | None,
        headers: list[tuple[str, bytes]] | None,
        partition: int | None,
        on_delivery: Callable[[Any, Any], None],
    ) -> None:
        kwargs: dict[str, Any] = {"key": key, "value": value, "on_delivery": on_delivery}
        if headers:
            kwargs["headers"] = headers
        if partition is not None:
            kwargs["partition"] = partition
        deadline = time.monotonic() + FLUSH_TIMEOUT_S
        while True:
            try:
                self.producer.produce(topic, **kwargs)
                return
            except BufferError:
                if time.monotonic() > deadline:
                    raise BatchAborted(f"the producer queue stayed full for {FLUSH_TIMEOUT_S:.0f}s") from None
                self.producer.poll(0.05)  # the local queue is full: serve deliveries, then retry

    def _flush(self, delivery: _Delivery) -> None:
        remaining = self.producer.flush(FLUSH_TIMEOUT_S)
        if remaining:
            raise BatchAborted(f"{remaining} record(s) not acknowledged within {FLUSH_TIMEOUT_S:.0f}s")
        if delivery.error is not None:
            raise BatchAborted(f"a record of the batch was not delivered: {delivery.error}")

    def _commit_transaction(self) -> None:
        from confluent_kafka import KafkaException

        deadline = time.monotonic() + 5 * COMMIT_TIMEOUT_S
        while True:
            try:
                self.producer.commit_transaction(COMMIT_TIMEOUT_S)
                return
            except KafkaException as exc:
                error = exc.args[0]
                if error.retriable() and time.monotonic() < deadline:
                    log.warning("transaction commit failed (%s); retrying", error)
                    continue
                raise

    def _abort(self, exc: Exception | None) -> None:
        """Abort the open transaction. A producer that cannot abort (a fatal error, or a coordinator that
        already aborted a transaction outlasting its timeout during a broker restart) is left to the caller,
        which renews it: `init_transactions` with the same id ends whatever the old epoch left open."""
        if not self.exactly_once:
            return
        error = exc.args[0] if exc is not None and exc.args else None
        if error is not None and hasattr(error, "fatal") and error.fatal():
            log.warning("the transactional producer failed fatally (%s); it is renewed", error)
            return
        try:
            self.producer.abort_transaction(COMMIT_TIMEOUT_S)
        except Exception as abort_exc:  # noqa: BLE001 - the caller renews the producer
            log.warning("cannot abort the transaction (%s); the producer is renewed", abort_exc)

    def _write_stores(self, changes: dict[int, StoreWrite], delivery: _Delivery) -> None:
        for (topic, partition), offset in delivery.last.items():
            changes.setdefault(partition, StoreWrite()).checkpoint[topic] = offset + 1
        for partition, change in changes.items():
            self.stores(partition).write(change)


def dead_letter_headers(letter: DeadLetter) -> list[tuple[str, bytes]]:
    return list(letter.headers or []) + [
        ("x-dlq-reason", letter.reason.value.encode()),
        ("x-dlq-detail", letter.detail.encode("utf-8", "replace")[:1024]),
        ("x-dlq-source-topic", letter.topic.encode()),
        ("x-dlq-source-partition", str(letter.partition).encode()),
        ("x-dlq-source-offset", str(letter.offset).encode()),
    ]


def _topic_partitions(offsets: Mapping[tuple[str, int], int]) -> list[Any]:
    from confluent_kafka import TopicPartition

    return [TopicPartition(topic, partition, offset) for (topic, partition), offset in offsets.items()]

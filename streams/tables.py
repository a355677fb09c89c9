"""A Faust table whose changelog writes can be awaited, and written as Kafka batches.

Faust's own pre-commit flush is best effort (it returns once its buffer looks idle and only logs a failed
send), so the agent awaits the changelog writes itself before sending anything that depends on them.

`put_batch` is the fast path for at-least-once: Faust turns every table write into a `FutureMessage` that
crosses its producer buffer and aiokafka's `send` one by one (about an eighth of the worker's CPU in the
baseline profile); here the values go to the store directly and to the changelog as one aiokafka record
batch per partition. It does what Faust's write does otherwise: the store keeps the value (under the
current event's partition), and a RocksDB store learns the last changelog offset it holds.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from typing import Any

import faust
from faust.serializers import codecs
from faust.types import TP, FutureMessage


class AckedTable(faust.Table):
    def send_changelog(self, *args: Any, **kwargs: Any) -> FutureMessage:
        future = super().send_changelog(*args, **kwargs)
        self.__dict__.setdefault("_unacked", []).append(future)
        return future

    def take_unacked(self) -> list[FutureMessage]:
        return self.__dict__.pop("_unacked", [])

    async def put(
        self,
        writes: Iterable[tuple[str, Any, int]],
        enter_partition: Callable[[int], None],
        *,
        batched: bool,
        wait: bool = True,
    ) -> None:
        """`put_batch` (`batched`), or Faust's own table writes, which exactly_once needs (its transactional
        producers); either way `wait` returns once Kafka has the records. Unawaited Faust writes stay in
        `take_unacked` for the next call that waits."""
        if batched:
            await self.put_batch(writes, enter_partition, wait)
            return
        for key, value, partition in writes:
            enter_partition(partition)
            self[key] = value
        if wait and (futures := self.take_unacked()):
            await asyncio.gather(*futures)

    async def put_batch(
        self,
        writes: Iterable[tuple[str, Any, int]],
        enter_partition: Callable[[int], None],
        wait: bool = True,
    ) -> None:
        """Store `(key, value, partition)` writes and put them in the changelog; return once Kafka has them.

        `enter_partition(p)` makes p the current event's partition (the store files keys under it).
        `wait=False` returns once the records are queued: still in order with every other `put_batch` of
        this table (one producer, one request in flight per partition). Never mix this with Faust's own
        table writes: those go through Faust's buffer and can reach Kafka after later batches sent here.
        """
        producer = self.app.producer._ensure_producer()  # noqa: SLF001 - the aiokafka producer
        topic = self.changelog_topic.get_topic_name()
        codec = codecs.get_codec(self.value_serializer)
        store = self.data
        open_batches: dict[int, Any] = {}
        sent: list[tuple[int, int, Any]] = []  # (partition, records, future of the batch)

        async def send(partition: int) -> None:
            batch = open_batches.pop(partition)
            records = batch.record_count()
            sent.append((partition, records, await producer.send_batch(batch, topic, partition=partition)))

        for key, value, partition in writes:
            enter_partition(partition)
            store[key] = value
            raw_key, raw_value = key.encode(), codec.dumps(value)
            batch = open_batches.get(partition)
            if batch is not None and batch.append(key=raw_key, value=raw_value, timestamp=None) is not None:
                continue
            if batch is not None:  # full
                await send(partition)
            batch = open_batches[partition] = producer.create_batch()
            batch.append(key=raw_key, value=raw_value, timestamp=None)  # a new batch takes any first record
        for partition in list(open_batches):
            await send(partition)
        if not wait:
            return
        results = await asyncio.gather(*(future for _, _, future in sent))
        last: dict[int, int] = {}
        for (partition, count, _), metadata in zip(sent, results, strict=True):
            last[partition] = max(last.get(partition, -1), metadata.offset + count - 1)
        for partition, offset in last.items():
            store.set_persisted_offset(TP(topic, partition), offset)

"""Reading records straight from Kafka: the ones Faust skipped (see `streams.delivery`), and log starts.

A plain aiokafka consumer without a group, assigned one partition at a time: it never joins the
application's consumer group, so it cannot cause rebalances. Retried with backoff while Kafka is away;
the agent waits meanwhile, as it does for any other Kafka step of a batch.
"""

from __future__ import annotations

import logging

from aiokafka import AIOKafkaConsumer
from aiokafka.structs import ConsumerRecord, TopicPartition
from tenacity import AsyncRetrying, stop_after_delay, wait_exponential

from streams.kafka_security import aiokafka_security
from streams.settings import WorkerSettings

log = logging.getLogger(__name__)
GIVE_UP_SECONDS = 120.0  # like a batch's Kafka acknowledgements: longer than a broker restart


class MissedRecords:
    def __init__(self, settings: WorkerSettings) -> None:
        self._settings = settings
        self._consumer: AIOKafkaConsumer | None = None

    async def between(self, topic: str, partition: int, start: int, stop: int) -> list[ConsumerRecord]:
        """The records with start <= offset < stop, in order (none when the log has a real gap there)."""
        async for attempt in self._retrying():
            with attempt:
                return await self._read(TopicPartition(topic, partition), start, stop)
        raise AssertionError("unreachable")  # pragma: no cover - tenacity re-raises the last error

    async def log_start(self, topic: str, partition: int) -> int:
        """First offset still in the partition (where a group without a committed offset begins)."""
        async for attempt in self._retrying():
            with attempt:
                consumer = await self._client()
                tp = TopicPartition(topic, partition)
                return (await consumer.beginning_offsets([tp]))[tp]
        raise AssertionError("unreachable")  # pragma: no cover

    async def _read(self, tp: TopicPartition, start: int, stop: int) -> list[ConsumerRecord]:
        consumer = await self._client()
        consumer.assign([tp])
        consumer.seek(tp, start)
        records: list[ConsumerRecord] = []
        while True:
            fetched = (await consumer.getmany(tp, timeout_ms=2000, max_records=max(1, stop - start))).get(
                tp, []
            )
            if not fetched:
                if await consumer.position(tp) >= stop:
                    return records
                raise TimeoutError(f"no records from {tp.topic}[{tp.partition}] at {start}..{stop}")
            for record in fetched:
                if record.offset >= stop:
                    return records
                records.append(record)
            if fetched[-1].offset >= stop - 1:
                return records

    def _retrying(self) -> AsyncRetrying:
        return AsyncRetrying(
            wait=wait_exponential(multiplier=0.2, max=5.0),
            stop=stop_after_delay(GIVE_UP_SECONDS),
            before_sleep=self._on_retry,
            reraise=True,
        )

    async def _on_retry(self, state: object) -> None:
        log.warning("reading missed records from Kafka failed; retrying", exc_info=True)
        await self.close()

    async def _client(self) -> AIOKafkaConsumer:
        if self._consumer is None:
            consumer = AIOKafkaConsumer(
                bootstrap_servers=self._settings.bootstrap_servers,
                client_id=f"{self._settings.app_id}-missed",
                group_id=None,
                enable_auto_commit=False,
                isolation_level="read_committed"
                if self._settings.processing_guarantee == "exactly_once"
                else "read_uncommitted",
                max_partition_fetch_bytes=8 * 1024 * 1024,
                fetch_max_bytes=64 * 1024 * 1024,
                request_timeout_ms=30_000,
                **aiokafka_security(),
            )
            await consumer.start()
            self._consumer = consumer
        return self._consumer

    async def close(self) -> None:
        consumer, self._consumer = self._consumer, None
        if consumer is not None:
            try:
                await consumer.stop()
            except Exception:  # noqa: BLE001 - closing a broken client must not hide the retry
                log.debug("closing the missed-records consumer failed", exc_info=True)

"""The consumer group's committed input offsets, asked of the broker (not of Faust's consumer cache).

A worker that takes a partition over without reading any of its inputs has no other way to learn that
everything a waiting `clock advance` depends on was processed (by the previous owner) and committed.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.structs import TopicPartition

from streams.kafka_security import aiokafka_security
from streams.settings import WorkerSettings

log = logging.getLogger(__name__)
# The admin client retries for ever while the broker is down; callers need "cannot tell" in time, since
# the stall detector must see an outage as one (not as a stalled partition) within its period.
ANSWER_SECONDS = 8.0


class CommittedOffsets:
    def __init__(self, settings: WorkerSettings, input_topics: Sequence[str]) -> None:
        self._settings = settings
        self._topics = tuple(input_topics)
        self._admin: AIOKafkaAdminClient | None = None

    async def of_partition(self, partition: int) -> dict[tuple[str, int], int]:
        """{(input topic, partition): committed offset}; empty when the broker cannot be asked right now."""
        return await self.of([(topic, partition) for topic in self._topics]) or {}

    async def of(self, partitions: Sequence[tuple[str, int]]) -> dict[tuple[str, int], int] | None:
        """Committed offsets of these (topic, partition)s (absent: none yet); None if Kafka cannot tell."""
        try:
            answer = await asyncio.wait_for(self._ask(partitions), timeout=ANSWER_SECONDS)
        except Exception as exc:  # retried by the caller's next tick; a broker that is down never answers
            log.warning("cannot read the group's committed offsets (%s); retrying", exc)
            await self.close()
            return None
        return {(tp.topic, tp.partition): meta.offset for tp, meta in answer.items() if meta.offset >= 0}

    async def _ask(self, partitions: Sequence[tuple[str, int]]) -> dict:
        admin = await self._client()
        return await admin.list_consumer_group_offsets(
            self._settings.app_id, partitions=[TopicPartition(t, p) for t, p in partitions]
        )

    async def _client(self) -> AIOKafkaAdminClient:
        if self._admin is None:
            admin = AIOKafkaAdminClient(
                bootstrap_servers=self._settings.bootstrap_servers,
                client_id=f"{self._settings.app_id}-offsets",
                request_timeout_ms=10_000,
                **aiokafka_security(),
            )
            await admin.start()
            self._admin = admin
        return self._admin

    async def close(self) -> None:
        admin, self._admin = self._admin, None
        if admin is not None:
            try:
                await asyncio.wait_for(admin.close(), timeout=ANSWER_SECONDS)
            except Exception:  # noqa: BLE001 - closing a broken client must not hide the retry
                log.debug("closing the admin client failed", exc_info=True)

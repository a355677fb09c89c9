"""The agent's side of `streams.delivery`: fill the holes Faust leaves, and commit durable positions only.

Thin on purpose: the bookkeeping is `DeliveryTracker` (pure), the Kafka reads are `MissedRecords` and
`CommittedOffsets`; this class only strings them together and hooks the commit into Faust's consumer.
"""

from __future__ import annotations

import logging
from typing import Any, Protocol

from streams import metrics
from streams.delivery import DeliveryTracker, Partition

log = logging.getLogger(__name__)
CATCH_UP_LIMIT = 10_000  # records read per catch-up request: a quiet partition's dropped tail is far shorter


class RecordReader(Protocol):
    async def between(self, topic: str, partition: int, start: int, stop: int) -> list[Any]: ...

    async def log_start(self, topic: str, partition: int) -> int: ...

    async def close(self) -> None: ...


class CommittedReader(Protocol):
    async def of(self, partitions: list[Partition]) -> dict[Partition, int] | None: ...


class SourceContinuity:
    def __init__(self, tracker: DeliveryTracker, records: RecordReader, committed: CommittedReader) -> None:
        self.tracker = tracker
        self._records = records
        self._committed = committed

    def continues(self, key: Partition, offset: int) -> bool:
        """The cheap test, per record: a known partition and no hole before this record."""
        return self.tracker.knows(key) and self.tracker.hole_before(key, offset) is None

    async def missed_before(self, key: Partition, offset: int) -> list[Any]:
        """The partition's records that were not delivered before this one, read from Kafka (usually none).

        The caller handles them, in order, before the delivered record.
        """
        if not self.tracker.knows(key):
            start = await self._start_offset(key)
            if start is None:
                log.warning("%s[%d]: committed offset unknown; trusting delivery from %d", *key, offset)
            self.tracker.start(key, offset if start is None else start)
        start = self.tracker.hole_before(key, offset)
        if start is None:
            return []
        why = f"offsets {start}..{offset - 1} were not delivered by Faust"
        return await self._read(key, start, offset, why)

    async def caught_up(self, partition: int, until: dict[str, int]) -> list[Any]:
        """A catch-up request (control message): the inputs' records Faust has not delivered up to `until`.

        The tail of a partition that Faust dropped is no hole until another record follows, which on a quiet
        partition may be never; the worker asks itself for this when a partition with lag stops moving.
        Reading records Faust was only slow to deliver is harmless: when they come, they are replays.
        """
        records: list[Any] = []
        for topic, end in until.items():
            key = (topic, partition)
            if not self.tracker.knows(key):
                start = await self._start_offset(key)
                if start is None:
                    continue
                self.tracker.start(key, start)
            start = self.tracker.expected(key)
            stop = min(end, start + CATCH_UP_LIMIT)
            if start < stop:
                why = f"no delivery from {start} for a while with records up to {end - 1}"
                records += await self._read(key, start, stop, why)
        return records

    async def _read(self, key: Partition, start: int, stop: int, why: str) -> list[Any]:
        """Records start <= offset < stop from Kafka, logged, counted and taken as delivered."""
        records = await self._records.between(key[0], key[1], start, stop)
        log.warning("%s[%d]: %s; read %d record(s) from Kafka", key[0], key[1], why, len(records))
        metrics.MISSED_RECORDS.labels(key[0]).inc(len(records))
        for record in records:
            self.tracker.delivered(key, record.offset)
        return records

    def position(self, key: Partition) -> int | None:
        """Next offset the partition must deliver, when known."""
        return self.tracker.expected(key)

    def delivered(self, key: Partition, offset: int) -> None:
        self.tracker.delivered(key, offset)

    def batch_durable(self, keys: set[Partition]) -> None:
        self.tracker.batch_durable(keys)

    def reset(self) -> None:
        self.tracker.reset()

    async def close(self) -> None:
        await self._records.close()

    async def _start_offset(self, key: Partition) -> int | None:
        """Where this assignment's delivery must begin: the group's committed offset, else the log start;
        None when Kafka cannot tell."""
        offsets = await self._committed.of([key])
        if offsets is None:
            return None
        if key in offsets:
            return offsets[key]
        return await self._records.log_start(*key)

    def take_commits(self, consumer: Any, topics: set[str]) -> None:
        """Commit these topics' partitions at durable positions instead of Faust's acknowledgements.

        Faust's commit timer, its commit on revocation and its transactions keep working; only the offset
        they choose for these partitions changes. Idempotent.
        """
        if getattr(consumer, "_segmenter_commits", False):
            return
        faust_new_offset = consumer._new_offset  # noqa: SLF001 - Faust's choice of the offset to commit

        def new_offset(tp: Any) -> int | None:
            if tp.topic not in topics:
                return faust_new_offset(tp)
            # Faust's acknowledgement bookkeeping is unused for these partitions: keep it from growing (the
            # emptied entry stays, so every commit round looks at the partition).
            for bookkeeping in (consumer._acked, consumer._acked_index):  # noqa: SLF001
                if tp in bookkeeping:
                    bookkeeping[tp].clear()
            consumer._gap.pop(tp, None)  # noqa: SLF001
            return self.tracker.committable((tp.topic, tp.partition))

        consumer._new_offset = new_offset  # noqa: SLF001
        consumer._segmenter_commits = True  # noqa: SLF001

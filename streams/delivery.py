"""Continuity of the records Faust hands to the agent, and the offsets that are safe to commit.

Kafka delivers a partition in offset order, yet Faust 0.15 can skip records around a rebalance: its fetcher
abandons the rest of a fetched batch when the generation changes or flow stops (the consumer's position has
already moved past them), and a delivery cancelled by a rebalance still moves its read offset. Skipped
records are never acknowledged, but the records after them are applied, and the per-customer replay check
(offset at or before the last applied one) would treat the skipped ones as replays later. Faust's commit
logic does not help either: it commits past a single missing record at the head of its acknowledgement
list, and after a longer gap it stops committing the partition for good (faust-streaming #312, #318, #606).
Both were seen in the fault suite (events lost; a partition's commits stuck at one offset).

So the worker keeps its own account: `DeliveryTracker` knows the next offset each partition must deliver
(from the group's committed offset when the partition is assigned); a record past it reveals a hole, which
the agent fills by reading the missed records from Kafka itself before going on; and the offsets committed
are the tracker's positions after each durable batch, not Faust's acknowledgements.
"""

from __future__ import annotations

from dataclasses import dataclass, field

Partition = tuple[str, int]  # (topic, partition)


@dataclass
class DeliveryTracker:
    """Next offset expected per source partition, and the positions of the last durable batch."""

    _expected: dict[Partition, int] = field(default_factory=dict)
    _safe: dict[Partition, int] = field(default_factory=dict)

    def reset(self) -> None:
        """A rebalance: positions are learnt again from the group's committed offsets."""
        self._expected.clear()
        self._safe.clear()

    def expected(self, key: Partition) -> int | None:
        return self._expected.get(key)

    def knows(self, key: Partition) -> bool:
        return key in self._expected

    def start(self, key: Partition, offset: int) -> None:
        """Delivery of this partition resumes at `offset` (its committed offset, or the log start)."""
        self._expected[key] = offset

    def hole_before(self, key: Partition, offset: int) -> int | None:
        """The first missed offset when a record arrives past the expected one; None if it continues."""
        expected = self._expected.get(key)
        return expected if expected is not None and offset > expected else None

    def delivered(self, key: Partition, offset: int) -> None:
        """A record was handled; one before the expected offset is a redelivery and changes nothing."""
        if offset + 1 > self._expected.get(key, -1):
            self._expected[key] = offset + 1

    def batch_durable(self, keys: set[Partition]) -> None:
        """The batch that handled these partitions' records is durable: their positions may be committed."""
        for key in keys:
            if key in self._expected:
                self._safe[key] = self._expected[key]

    def committable(self, key: Partition) -> int | None:
        """Offset to commit for the partition: everything before it was handled by durable batches."""
        return self._safe.get(key)

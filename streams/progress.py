"""Progress of the owned input partitions: detection of a stalled partition (for `/healthz`).

A partition that has lag and whose position (the next offset processed) has not moved for `stall_seconds`,
while the loop is not waiting out an outage, is reported, so the orchestrator restarts the worker; the
replay after a restart is exact (the batch's transaction either committed or did not).
"""

from __future__ import annotations

from dataclasses import dataclass, field

Partition = tuple[str, int]  # (input topic, partition)


@dataclass
class PartitionProgress:
    stall_seconds: float
    _positions: dict[Partition, int] = field(default_factory=dict)
    _moved_at: dict[Partition, float] = field(default_factory=dict)
    _lag: dict[Partition, int] = field(default_factory=dict)

    def observe(
        self, now: float, positions: dict[Partition, int], ends: dict[Partition, int]
    ) -> dict[Partition, int]:
        """Record the positions and end offsets of the owned partitions; returns the lag of each."""
        for gone in set(self._positions) - set(ends):
            self._positions.pop(gone, None)
            self._moved_at.pop(gone, None)
        self._lag = {}
        for key, end in ends.items():
            offset = positions.get(key, 0)
            self._lag[key] = max(0, end - offset)
            if self._positions.get(key) != offset or self._lag[key] == 0:
                self._positions[key] = offset
                self._moved_at[key] = now
        return dict(self._lag)

    def restart_clocks(self, now: float) -> None:
        """A rebalance pauses every partition: nobody's offsets move, and that is not a stall."""
        for key in self._moved_at:
            self._moved_at[key] = now

    def stalled(self, now: float, batch_started_at: float | None) -> dict[Partition, float]:
        """Partitions with lag whose committed offset has been still for too long: {partition: seconds}.

        Nothing is stalled while the agent sits in one batch for long (Redis or Kafka down: it retries and
        must not be restarted for that).
        """
        if batch_started_at is not None and now - batch_started_at > self.stall_seconds / 2:
            return {}
        return {
            key: now - moved
            for key, moved in self._moved_at.items()
            if self._lag.get(key, 0) > 0 and now - moved >= self.stall_seconds
        }

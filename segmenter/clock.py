"""Per-partition event-time watermark (SPEC section 3)."""

from __future__ import annotations

import msgspec

from segmenter.timeutil import day_of_micros


class PartitionClock(msgspec.Struct, omit_defaults=True):
    """Largest event time seen per input kind on one partition, and the forced floor (`clock advance`/wall).

    Persisted in a table so a restarted or rebalanced worker continues from it.
    """

    partition: int
    max_ts: dict[str, int] = msgspec.field(default_factory=dict)  # input kind -> epoch micros
    floor_ts: int | None = None  # epoch micros, raised by `clock advance` and by the wall clock
    # `clock advance` requests waiting for the inputs to reach the offsets they were issued at:
    # (floor micros, {input topic: next offset that must have been processed}).
    pending: list[tuple[int, dict[str, int]]] = msgspec.field(default_factory=list)
    # Customers of this partition per dimension and tier: kept with the clock so that a worker knows its
    # partitions' counts (the `segmenter_customers` gauge) without decoding every customer.
    tier_counts: dict[str, dict[str, int]] = msgspec.field(default_factory=dict)
    # The rules in effect since the partition's last `rules` control record (SPEC section 13): its text and
    # version. None: the worker's start-up rules.
    rules_text: str | None = None
    rules_version: str | None = None
    rules_files: dict[str, str] | None = None  # files the rules name (the model), as the record carried them
    # `rules` records waiting, like `pending`, for the inputs to reach the offsets they were issued at:
    # (text, version, issued_at, {input topic: next offset}, files).
    pending_rules: list[tuple[str, str, str, dict[str, int], dict[str, str] | None]] = msgspec.field(
        default_factory=list
    )

    def count_move(self, dimension: str, from_tier: str | None, to_tier: str | None) -> None:
        """One customer moves between tiers (None: unclassified, or its dimension was removed)."""
        counts = self.tier_counts.setdefault(dimension, {})
        if from_tier is not None:
            left = counts.get(from_tier, 0) - 1
            if left > 0:
                counts[from_tier] = left
            else:
                counts.pop(from_tier, None)
        if to_tier is not None:
            counts[to_tier] = counts.get(to_tier, 0) + 1
        elif not counts:
            del self.tier_counts[dimension]

    def watermark_micros(self) -> int | None:
        candidates = []
        if self.max_ts:
            candidates.append(min(self.max_ts.values()))
        if self.floor_ts is not None:
            candidates.append(self.floor_ts)
        return max(candidates) if candidates else None

    def watermark_day(self) -> int | None:
        micros = self.watermark_micros()
        return None if micros is None else day_of_micros(micros)

    def observe(self, kind: str, ts_micros: int) -> bool:
        """Record an event time; True when the stored state changed.

        Literal SPEC reading: the minimum over the topics seen so far. When a topic sees its first event
        after the other one moved ahead (a consumer catching up on a backlog reads topics at different
        speeds), the watermark drops back to it; customers' evaluation days never go back, but customers
        first met on the slower topic are then evaluated at their own time rather than the other topic's.
        In event-time order the first event of a topic is never older than the watermark, so it never drops.
        """
        current = self.max_ts.get(kind)
        if current is not None and ts_micros <= current:
            return False
        self.max_ts[kind] = ts_micros
        return True

    def raise_floor(self, ts_micros: int) -> bool:
        if self.floor_ts is None or ts_micros > self.floor_ts:
            self.floor_ts = ts_micros
            return True
        return False

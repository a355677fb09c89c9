"""The segmentation engine: events and clock ticks in, tier changes and projections out. Pure, no I/O.

The stream layer hands it a batch of records (`Engine.process`) and gets a `BatchResult` back: the changed
states, tier changes, dead letters and Redis records to make durable in one commit. Every decision of SPEC
sections 2-6 is taken here, so it is tested without a broker.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, MutableMapping
from dataclasses import dataclass, field

import msgspec

from segmenter.clock import PartitionClock
from segmenter.customer import (
    DEFAULT_DEDUPE_HORIZON_MICROS,
    CustomerState,
    apply_event,
    is_duplicate,
    prune_buckets,
)
from segmenter.events import DeadLetterReason, Event, InvalidEvent, Kind, decode_event
from segmenter.features import FEATURE_NAMES, Features, current_features, render_feature
from segmenter.rules import RuleSet
from segmenter.timeline import Timeline
from segmenter.timers import TimerIndex
from segmenter.timeutil import day_iso, day_midnight_rfc3339, day_of_micros
from segmenter.transitions import TierChange


@dataclass(frozen=True)
class EngineConfig:
    currency: str = "USD"
    dedupe_horizon_micros: int = DEFAULT_DEDUPE_HORIZON_MICROS


class DeadLetter(msgspec.Struct, frozen=True):
    reason: DeadLetterReason
    detail: str
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes]]
    topic: str
    partition: int
    offset: int


@dataclass
class Effects:
    """What handling messages asks the outside world to do; accumulates over a batch."""

    transitions: list[TierChange] = field(default_factory=list)
    dead_letters: list[DeadLetter] = field(default_factory=list)
    projections: dict[str, CustomerState] = field(default_factory=dict)  # customers whose record to write
    outcomes: Counter[tuple[str, str]] = field(default_factory=Counter)  # (topic, outcome) -> n
    event_times: list[int] = field(default_factory=list)  # ts micros of applied events (lag metric)

    def clear(self) -> None:
        self.transitions.clear()
        self.dead_letters.clear()
        self.projections.clear()
        self.outcomes.clear()
        self.event_times.clear()


class InputMessage(msgspec.Struct, frozen=True):
    """Created per record: a msgspec struct (a frozen dataclass costs ~10x more to build)."""

    kind: Kind
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes]]


class ClockAdvance(msgspec.Struct, frozen=True):
    """A recorded clock record of a partition (`clock advance`, wall-clock tick): the watermark's floor.

    `after` maps input topics to the offsets they had when the advance was issued (see `handle_clock`).
    """

    partition: int
    to_micros: int
    after: dict[str, int] | None = None


class PendingCheck(msgspec.Struct, frozen=True):
    """Apply the partition's waiting clock advances whose inputs are reached (after an assignment)."""

    partition: int


Record = InputMessage | ClockAdvance | PendingCheck


@dataclass
class BatchResult:
    """Everything one batch decided, for the stream layer to make durable in one commit.

    `customers`/`clocks`: the changed states (one per customer per batch); `records`: the Redis hash of
    every customer whose record changed (SPEC section 7), computed from the same states.
    """

    transitions: list[TierChange]
    dead_letters: list[DeadLetter]
    customers: dict[str, CustomerState]
    clocks: dict[int, PartitionClock]
    records: dict[str, dict[str, str]]
    outcomes: Counter[tuple[str, str]]
    event_times: list[int]


CustomerTable = MutableMapping[str, CustomerState]


class Engine:
    """Applies SPEC sections 2-6 to the customers of the partitions it is given messages for."""

    def __init__(
        self,
        rules: RuleSet,
        customers: CustomerTable,
        clocks: MutableMapping[str, PartitionClock],
        config: EngineConfig | None = None,
        autoflush: bool = True,
        customers_of: Callable[[int], CustomerTable] | None = None,
    ) -> None:
        """`customers` holds every partition's customers, unless `customers_of(partition)` gives one table
        per partition (the worker's stores); `clocks` maps `str(partition)` to the partition's clock."""
        self.rules = rules
        self.timeline = Timeline(rules)
        self.customers = customers
        self._customers_of = customers_of or (lambda partition: customers)
        self.clocks = clocks
        self.config = config or EngineConfig()
        self._dimensions = rules.dimension_names
        self._timers: dict[int, TimerIndex] = {}
        # Clocks change on every event; the table only hears of day changes (all evaluation needs), so the
        # exact times live here. Rebuilt from the table after a restart or rebalance.
        self._clock_cache: dict[int, PartitionClock] = {}
        self._next_offsets: dict[tuple[str, int], int] = {}  # (input topic, partition) -> next offset
        # Changed states not yet written to the tables: one table write per customer per batch, and reads
        # within the batch see them (the tables hand out decoded copies).
        self._dirty_customers: dict[str, CustomerState] = {}
        self._dirty_clocks: dict[int, PartitionClock] = {}
        self.autoflush = autoflush
        self._keep_purchase_days = rules.value_days
        self._keep_interaction_days = rules.engagement_days

    # ------------------------------------------------------------------ partitions
    def forget_partitions(self, partitions: Iterable[int] | None = None) -> None:
        """Drop what the engine caches about partitions (all by default): timer indexes, clocks, offsets,
        unwritten states. After a rebalance or an aborted batch; rebuilt from the tables on next use."""
        chosen = None if partitions is None else set(partitions)

        def gone(partition: int) -> bool:
            return chosen is None or partition in chosen

        for cache in (self._timers, self._clock_cache, self._dirty_clocks):
            for partition in [p for p in cache if gone(p)]:
                del cache[partition]
        self._next_offsets = {k: v for k, v in self._next_offsets.items() if not gone(k[1])}
        self._dirty_customers = {k: v for k, v in self._dirty_customers.items() if not gone(v.partition)}

    def seed_timers(self, partition: int, due: Iterable[tuple[str, int]]) -> None:
        """The partition's timer index from the (customer id, next due day) pairs its store kept."""
        self._timers[partition] = TimerIndex.of(due)

    def timers_for(self, partition: int) -> TimerIndex:
        """The partition's timer index, rebuilt from the table the first time (restart / rebalance)."""
        index = self._timers.get(partition)
        if index is None:
            index = self._timers[partition] = TimerIndex()
            for customer_id, state in self._customers_of(partition).items():
                if state.next_due is not None and state.partition == partition:
                    index.schedule(customer_id, state.next_due)
        return index

    def customer(self, customer_id: str, partition: int) -> CustomerState | None:
        state = self._dirty_customers.get(customer_id)
        return state if state is not None else self._customers_of(partition).get(customer_id)

    def take_dirty(self) -> tuple[dict[str, CustomerState], dict[int, PartitionClock]]:
        """States changed since the last call, for the caller to write to the tables."""
        customers, clocks = self._dirty_customers, self._dirty_clocks
        self._dirty_customers, self._dirty_clocks = {}, {}
        return customers, clocks

    def flush(self) -> None:
        """Write changed states to the tables directly (tests, tools; the worker commits `process`)."""
        customers, clocks = self.take_dirty()
        for customer_id, state in customers.items():
            self._customers_of(state.partition)[customer_id] = state
        for partition, clock in clocks.items():
            self.clocks[str(partition)] = clock

    def process(self, records: Iterable[Record]) -> BatchResult:
        """Handle a batch of records in order; nothing is written anywhere (the caller commits the result).

        After the call the engine's caches already reflect the batch: the caller writes `customers` and
        `clocks` to its tables once the batch is durable, or calls `forget_partitions` if it was aborted.
        """
        effects = Effects()
        autoflush, self.autoflush = self.autoflush, False
        try:
            for record in records:
                if isinstance(record, InputMessage):
                    self.handle_input(record, effects)
                elif isinstance(record, ClockAdvance):
                    self.handle_clock(record.partition, record.to_micros, effects, record.after)
                else:
                    self.apply_ready_pending(record.partition, effects)
        finally:
            self.autoflush = autoflush
        customers, clocks = self.take_dirty()
        records_out = {
            customer_id: self.record_fields(state) for customer_id, state in effects.projections.items()
        }
        return BatchResult(
            transitions=effects.transitions,
            dead_letters=effects.dead_letters,
            customers=customers,
            clocks=clocks,
            records=records_out,
            outcomes=effects.outcomes,
            event_times=effects.event_times,
        )

    def clock_for(self, partition: int) -> PartitionClock:
        clock = self._clock_cache.get(partition)
        if clock is None:
            clock = self.clocks.get(str(partition)) or PartitionClock(partition=partition)
            self._clock_cache[partition] = clock
        return clock

    # ------------------------------------------------------------------ inputs
    def handle_input(self, message: InputMessage, effects: Effects) -> None:
        """Validate, de-duplicate and apply one input message (SPEC sections 2, 3, 6)."""
        self._handle_input(message, effects)
        key = (message.topic, message.partition)
        if message.offset + 1 > self._next_offsets.get(key, -1):
            self._next_offsets[key] = message.offset + 1
        if self.clock_for(message.partition).pending:
            self.apply_ready_pending(message.partition, effects)
        if self.autoflush:
            self.flush()

    def _handle_input(self, message: InputMessage, effects: Effects) -> None:
        try:
            event = decode_event(message.kind, message.key, message.value, self.config.currency)
        except InvalidEvent as invalid:
            effects.dead_letters.append(
                DeadLetter(
                    invalid.reason,
                    invalid.detail,
                    message.key,
                    message.value,
                    message.headers,
                    message.topic,
                    message.partition,
                    message.offset,
                )
            )
            effects.outcomes[(message.topic, "dead_letter")] += 1
            return

        partition = message.partition
        clock = self.clock_for(partition)
        old_watermark_day = clock.watermark_day()
        if _observe(clock, message.kind.value, event.ts_micros):
            self._dirty_clocks[partition] = clock
        watermark_day = clock.watermark_day()

        state = self.customer(event.customer_id, partition)
        if state is None:
            state = CustomerState(customer_id=event.customer_id, partition=partition)
        elif message.offset <= state.offsets.get(message.kind.value, -1) or is_duplicate(
            state, event, self.config.dedupe_horizon_micros
        ):
            # A record at or before the last offset this customer applied from that topic is a replay after
            # a crash (at-least-once redelivery); the table already holds its effect, whatever its event time.
            effects.outcomes[(message.topic, "duplicate")] += 1
            effects.projections[state.customer_id] = state  # heals Redis if a crash cut the first write
            self._advance_partition(partition, old_watermark_day, watermark_day, effects)
            return

        state.offsets[message.kind.value] = message.offset
        self._apply(state, event, watermark_day, effects)
        effects.outcomes[(message.topic, "applied")] += 1
        effects.event_times.append(event.ts_micros)
        self._advance_partition(partition, old_watermark_day, watermark_day, effects)

    def handle_clock(
        self, partition: int, floor_micros: int, effects: Effects, after: dict[str, int] | None = None
    ) -> None:
        """Raise the partition's watermark to at least `floor_micros` (`clock advance`, wall-clock ticks).

        `after` maps input topics to the offsets they had when the advance was issued: the advance waits
        until this partition's inputs are processed up to there, so "produce, then advance" means what it
        says even while the worker is still catching up (the control topic is read concurrently).
        """
        clock = self.clock_for(partition)
        if after and not self._offsets_reached(partition, after):
            clock.pending.append((floor_micros, dict(after)))
            self._dirty_clocks[partition] = clock
        else:
            self._raise_partition_floor(partition, clock, floor_micros, effects)
        if self.autoflush:
            self.flush()

    def processed_offset(self, topic: str, partition: int) -> int:
        """Next offset of this input partition to process, as far as this engine knows (0: unknown)."""
        return max(0, self._next_offsets.get((topic, partition), 0))

    def seed_offsets(self, offsets: dict[tuple[str, int], int]) -> None:
        """Next offsets to process per (input topic, partition), e.g. the group's committed offsets."""
        for key, offset in offsets.items():
            if offset > self._next_offsets.get(key, -1):
                self._next_offsets[key] = offset

    def has_pending(self, partition: int) -> bool:
        return bool(self.clock_for(partition).pending)

    def apply_ready_pending(self, partition: int, effects: Effects) -> None:
        """Apply the waiting `clock advance` requests whose input offsets have been reached."""
        clock = self.clock_for(partition)
        if not clock.pending:
            return
        ready = [item for item in clock.pending if self._offsets_reached(partition, item[1])]
        if not ready:
            return
        clock.pending = [item for item in clock.pending if item not in ready]
        self._dirty_clocks[partition] = clock
        self._raise_partition_floor(partition, clock, max(floor for floor, _ in ready), effects)
        if self.autoflush:
            self.flush()

    def _offsets_reached(self, partition: int, after: dict[str, int]) -> bool:
        return all(self._next_offsets.get((topic, partition), 0) >= offset for topic, offset in after.items())

    def _raise_partition_floor(
        self, partition: int, clock: PartitionClock, floor_micros: int, effects: Effects
    ) -> None:
        old_watermark_day = clock.watermark_day()
        if _raise_floor(clock, floor_micros):
            self._dirty_clocks[partition] = clock
        self._advance_partition(partition, old_watermark_day, clock.watermark_day(), effects)

    # ------------------------------------------------------------------ evaluation
    def _apply(self, state: CustomerState, event: Event, watermark_day: int | None, effects: Effects) -> None:
        target = event.day if watermark_day is None else max(event.day, watermark_day)
        if state.day is not None:
            if state.day > target:
                target = state.day
            elif target > state.day:
                if state.next_due is not None and state.next_due <= target:
                    self._advance_customer(state, target, effects)
                state.day = target
        apply_event(state, event, self.config.dedupe_horizon_micros)
        self._prune(state, target)  # the record below is as of `target`: features are the buckets' totals
        features = current_features(state, target)
        tiers = self.rules.classify(features)
        self._record(state, target, tiers, features, event.ts, event.reason, event.event_id, effects)
        state.day = target
        self._finish(state, effects)

    def _advance_customer(self, state: CustomerState, target: int, effects: Effects) -> None:
        """Evaluate the customer at every day in (D_c, target] that changes a tier, then set D_c = target."""
        assert state.day is not None
        current = tuple(state.tiers.get(name) for name in self._dimensions)
        for change in self.timeline.changes(state, state.day, current, until=target):
            self._record(
                state,
                change.day,
                change.tiers,
                change.features,
                day_midnight_rfc3339(change.day),
                "time",
                None,
                effects,
            )
        state.day = target

    def _record(
        self,
        state: CustomerState,
        day: int,
        tiers: tuple[str, ...],
        features: Features,
        at: str,
        reason: str,
        cause_event_id: str | None,
        effects: Effects,
    ) -> None:
        """Emit a tier change per dimension that differs, and count one record write (SPEC sections 6, 7)."""
        rendered: dict[str, object] | None = None
        for index, (dimension, tier) in enumerate(zip(self._dimensions, tiers, strict=True)):
            previous = state.tiers.get(dimension)
            if previous == tier:
                continue
            if rendered is None:
                rendered = {name: render_feature(name, features[name]) for name in FEATURE_NAMES}
            seq = state.seqs.get(dimension, 0) + 1
            state.seqs[dimension] = seq
            state.tiers[dimension] = tier
            clock = self.clock_for(state.partition)
            clock.count_move(dimension, previous, tier)
            self._dirty_clocks[state.partition] = clock
            change = TierChange(
                customer_id=state.customer_id,
                dimension=dimension,
                seq=seq,
                from_tier=previous,
                to_tier=tier,
                at=at,
                reason=reason,
                cause_event_id=cause_event_id,
                rules_version=self.rules.version,
                actions=self.rules.tier_actions(index, tier),
                features=rendered,
            )
            effects.transitions.append(change)
        if rendered is not None or reason != "time":
            state.version += 1
            state.as_of = day
            effects.projections[state.customer_id] = state

    def _finish(self, state: CustomerState, effects: Effects) -> None:
        """Prune what no window needs any more, set the timer to the next candidate day, store the state."""
        assert state.as_of is not None and state.day is not None
        self._prune(state, state.as_of)
        state.next_due = self.timeline.first_candidate(state, state.day)
        self.timers_for(state.partition).schedule(state.customer_id, state.next_due)
        self._dirty_customers[state.customer_id] = state

    def _prune(self, state: CustomerState, as_of: int) -> None:
        prune_buckets(state, as_of - self._keep_purchase_days + 1, as_of - self._keep_interaction_days + 1)

    def _advance_partition(
        self, partition: int, old_day: int | None, new_day: int | None, effects: Effects
    ) -> None:
        """The watermark passed a day boundary: bring every due customer of the partition up to it."""
        if new_day is None or (old_day is not None and new_day <= old_day):
            return
        for customer_id in self.timers_for(partition).pop_due(new_day):
            state = self.customer(customer_id, partition)
            if state is None or state.partition != partition or state.day is None or state.day >= new_day:
                continue
            self._advance_customer(state, new_day, effects)
            self._finish(state, effects)

    # ------------------------------------------------------------------ projection
    def record_fields(self, state: CustomerState) -> dict[str, str]:
        """The Redis hash of SPEC section 7 for a customer, as of its last written evaluation."""
        assert state.as_of is not None
        features = current_features(state, state.as_of)  # buckets are pruned for `as_of`, none later
        fields: dict[str, str] = {}
        for name in FEATURE_NAMES:
            value = render_feature(name, features[name])
            if value is not None:
                fields[name] = str(value)
        # Tiers last: a dimension named like a feature (the default `engagement`) shows its tier.
        for dimension in self._dimensions:
            tier = state.tiers.get(dimension)
            if tier is not None:
                fields[dimension] = tier
        fields["as_of"] = day_iso(state.as_of)
        if state.first_purchase_at is not None:
            fields["first_purchase_at"] = state.first_purchase_at
        if state.last_purchase_at is not None:
            fields["last_purchase_at"] = state.last_purchase_at
        fields["rules_version"] = self.rules.version
        fields["version"] = str(state.version)
        return fields


def _observe(clock: PartitionClock, kind: str, ts_micros: int) -> bool:
    """Observe an event time; report a change worth persisting (a new kind, or a new day)."""
    previous = clock.max_ts.get(kind)
    if not clock.observe(kind, ts_micros):
        return False
    return previous is None or day_of_micros(previous) != day_of_micros(ts_micros)


def _raise_floor(clock: PartitionClock, floor_micros: int) -> bool:
    previous = clock.floor_ts
    if not clock.raise_floor(floor_micros):
        return False
    return previous is None or day_of_micros(previous) != day_of_micros(floor_micros)

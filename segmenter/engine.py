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
import orjson

from segmenter.clock import PartitionClock
from segmenter.customer import (
    DEFAULT_DEDUPE_HORIZON_MICROS,
    CustomerState,
    Emitted,
    apply_event,
    is_duplicate,
    prune_buckets,
    prune_details,
)
from segmenter.derived import Derived
from segmenter.events import DeadLetterReason, Event, InvalidEvent, Kind, decode_event
from segmenter.features import Features, current_features, features_at, render_feature
from segmenter.rules import RuleSet, parse_rules
from segmenter.timeline import Timeline
from segmenter.timers import TimerIndex
from segmenter.timeutil import day_iso, day_midnight_rfc3339, day_of_micros, parse_rfc3339_micros
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
    removed_dimensions: dict[int, set[str]] = field(default_factory=dict)  # partition -> dropped by rules
    projections: dict[str, CustomerState] = field(default_factory=dict)  # customers whose record to write
    outcomes: Counter[tuple[str, str]] = field(default_factory=Counter)  # (topic, outcome) -> n
    event_times: list[int] = field(default_factory=list)  # ts micros of applied events (lag metric)

    def clear(self) -> None:
        self.transitions.clear()
        self.dead_letters.clear()
        self.projections.clear()
        self.outcomes.clear()
        self.event_times.clear()
        self.removed_dimensions.clear()


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


class RulesChange(msgspec.Struct, frozen=True):
    """A `rules` control record of a partition (SPEC section 13): from here on the partition uses `text`.

    `issued_at` is the RFC 3339 wall time of `segmenter rules apply`, the `at` of the re-tiering's changes.
    """

    partition: int
    text: str
    version: str
    issued_at: str
    after: dict[str, int] | None = None  # input offsets at issue time, as for `ClockAdvance`
    files: dict[str, str] | None = None  # the files the rules name (a model), by the path as written


Record = InputMessage | ClockAdvance | PendingCheck | RulesChange


@dataclass(frozen=True)
class RulesContext:
    """A rule set with what evaluating it needs: its timeline, and each tier's normalised condition."""

    rules: RuleSet
    timeline: Timeline
    dimensions: tuple[str, ...]
    when: tuple[dict[str, str], ...]  # per dimension: tier -> normalised condition (the `when` field)
    keep_purchase_days: int
    keep_interaction_days: int
    feature_names: tuple[str, ...]  # built-in, custom, predictive: the features records and changes show
    money: frozenset[str]

    @property
    def derived(self) -> Derived:
        return self.timeline.derived

    def features(self, state: CustomerState, day: int, base: Features) -> Features:
        """`base` (the built-in features at `day`) with the custom and predictive ones added."""
        derived = self.timeline.derived
        if derived.active:
            base.update(derived.values(state, day))
        return base

    @classmethod
    def of(cls, rules: RuleSet) -> RulesContext:
        return cls(
            rules=rules,
            timeline=Timeline(rules),
            feature_names=rules.feature_names,
            money=rules.money_features,
            dimensions=rules.dimension_names,
            when=tuple(
                {tier.name: tier.normalised or tier.when for tier in dimension.tiers}
                for dimension in rules.dimensions
            ),
            keep_purchase_days=rules.value_days,
            keep_interaction_days=rules.engagement_days,
        )


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
    emitted: dict[str, list[Emitted]] = field(default_factory=dict)  # per projected customer (history)
    # The records by the dimensions they are projected with (`projection_dimensions`): one group unless
    # partitions run different rules.
    groups: list[tuple[tuple[str, ...], list[str]]] = field(default_factory=list)


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
        self.rules = rules  # the start-up rules (a partition's `rules` record overrides them)
        self._default_context = RulesContext.of(rules)
        self._contexts: dict[int, RulesContext] = {}  # partitions whose rules came from a `rules` record
        self._parsed: dict[str, RulesContext] = {rules.version: self._default_context}
        self._batch_touched: set[str] = set()  # customers whose `emitted` list this batch restarted
        # Within a batch, the features each record was last written with (its `as_of`): the Redis record
        # is rendered from them instead of computing them again.
        self._written_features: dict[str, tuple[int, Features]] = {}
        self.customers = customers
        self._customers_of = customers_of or (lambda partition: customers)
        self.clocks = clocks
        self.config = config or EngineConfig()
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

    # ------------------------------------------------------------------ partitions
    def forget_partitions(self, partitions: Iterable[int] | None = None) -> None:
        """Drop what the engine caches about partitions (all by default): timer indexes, clocks, offsets,
        unwritten states. After a rebalance or an aborted batch; rebuilt from the tables on next use."""
        chosen = None if partitions is None else set(partitions)

        def gone(partition: int) -> bool:
            return chosen is None or partition in chosen

        for cache in (self._timers, self._clock_cache, self._dirty_clocks, self._contexts):
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
        self._written_features = {}
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
        self._batch_touched = set()
        try:
            for record in records:
                if isinstance(record, InputMessage):
                    self.handle_input(record, effects)
                elif isinstance(record, ClockAdvance):
                    self.handle_clock(record.partition, record.to_micros, effects, record.after)
                elif isinstance(record, RulesChange):
                    self.handle_rules(record, effects)
                else:
                    self.apply_ready_pending(record.partition, effects)
        finally:
            self.autoflush = autoflush
            self._batch_touched = set()
        customers, clocks = self.take_dirty()
        try:
            records_out = {
                customer_id: self.record_fields(state) for customer_id, state in effects.projections.items()
            }
        finally:
            self._written_features = {}
        return BatchResult(
            transitions=effects.transitions,
            dead_letters=effects.dead_letters,
            customers=customers,
            clocks=clocks,
            records=records_out,
            outcomes=effects.outcomes,
            event_times=effects.event_times,
            groups=self._groups(effects),
            emitted={cid: state.emitted for cid, state in effects.projections.items() if state.emitted},
        )

    def known_dimensions(self) -> tuple[str, ...]:
        """The dimensions of every rule set in use."""
        names: dict[str, None] = {}
        for context in (self._default_context, *self._contexts.values()):
            names.update(dict.fromkeys(context.dimensions))
        return tuple(names)

    def projection_dimensions(self, partition: int, dropped: Iterable[str] = ()) -> tuple[str, ...]:
        """What the Redis script moves a partition's records between tiers by: the dimensions of its
        rules, and `-NAME` for each dimension a rules change just dropped (its tier leaves the record)."""
        return self.context_for(partition).dimensions + tuple(f"-{name}" for name in sorted(dropped))

    def _groups(self, effects: Effects) -> list[tuple[tuple[str, ...], list[str]]]:
        by_dimensions: dict[tuple[str, ...], list[str]] = {}
        per_partition: dict[int, tuple[str, ...]] = {}
        for customer_id, state in effects.projections.items():
            dimensions = per_partition.get(state.partition)
            if dimensions is None:
                dimensions = per_partition[state.partition] = self.projection_dimensions(
                    state.partition, effects.removed_dimensions.get(state.partition, ())
                )
            by_dimensions.setdefault(dimensions, []).append(customer_id)
        return list(by_dimensions.items())

    # ------------------------------------------------------------------ rules in effect
    def context_for(self, partition: int) -> RulesContext:
        """The rules in effect on a partition: its last `rules` record's, else the start-up rules."""
        context = self._contexts.get(partition)
        if context is None:
            clock = self.clock_for(partition)
            context = self._default_context
            if clock.rules_text is not None and clock.rules_version is not None:
                context = self._context_of(clock.rules_text, clock.rules_version, clock.rules_files)
            self._contexts[partition] = context
        return context

    def rules_for(self, partition: int) -> RuleSet:
        return self.context_for(partition).rules

    def _context_of(self, text: str, version: str, files: dict[str, str] | None) -> RulesContext:
        context = self._parsed.get(version)
        if context is None:
            rules = parse_rules(text, "rules record", files=files or {})
            context = self._parsed[version] = RulesContext.of(rules)
        return context

    def handle_rules(self, change: RulesChange, effects: Effects) -> None:
        """SPEC section 13: switch the partition to the new rules and evaluate every customer of it again.

        Like a clock advance, it waits until the partition's inputs are processed up to where they were
        when it was issued (`after`): the new rules start after everything produced before the command.
        """
        clock = self.clock_for(change.partition)
        if change.after and not self._offsets_reached(change.partition, change.after):
            clock.pending_rules.append(
                (change.text, change.version, change.issued_at, dict(change.after), change.files)
            )
            self._dirty_clocks[change.partition] = clock
        else:
            self._switch_rules(change, effects)
        if self.autoflush:
            self.flush()

    def _switch_rules(self, change: RulesChange, effects: Effects) -> None:
        """A record whose version is already in effect changes nothing (a replay, or the same file applied
        twice). Cost: one evaluation per customer of the partition."""
        partition = change.partition
        clock = self.clock_for(partition)
        if self.context_for(partition).rules.version == change.version:
            return
        context = self._context_of(change.text, change.version, change.files)  # checked when decoded
        clock.rules_text, clock.rules_version, clock.rules_files = change.text, change.version, change.files
        self._contexts[partition] = context
        self._dirty_clocks[partition] = clock
        issued_day = day_of_micros(parse_rfc3339_micros(change.issued_at))
        self._timers[partition] = TimerIndex()  # `_finish` schedules every customer under the new rules
        pending = {cid: st for cid, st in self._dirty_customers.items() if st.partition == partition}
        for customer_id, stored in self._customers_of(partition).items():
            state = pending.pop(customer_id, None) or stored
            if state.partition == partition and state.day is not None:
                self._retier(state, context, change, issued_day, clock, effects)
        for state in pending.values():  # new in this batch, not in the table yet
            if state.day is not None:
                self._retier(state, context, change, issued_day, clock, effects)

    def _retier(
        self,
        state: CustomerState,
        context: RulesContext,
        change: RulesChange,
        issued_day: int,
        clock: PartitionClock,
        effects: Effects,
    ) -> None:
        assert state.day is not None
        self._touch(state)
        # D_c: a customer no timer was due for still holds an older day, with the tiers of D_c.
        watermark = clock.watermark_day()
        if watermark is not None and watermark > state.day:
            state.day = watermark
        for dimension in [name for name in state.tiers if name not in context.dimensions]:
            clock.count_move(dimension, state.tiers.pop(dimension), None)  # its seq is kept
            effects.removed_dimensions.setdefault(state.partition, set()).add(dimension)
        # The buckets hold the old windows' days: features over the new windows (what is retained).
        features = context.features(
            state,
            state.day,
            features_at(state, state.day, context.rules.value_days, context.rules.engagement_days),
        )
        tiers = context.rules.classify(features)
        self._record(
            state, state.day, tiers, features, change.issued_at, issued_day, "rules_changed", None, effects
        )
        # (`_record` writes the record whatever changed: it shows the rules version it was evaluated under.)
        self._finish(state, effects)

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
        clock = self.clock_for(message.partition)
        if clock.pending or clock.pending_rules:
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
        # The profiles topic does not take part in the watermark (SPEC section 10).
        if message.kind is not Kind.PROFILES and _observe(clock, message.kind.value, event.ts_micros):
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
        self._apply(state, event, watermark_day, effects, message.offset)
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
        clock = self.clock_for(partition)
        return bool(clock.pending or clock.pending_rules)

    def apply_ready_pending(self, partition: int, effects: Effects) -> None:
        """Apply the waiting `clock advance` requests, then `rules` records, whose input offsets have been
        reached (an advance and a rules record ready at once: the advance first)."""
        clock = self.clock_for(partition)
        if not (clock.pending or clock.pending_rules):
            return
        ready = [item for item in clock.pending if self._offsets_reached(partition, item[1])]
        if ready:
            clock.pending = [item for item in clock.pending if item not in ready]
            self._dirty_clocks[partition] = clock
            self._raise_partition_floor(partition, clock, max(floor for floor, _ in ready), effects)
        while clock.pending_rules and self._offsets_reached(partition, clock.pending_rules[0][3]):
            text, version, issued_at, _, files = clock.pending_rules.pop(0)
            self._dirty_clocks[partition] = clock
            self._switch_rules(RulesChange(partition, text, version, issued_at, None, files), effects)
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
    def _apply(
        self, state: CustomerState, event: Event, watermark_day: int | None, effects: Effects, offset: int
    ) -> None:
        target = event.day if watermark_day is None else max(event.day, watermark_day)
        if state.day is not None:
            if state.day > target:
                target = state.day
            elif target > state.day:
                if state.next_due is not None and state.next_due <= target:
                    self._advance_customer(state, target, effects)
                state.day = target
        details = bool(self.context_for(state.partition).rules.custom_features)
        apply_event(state, event, self.config.dedupe_horizon_micros, offset, details)
        self._prune(state, target)  # the record below is as of `target`: features are the buckets' totals
        context = self.context_for(state.partition)
        features = context.features(state, target, current_features(state, target))
        tiers = context.rules.classify(features)
        self._record(
            state, target, tiers, features, event.ts, event.day, event.reason, event.event_id, effects
        )
        state.day = target
        self._finish(state, effects)

    def _advance_customer(self, state: CustomerState, target: int, effects: Effects) -> int | None:
        """Evaluate the customer at every day in (D_c, target] that changes a tier, then set D_c = target.
        Returns the first candidate day after `target` (valid until the customer's next event)."""
        assert state.day is not None
        context = self.context_for(state.partition)
        current = tuple(state.tiers.get(name) for name in context.dimensions)
        changes, next_due = context.timeline.advance(state, state.day, current, target)
        for change in changes:
            self._record(
                state,
                change.day,
                change.tiers,
                change.features,
                day_midnight_rfc3339(change.day),
                change.day,
                "time",
                None,
                effects,
            )
        state.day = target
        return next_due

    def _record(
        self,
        state: CustomerState,
        day: int,
        tiers: tuple[str, ...],
        features: Features,
        at: str,
        at_day: int,
        reason: str,
        cause_event_id: str | None,
        effects: Effects,
    ) -> None:
        """Emit a tier change per dimension that differs, and count one record write (SPEC sections 6, 7).

        Each change is also kept in the state's `emitted` list with the record version it is written with
        (history and flows, SPEC section 14).
        """
        rendered: dict[str, object] | None = None
        context = self.context_for(state.partition)
        rules = context.rules
        for index, (dimension, tier) in enumerate(zip(context.dimensions, tiers, strict=True)):
            previous = state.tiers.get(dimension)
            if previous == tier:
                continue
            if rendered is None:
                money = context.money
                rendered = {
                    name: render_feature(name, features.get(name), money) for name in context.feature_names
                }
                self._touch(state)
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
                rules_version=rules.version,
                actions=rules.tier_actions(index, tier),
                features=rendered,
                when=context.when[index][tier],
                attributes=dict(state.attributes_json()) if state.attributes else {},
            )
            effects.transitions.append(change)
            state.emitted.append(
                Emitted(state.version + 1, at_day, dimension, previous, tier, change.to_json())
            )
        if rendered is not None or reason != "time":
            state.version += 1
            state.as_of = day
            effects.projections[state.customer_id] = state
            self._written_features[state.customer_id] = (day, features)

    def _touch(self, state: CustomerState) -> None:
        """The first change of a customer in a batch: the previous batch's `emitted` are in Redis (a batch
        starts only after the previous one was projected), so they need not be kept any longer."""
        if state.customer_id not in self._batch_touched:
            self._batch_touched.add(state.customer_id)
            if state.emitted:
                state.emitted = []

    def _finish(self, state: CustomerState, effects: Effects) -> None:
        """Prune what no window needs any more, set the timer to the next candidate day, store the state."""
        assert state.as_of is not None and state.day is not None
        self._prune(state, state.as_of)
        timeline = self.context_for(state.partition).timeline
        self._store(state, timeline.first_candidate(state, state.day))

    def _store(self, state: CustomerState, next_due: int | None) -> None:
        """Set the customer's timer and keep the state for this batch's commit."""
        self._touch(state)
        state.next_due = next_due
        self.timers_for(state.partition).schedule(state.customer_id, state.next_due)
        self._dirty_customers[state.customer_id] = state

    def _prune(self, state: CustomerState, as_of: int) -> None:
        context = self.context_for(state.partition)
        prune_buckets(
            state, as_of - context.keep_purchase_days + 1, as_of - context.keep_interaction_days + 1
        )
        if state.c_days or state.t_days:
            prune_details(state, as_of - context.rules.history_days + 1)

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
            next_due = self._advance_customer(state, new_day, effects)
            # Pruning keeps every bucket of a window at D_c or later: the candidate after it stays valid.
            assert state.as_of is not None
            self._prune(state, state.as_of)
            self._store(state, next_due)

    # ------------------------------------------------------------------ projection
    def record_fields(self, state: CustomerState) -> dict[str, str]:
        """The Redis hash of SPEC section 7 for a customer, as of its last written evaluation."""
        assert state.as_of is not None
        context = self.context_for(state.partition)
        written = self._written_features.get(state.customer_id)
        if written is not None and written[0] == state.as_of:
            features = written[1]
        else:  # the buckets are pruned for `as_of`, none later
            features = context.features(state, state.as_of, current_features(state, state.as_of))
        fields: dict[str, str] = {}
        for name in context.feature_names:
            value = render_feature(name, features.get(name), context.money)
            if value is not None:
                fields[name] = str(value)
        # Tiers last: a dimension named like a feature (the default `engagement`) shows its tier.
        rules = context.rules
        for dimension in rules.dimension_names:
            tier = state.tiers.get(dimension)
            if tier is not None:
                fields[dimension] = tier
        fields["as_of"] = day_iso(state.as_of)
        if state.first_purchase_at is not None:
            fields["first_purchase_at"] = state.first_purchase_at
        if state.last_purchase_at is not None:
            fields["last_purchase_at"] = state.last_purchase_at
        for name, attribute in state.attributes.items():
            if attribute.value is not None:
                fields[f"attr.{name}"] = render_attribute(attribute.value)
        fields["rules_version"] = rules.version
        fields["version"] = str(state.version)
        return fields


def render_attribute(value: str | int | float | bool) -> str:
    """SPEC section 10: strings verbatim, numbers as JSON text, booleans `true`/`false`."""
    if isinstance(value, str):
        return value
    return orjson.dumps(value).decode()


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

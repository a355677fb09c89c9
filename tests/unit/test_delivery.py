"""Continuity of delivered records and the offsets committed (streams/delivery.py, streams/continuity.py)."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

import pytest

from streams import control
from streams.continuity import CATCH_UP_LIMIT, SourceContinuity
from streams.delivery import DeliveryTracker

P = ("in.purchases", 3)


@dataclass(frozen=True)
class Record:
    topic: str
    partition: int
    offset: int


class Log:
    """A partition log with `missing` offsets (transaction markers); counts the reads asked of it."""

    def __init__(self, start: int = 0, missing: frozenset[int] = frozenset()) -> None:
        self.start = start
        self.missing = missing
        self.reads: list[tuple[int, int]] = []

    async def between(self, topic: str, partition: int, start: int, stop: int) -> list[Record]:
        self.reads.append((start, stop))
        return [Record(topic, partition, o) for o in range(start, stop) if o not in self.missing]

    async def log_start(self, topic: str, partition: int) -> int:
        return self.start

    async def close(self) -> None:
        pass


class Committed:
    def __init__(self, offsets: dict[tuple[str, int], int] | None) -> None:
        self.offsets = offsets

    async def of(self, partitions: list[tuple[str, int]]) -> dict[tuple[str, int], int] | None:
        return None if self.offsets is None else {k: v for k, v in self.offsets.items() if k in partitions}


def deliver(continuity: SourceContinuity, offsets: list[int]) -> list[int]:
    """Offsets handled, in order, when Faust delivers `offsets` (missed records first, as the agent does)."""

    async def run() -> list[int]:
        handled = []
        for offset in offsets:
            if not continuity.continues(P, offset):
                handled += [r.offset for r in await continuity.missed_before(P, offset)]
            handled.append(offset)
            continuity.delivered(P, offset)
        return handled

    return asyncio.run(run())


def test_contiguous_delivery_reads_nothing_from_kafka() -> None:
    log = Log()
    continuity = SourceContinuity(DeliveryTracker(), log, Committed({P: 10}))
    assert deliver(continuity, [10, 11, 12]) == [10, 11, 12]
    assert log.reads == []


def test_records_skipped_in_the_middle_are_read_and_handled_in_order_before_the_next() -> None:
    log = Log()
    continuity = SourceContinuity(DeliveryTracker(), log, Committed({P: 38}))
    assert deliver(continuity, [38, 39, 44, 45]) == [38, 39, 40, 41, 42, 43, 44, 45]
    assert log.reads == [(40, 44)]


def test_a_first_delivery_after_the_committed_offset_is_a_hole() -> None:
    log = Log()
    continuity = SourceContinuity(DeliveryTracker(), log, Committed({P: 5}))
    assert deliver(continuity, [8, 9]) == [5, 6, 7, 8, 9]


def test_without_a_committed_offset_delivery_starts_at_the_log_start() -> None:
    continuity = SourceContinuity(DeliveryTracker(), Log(start=2), Committed({}))
    assert deliver(continuity, [4]) == [2, 3, 4]


def test_when_kafka_cannot_tell_the_first_delivery_is_trusted() -> None:
    log = Log()
    continuity = SourceContinuity(DeliveryTracker(), log, Committed(None))
    assert deliver(continuity, [7, 8]) == [7, 8]
    assert log.reads == []


def test_a_real_gap_in_the_log_is_read_once_and_passed() -> None:
    log = Log(missing=frozenset({11}))  # e.g. a transaction marker
    continuity = SourceContinuity(DeliveryTracker(), log, Committed({P: 10}))
    assert deliver(continuity, [10, 12, 13]) == [10, 12, 13]
    assert log.reads == [(11, 12)]


def test_redeliveries_before_the_expected_offset_pass_without_reads() -> None:
    log = Log()
    continuity = SourceContinuity(DeliveryTracker(), log, Committed({P: 0}))
    assert deliver(continuity, [0, 1, 2, 1, 2, 3]) == [0, 1, 2, 1, 2, 3]
    assert log.reads == []


def test_commits_follow_durable_batches_only() -> None:
    tracker = DeliveryTracker()
    tracker.start(P, 10)
    for offset in (10, 11, 12):
        tracker.delivered(P, offset)
    assert tracker.committable(P) is None  # handled, not durable yet
    tracker.batch_durable({P})
    assert tracker.committable(P) == 13
    tracker.delivered(P, 13)
    assert tracker.committable(P) == 13
    tracker.reset()
    assert tracker.committable(P) is None and not tracker.knows(P)


@dataclass(frozen=True)
class TP:
    topic: str
    partition: int


class FaustConsumer:
    """The three bookkeeping maps and `_new_offset` of Faust's consumer that `take_commits` touches."""

    def __init__(self) -> None:
        self._acked: dict[Any, list[int]] = defaultdict(list)
        self._acked_index: dict[Any, set[int]] = defaultdict(set)
        self._gap: dict[Any, object] = {}

    def _new_offset(self, tp: Any) -> int | None:
        return 99


def test_faust_commits_source_partitions_at_durable_positions_and_others_as_before() -> None:
    tracker = DeliveryTracker()
    continuity = SourceContinuity(tracker, Log(), Committed({}))
    consumer = FaustConsumer()
    continuity.take_commits(consumer, {"in.purchases"})
    continuity.take_commits(consumer, {"in.purchases"})  # idempotent: not wrapped twice
    source, other = TP(*P), TP("app-customers-changelog", 3)
    consumer._acked[source] = [10, 11, 13]
    consumer._acked_index[source] = {10, 11, 13}
    consumer._gap[source] = object()
    assert consumer._new_offset(source) is None  # nothing durable: nothing to commit
    assert consumer._acked[source] == [] and consumer._acked_index[source] == set()
    assert source not in consumer._gap
    tracker.start(P, 10)
    tracker.delivered(P, 10)
    tracker.batch_durable({P})
    assert consumer._new_offset(source) == 11
    assert consumer._new_offset(other) == 99


def test_a_catch_up_reads_the_undelivered_tail_and_nothing_twice() -> None:
    log = Log()
    continuity = SourceContinuity(DeliveryTracker(), log, Committed({P: 10}))
    assert deliver(continuity, [10, 11]) == [10, 11]

    def caught_up(until: dict[str, int]) -> list[int]:
        return [r.offset for r in asyncio.run(continuity.caught_up(3, until))]

    assert caught_up({"in.purchases": 15}) == [12, 13, 14]  # the tail Faust never delivered
    assert caught_up({"in.purchases": 15}) == []  # already read
    assert deliver(continuity, [12, 15]) == [12, 15]  # Faust's late copies are redeliveries; 15 continues
    assert log.reads == [(12, 15)]


def test_a_catch_up_starts_an_unknown_partition_at_its_committed_offset_and_caps_one_read() -> None:
    log = Log()
    continuity = SourceContinuity(DeliveryTracker(), log, Committed({P: 7}))
    records = asyncio.run(continuity.caught_up(3, {"in.purchases": 7 + CATCH_UP_LIMIT + 5}))
    assert log.reads == [(7, 7 + CATCH_UP_LIMIT)]
    assert len(records) == CATCH_UP_LIMIT and continuity.position(P) == 7 + CATCH_UP_LIMIT
    unknown = SourceContinuity(DeliveryTracker(), Log(), Committed(None))
    assert asyncio.run(unknown.caught_up(3, {"in.purchases": 20})) == []  # Kafka cannot tell: next time


def test_catch_up_requests_round_trip_and_bad_ones_are_refused() -> None:
    request = control.decode(control.encode_catch_up({"in.purchases": 42}))
    assert (request.kind, request.until) == ("catch-up", {"in.purchases": 42})
    for bad in (b'{"type": "catch-up"}', b'{"type": "catch-up", "until": {"t": "1"}}'):
        with pytest.raises(control.ControlError):
            control.decode(bad)

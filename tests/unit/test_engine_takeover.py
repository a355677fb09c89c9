"""A crash between a batch's durable state and its effects: the next owner finishes the batch exactly.

The worker writes a per-partition marker naming the batch's customers as unconfirmed, then their states
(each with its `outbox` of tier changes) and the clocks, then Redis, then the sends, then the cleared
markers. These tests play that order against a changelog kept as encoded bytes (what a
recovering worker reads) and crash at each step.
"""

from __future__ import annotations

import msgspec
import orjson

from segmenter.clock import PartitionClock
from segmenter.customer import CustomerState
from segmenter.engine import Effects, Engine, InputMessage
from segmenter.events import Kind
from segmenter.rules import default_rules

RULES = default_rules()
TOPIC = "in.purchases"


class Changelog:
    """The durable copy of both tables; `recover` gives a new worker's tables."""

    def __init__(self) -> None:
        self.customers: dict[str, bytes] = {}
        self.clocks: dict[str, bytes] = {}

    def write(self, customers: dict[str, CustomerState], clocks: dict[str, PartitionClock]) -> None:
        self.customers.update({k: msgspec.msgpack.encode(v) for k, v in customers.items()})
        self.clocks.update({k: msgspec.msgpack.encode(v) for k, v in clocks.items()})

    def recover(self) -> Engine:
        customers = {k: msgspec.msgpack.decode(v, type=CustomerState) for k, v in self.customers.items()}
        clocks = {k: msgspec.msgpack.decode(v, type=PartitionClock) for k, v in self.clocks.items()}
        return Engine(RULES, customers, clocks, autoflush=False)


def purchase(offset: int, customer: str, day: str, amount: str = "20.00") -> InputMessage:
    body = {"event_id": f"p{offset}", "type": "purchase", "customer_id": customer, "ts": f"{day}T10:00:00Z"}
    body["amount"] = amount
    return InputMessage(Kind.PURCHASES, TOPIC, 0, offset, customer.encode(), orjson.dumps(body), [])


def run_batch(engine: Engine, log: Changelog, messages: list[InputMessage], crash_after: str = "") -> list:
    """The agent's order (streams/app.py `_complete_batch`); returns the tier-change bodies sent."""
    effects = Effects()
    for message in messages:
        engine.handle_input(message, effects)
    customers, clocks = engine.take_dirty()
    markers = engine.markers_for(customers)
    if crash_after == "nothing":
        return []
    write(engine, log, {}, markers)
    if crash_after == "markers":
        return []
    write(engine, log, customers, {str(p): c for p, c in clocks.items()})
    if crash_after == "tables":
        return []
    sent = [body for state in customers.values() for body in state.outbox]
    if crash_after == "sends":
        return sent
    write(engine, log, {}, engine.confirm(markers))
    for state in customers.values():
        state.outbox = []  # as the agent does once the sends are acknowledged
    return sent


def write(engine: Engine, log: Changelog, customers: dict, clocks: dict) -> None:
    """A table write: the worker's own table and the changelog."""
    engine.customers.update(customers)
    engine.clocks.update(clocks)
    log.write(customers, clocks)


def recheck(engine: Engine) -> list:
    """What the 2-second timer's control message does on a quiet partition."""
    effects = Effects()
    engine.apply_ready_pending(0, effects)
    customers, clocks = engine.take_dirty()
    return [body for state in customers.values() for body in state.outbox]


def seqs(bodies: list) -> list[tuple[str, str, int]]:
    return [(b["customer_id"], b["dimension"], b["seq"]) for b in map(orjson.loads, bodies)]


FIRST = [purchase(0, "a", "2025-01-01"), purchase(1, "b", "2025-01-02")]
SECOND = [purchase(2, "a", "2025-03-01", "900.00")]


def test_no_crash_sends_each_change_once_and_leaves_nothing_to_take_over() -> None:
    log = Changelog()
    worker = log.recover()
    sent = run_batch(worker, log, FIRST) + run_batch(worker, log, SECOND)
    assert len(seqs(sent)) == len(set(seqs(sent))) > 0
    successor = log.recover()
    assert not successor.needs_takeover(0)
    assert recheck(successor) == []
    assert run_batch(successor, log, FIRST + SECOND) == []  # a full replay is all duplicates


def test_crash_after_the_tables_re_sends_the_outbox_byte_for_byte() -> None:
    log = Changelog()
    reference = run_batch(Changelog().recover(), Changelog(), FIRST)
    assert run_batch(log.recover(), log, FIRST, crash_after="tables") == []
    successor = log.recover()
    assert successor.needs_takeover(0)
    assert recheck(successor) == reference  # nothing left to replay; the timer's re-check finishes it


def test_crash_after_the_sends_re_sends_identical_copies_only() -> None:
    log = Changelog()
    first_try = run_batch(log.recover(), log, FIRST, crash_after="sends")
    successor = log.recover()
    # Kafka redelivers the uncommitted records: duplicates by offset, the outbox goes out again unchanged.
    again = run_batch(successor, log, FIRST)
    assert again == first_try
    assert not log.recover().needs_takeover(0)


def test_crash_after_the_markers_only_re_sends_what_was_sent_and_decides_the_same_again() -> None:
    log = Changelog()
    first = run_batch(log.recover(), log, FIRST)
    assert run_batch(log.recover(), log, SECOND, crash_after="markers") == []
    successor = log.recover()
    assert successor.needs_takeover(0)
    again = run_batch(successor, log, SECOND)
    reference_log = Changelog()
    run_batch(reference_log.recover(), reference_log, FIRST)
    reference = run_batch(reference_log.recover(), reference_log, SECOND)
    fresh = [body for body in again if body not in first]  # the rest are exact copies of earlier sends
    assert fresh == reference


def test_crash_before_the_tables_decides_the_same_changes_again() -> None:
    log = Changelog()
    lost = run_batch(log.recover(), log, FIRST, crash_after="nothing")
    assert lost == []
    assert run_batch(log.recover(), log, FIRST) == run_batch(Changelog().recover(), Changelog(), FIRST)


def test_taken_over_customer_keeps_its_unsent_changes_before_new_ones() -> None:
    log = Changelog()
    run_batch(log.recover(), log, FIRST, crash_after="tables")
    unsent = seqs([body for state in log.recover().customers.values() for body in state.outbox])
    successor = log.recover()
    sent = run_batch(successor, log, SECOND)
    got = seqs(sent)
    for customer in ("a", "b"):  # per customer: every unsent change first, in order, then the new ones
        mine = [item for item in unsent if item[0] == customer]
        assert [item for item in got if item[0] == customer][: len(mine)] == mine
    assert len(got) == len(set(got)) > len(unsent)


def test_a_confirmed_outbox_is_not_sent_again_with_the_next_change() -> None:
    log = Changelog()
    worker = log.recover()
    first = seqs(run_batch(worker, log, FIRST))
    second = seqs(run_batch(log.recover(), log, SECOND))  # a restarted worker, stale outbox in the log
    assert second and not set(first) & set(second)

"""Minimal reproductions of what the fault replay found, without a broker (marker `faults`, fast).

A replay after a crash re-delivers the input records after the group's last committed offset. With
exactly_once their effects were aborted with the batch, but with at_least_once (a crash between the flush
and the offset commit) the changelog may already hold them. The event-id de-dup alone holds only for
`dedupe_horizon` (7 days of event time) behind the customer's newest event, while a worker catching up on a
backlog covers far more event time per batch; each state therefore records the offset of the last record it
applied per input topic, and a record at or before it is a duplicate.
"""

from __future__ import annotations

import orjson
import pytest

from segmenter.engine import Effects, Engine, InputMessage
from segmenter.events import Kind
from segmenter.rules import default_rules

pytestmark = pytest.mark.faults


def _message(kind: Kind, offset: int, event: dict) -> InputMessage:
    topic = "in.purchases" if kind is Kind.PURCHASES else "in.interactions"
    return InputMessage(kind, topic, 0, offset, event["customer_id"].encode(), orjson.dumps(event), [])


def test_a_record_replayed_after_a_crash_is_not_applied_twice() -> None:
    customers: dict = {}  # stands for the table, recovered from its changelog after the crash
    clocks: dict = {}
    first = _message(
        Kind.PURCHASES,
        0,
        {
            "event_id": "p-1",
            "type": "purchase",
            "customer_id": "c-1",
            "ts": "2025-01-01T10:00:00Z",
            "amount": "40.00",
        },
    )
    later = _message(
        Kind.PURCHASES,
        1,
        {
            "event_id": "p-2",
            "type": "purchase",
            "customer_id": "c-1",
            "ts": "2025-01-20T10:00:00Z",
            "amount": "15.00",
        },
    )
    worker = Engine(default_rules(), customers, clocks)
    worker.handle_input(first, Effects())
    worker.handle_input(later, Effects())
    assert customers["c-1"].lifetime_purchases == 2

    # kill -9 before the offsets of both records were committed: a new worker gets the table (changelog
    # already has both effects) and the records again from the last committed offset (0).
    restarted = Engine(default_rules(), customers, clocks)
    effects = Effects()
    restarted.handle_input(first, effects)
    restarted.handle_input(later, effects)

    assert customers["c-1"].lifetime_purchases == 2, "offset 0 was applied a second time"
    assert customers["c-1"].lifetime_cents == 5500
    assert effects.outcomes == {("in.purchases", "duplicate"): 2}

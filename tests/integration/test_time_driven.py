"""Time-driven transitions on the real broker (SPEC sections 3 and 6).

Purchase-only histories delivered in order must reproduce, per customer, exactly the tier-change sequence of
the independent day-by-day oracle, including customers who go from active to churned across one long gap;
after `clock advance`, Redis must equal the oracle as of the advanced day.
"""

from __future__ import annotations

from collections import defaultdict

import pytest

from tests.integration.pipeline_helpers import (
    delete_prefix,
    produce,
    redis_state,
    tier_changes,
    topic_size,
    wait_until_quiet,
)
from tests.integration.test_pipeline import TRANSITION_KEYS, _clock_advance
from tests.integration.workerproc import Names, WorkerProcess
from tests.oracle import eventgen, model

PARTITIONS = 3


@pytest.fixture
def names(unique_name, stack):
    names = Names(unique_name)
    names.create_topics(stack.broker, PARTITIONS)
    yield names
    delete_prefix(stack.redis_url, names.redis_prefix)


def _purchase_history(seed: int) -> list:
    messages = eventgen.generate(seed=seed, n_customers=150, start="2025-01-01", days=540, bad_per_reason=1)
    return [m for m in messages if m[0] == "purchases"]


def test_purchase_only_history_reproduces_every_transition(stack, names, tmp_path) -> None:
    messages = _purchase_history(seed=23)
    first_stop, final_stop = "2026-09-01", "2027-06-15T12:00:00Z"
    worker = WorkerProcess(stack.broker, stack.redis_url, names, tmp_path / "data").start()
    try:
        produce(stack.broker, names, messages)
        _clock_advance(stack, names, first_stop)  # two advances: the second moves on from the first
        _clock_advance(stack, names, final_stop)
        wait_until_quiet(lambda: topic_size(stack.broker, names.tier_changes))
    finally:
        worker.stop()
    expected = model.run_messages(
        messages + [("clock", None, b"2026-09-01T00:00:00Z")],
        n_partitions=PARTITIONS,
        clock_advance_to=final_stop,
    )

    got: dict[str, list[dict]] = defaultdict(list)
    for change in tier_changes(stack.broker, names):
        got[change["customer_id"]].append({k: change[k] for k in TRANSITION_KEYS})
    want: dict[str, list[dict]] = defaultdict(list)
    for transition in expected.transitions:
        want[transition["customer_id"]].append({k: transition[k] for k in TRANSITION_KEYS})
    assert set(got) == set(want)
    for customer_id in want:
        key = lambda c: (c["dimension"], c["seq"])  # noqa: E731 - the order defined per dimension
        assert sorted(got[customer_id], key=key) == sorted(want[customer_id], key=key), customer_id

    time_driven = [t for t in expected.transitions if t["reason"] == "time"]
    assert len(time_driven) > 50
    jumps = {
        t["customer_id"]
        for t in expected.transitions
        if t["dimension"] == "lifecycle" and t["from"] == "at_risk" and t["to"] == "churned"
    }
    assert jumps, "the history must contain customers going quiet long enough to churn"

    records, counts, _ = redis_state(stack.redis_url, names.redis_prefix)
    assert counts == expected.tier_counts
    for customer_id, view in expected.final.items():
        record = dict(records[customer_id])
        assert int(record.pop("version")) == view.writes, customer_id
        assert record.pop("rules_version")
        assert record == view.redis_hash(), customer_id

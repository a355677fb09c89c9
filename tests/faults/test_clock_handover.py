"""`clock advance` issued while no worker runs, after every input was processed and committed.

The advance carries the input end offsets it must wait for (`after`); a worker that gains the partition
without reading any input knows its offsets only from the group's committed offsets, which the assignment
seeds into the engine (`streams/partitions.py: OwnedPartitions.assign`) before the control record is
handled. History: with Faust the newly assigned partitions' offsets were missing at that moment and the
advance stayed pending for ever (13 customers left in stale tiers in a fault replay); this test reproduces
the situation: worker A processes and commits a purchase and stops, `clock advance` is issued, worker B
starts and must apply it (the customer churns).
"""

from __future__ import annotations

import json
import time
import uuid

import pytest

from tests.faults.harness import cli, create_topics
from tests.integration.pipeline_helpers import produce, redis_state
from tests.integration.workerproc import Names, WorkerProcess

pytestmark = pytest.mark.faults


@pytest.mark.timeout(300)
def test_clock_advance_after_a_handover_is_applied(private_stack, tmp_path) -> None:
    broker, redis_url = private_stack.broker, private_stack.redis_url
    names = Names(f"h{uuid.uuid4().hex[:8]}")
    create_topics(broker, names, 2)
    purchase = {"event_id": "p-1", "type": "purchase", "customer_id": "c-1", "ts": "2025-01-01T10:00:00Z"}
    produce(broker, names, [("purchases", b"c-1", json.dumps({**purchase, "amount": "20.00"}).encode())])

    first = WorkerProcess(broker, redis_url, names, tmp_path / "a").start()
    try:
        deadline = time.monotonic() + 30
        while "c-1" not in redis_state(redis_url, names.redis_prefix)[0] and time.monotonic() < deadline:
            time.sleep(0.5)
        time.sleep(3)  # a few commit intervals
    finally:
        first.stop()
    assert redis_state(redis_url, names.redis_prefix)[0]["c-1"]["lifecycle"] == "new"

    advance = cli(["clock", "advance", "--to", "2025-12-31"], names, broker, redis_url)
    assert advance.returncode == 0, advance.stderr
    second = WorkerProcess(broker, redis_url, names, tmp_path / "b").start()
    try:
        deadline = time.monotonic() + 45
        record: dict = {}
        while time.monotonic() < deadline:
            record = redis_state(redis_url, names.redis_prefix)[0]["c-1"]
            if record.get("lifecycle") == "churned":
                break
            time.sleep(1)
    finally:
        second.stop()
    assert record.get("lifecycle") == "churned", (
        f"the advance to 2025-12-31 was not applied after the handover: {record}\n{second.log_tail(10)}"
    )

"""`clock advance` issued while no worker runs, after every input was processed and committed.

Found by the fault replay: the advance carries the input end offsets it must wait for (`after`). A worker
that gains the partition without reading any input learns its offsets only from
`app.consumer._committed_offset` in `on_rebalance_complete` (streams/app.py), which does not hold the newly
assigned input partitions at that moment; the advance stays in `PartitionClock.pending` for ever (the
2-second re-check timer re-tests the same offsets), so the time-driven transitions never happen on that
partition. In the fault replay (run 2, at_least_once) partition 0 kept its advance pending with every input
committed; 13 customers were left in stale tiers.
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

"""Records Faust fetches but never delivers (faust-streaming 0.15 around rebalances) are not lost.

The worker runs with a test-only hook (tests/integration/faust_drops/sitecustomize.py) that removes given
offset ranges from the fetched batches after aiokafka's position moved past them, as Faust's fetcher does
when it abandons a batch. The worker must notice each hole, read the records from Kafka itself, apply them
in order, commit every partition to its end, and end up exactly where the independent oracle does.
"""

from __future__ import annotations

import os
import re
import time
from pathlib import Path

import pytest
from kafka import KafkaAdminClient, KafkaConsumer, TopicPartition

from tests.integration.pipeline_helpers import (
    delete_prefix,
    produce,
    redis_state,
    topic_size,
    wait_until_quiet,
)
from tests.integration.test_pipeline import CLOCK_TO, PARTITIONS, _clock_advance
from tests.integration.workerproc import Names, WorkerProcess
from tests.oracle import eventgen, model

DROPS_HOOK = Path(__file__).parent / "faust_drops"


@pytest.fixture
def names(unique_name, stack):
    names = Names(unique_name)
    names.create_topics(stack.broker, PARTITIONS)
    yield names
    delete_prefix(stack.redis_url, names.redis_prefix)


def _end_offsets(broker: str, topics: list[str]) -> dict[tuple[str, int], int]:
    consumer = KafkaConsumer(bootstrap_servers=broker.split(","))
    try:
        tps = [TopicPartition(t, p) for t in topics for p in consumer.partitions_for_topic(t) or ()]
        return {(tp.topic, tp.partition): n for tp, n in consumer.end_offsets(tps).items()}
    finally:
        consumer.close()


def _committed(broker: str, group: str) -> dict[tuple[str, int], int]:
    admin = KafkaAdminClient(bootstrap_servers=broker.split(","))
    try:
        offsets = admin.list_group_offsets({group: None}).get(group, {})
        return {(tp.topic, tp.partition): meta.offset for tp, meta in offsets.items()}
    finally:
        admin.close()


def _recovered(metrics: str) -> dict[str, float]:
    pattern = r'^segmenter_missed_records_recovered_total\{topic="([^"]+)"\} (\S+)$'
    return {topic: float(value) for topic, value in re.findall(pattern, metrics, re.M)}


def test_records_faust_drops_are_read_from_kafka_and_applied(stack, names, tmp_path) -> None:
    messages = eventgen.generate(seed=23, n_customers=80, start="2025-01-01", days=500, bad_per_reason=1)
    expected = model.run_messages(messages, n_partitions=PARTITIONS, clock_advance_to=CLOCK_TO)
    produce(stack.broker, names, messages)
    inputs = _end_offsets(stack.broker, [names.purchases, names.interactions])
    assert inputs[(names.purchases, 0)] > 60 and inputs[(names.interactions, 1)] > 180
    # In the middle of a partition, at the very start of one, and a `clock advance` control record.
    drops = [(names.purchases, 0, 20, 60), (names.interactions, 1, 100, 180), (names.interactions, 2, 0, 15)]
    drops.append((names.control, 3, 0, 1))
    env = {
        "PYTHONPATH": os.pathsep.join([str(DROPS_HOOK), os.environ.get("PYTHONPATH", "")]),
        "SEGMENTER_TEST_FAUST_DROPS": ";".join(f"{t}:{p}:{a}:{b}" for t, p, a, b in drops),
    }
    # Holes inside a partition show at the next record; the dropped `clock advance` is the tail of a quiet
    # partition and is read when the worker finds the partition's delivery standing still (20-30 s).
    want = {names.purchases: 40.0, names.interactions: 95.0, names.control: 1.0}
    worker = WorkerProcess(stack.broker, stack.redis_url, names, tmp_path / "data", extra_env=env).start()
    try:
        _clock_advance(stack, names, CLOCK_TO)
        deadline = time.monotonic() + 120
        while _recovered(worker.metrics()) != want and time.monotonic() < deadline:
            time.sleep(1)
        wait_until_quiet(lambda: (topic_size(stack.broker, names.tier_changes), worker.metrics().count("\n")))
        metrics = worker.metrics()
        committed = _committed(stack.broker, names.app_id)
        ends = _end_offsets(stack.broker, [names.purchases, names.interactions, names.control])
    finally:
        worker.stop()

    assert _recovered(metrics) == want
    assert {key: committed.get(key) for key in ends} == ends
    records, counts, _ = redis_state(stack.redis_url, names.redis_prefix)
    assert counts == expected.tier_counts
    for customer_id, view in expected.final.items():
        assert {d: records[customer_id][d] for d in view.tiers} == view.tiers, customer_id
        assert records[customer_id]["lifetime_purchases"] == view.redis_hash()["lifetime_purchases"]

"""Worker start-up on the real broker: co-partitioning (SPEC section 1) and the topics it creates."""

from __future__ import annotations

import os
import subprocess
import sys

from kafka import KafkaAdminClient
from kafka.admin import NewTopic

from streams.kafka_admin import partition_counts
from tests.integration.workerproc import Names, WorkerProcess


def _create(broker: str, partitions: dict[str, int]) -> None:
    admin = KafkaAdminClient(bootstrap_servers=broker.split(","))
    try:
        admin.create_topics([NewTopic(name, n, 1) for name, n in partitions.items()])
    finally:
        admin.close()


def test_worker_refuses_inputs_that_are_not_co_partitioned(stack, unique_name, tmp_path) -> None:
    names = Names(unique_name)
    _create(stack.broker, {names.purchases: 2, names.interactions: 3})
    env = {
        **os.environ,
        **names.env(),
        "SEGMENTER_BROKER": stack.broker,
        "SEGMENTER_REDIS_URL": stack.redis_url,
        "SEGMENTER_DATA_DIR": str(tmp_path),
    }
    result = subprocess.run(
        [sys.executable, "-m", "streams.cli", "worker", "--clock", "event"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    message = result.stderr.strip().splitlines()[-1]
    assert "not co-partitioned" in message and "2 partitions" in message and "has 3" in message


def test_worker_creates_missing_output_and_control_topics(stack, unique_name, tmp_path) -> None:
    names = Names(unique_name)
    _create(stack.broker, {names.purchases: 3, names.interactions: 3})
    worker = WorkerProcess(stack.broker, stack.redis_url, names, tmp_path / "data").start()
    worker.stop()
    counts = partition_counts(stack.broker, [names.tier_changes, names.dead_letters, names.control])
    assert counts == {names.tier_changes: 3, names.dead_letters: 3, names.control: 3}

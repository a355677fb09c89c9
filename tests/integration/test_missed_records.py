"""Reading skipped records straight from a real broker (streams/missed_records.py)."""

from __future__ import annotations

import asyncio

from aiokafka import AIOKafkaProducer
from kafka import KafkaAdminClient
from kafka.admin import NewTopic

from streams.missed_records import MissedRecords
from streams.settings import WorkerSettings


def _topic(stack, name: str) -> None:
    admin = KafkaAdminClient(bootstrap_servers=stack.bootstrap_servers)
    try:
        admin.create_topics([NewTopic(name, num_partitions=2, replication_factor=1)])
    finally:
        admin.close()


async def _produce(stack, topic: str, values: list[bytes], transactional: bool = False) -> list[int]:
    producer = AIOKafkaProducer(
        bootstrap_servers=stack.broker,
        **({"transactional_id": f"{topic}-tx", "enable_idempotence": True} if transactional else {}),
    )
    await producer.start()
    offsets = []
    try:
        for value in values:
            if transactional:
                async with producer.transaction():
                    offsets.append((await (await producer.send(topic, value, partition=1))).offset)
            else:
                offsets.append((await (await producer.send(topic, value, partition=1))).offset)
    finally:
        await producer.stop()
    return offsets


def test_records_between_two_offsets_come_back_in_order(stack, unique_name) -> None:
    topic = f"{unique_name}.purchases"
    _topic(stack, topic)

    async def run() -> None:
        offsets = await _produce(stack, topic, [f"v{i}".encode() for i in range(300)])
        assert offsets == list(range(300))
        reader = MissedRecords(WorkerSettings(broker=stack.broker, app_id=unique_name))
        try:
            got = await reader.between(topic, 1, 40, 260)
            assert [r.offset for r in got] == list(range(40, 260))
            assert [r.value for r in got[:2]] == [b"v40", b"v41"]
            assert await reader.between(topic, 1, 299, 299) == []
            assert [r.offset for r in await reader.between(topic, 1, 0, 1)] == [0]
            assert await reader.log_start(topic, 1) == 0
            assert await reader.log_start(topic, 0) == 0  # an empty partition starts at 0 too
        finally:
            await reader.close()

    asyncio.run(run())


def test_a_gap_of_transaction_markers_reads_as_no_records(stack, unique_name) -> None:
    topic = f"{unique_name}.interactions"
    _topic(stack, topic)

    async def run() -> None:
        offsets = await _produce(stack, topic, [b"a", b"b", b"c"], transactional=True)
        assert offsets == [0, 2, 4]  # each commit marker takes an offset
        reader = MissedRecords(WorkerSettings(broker=stack.broker, app_id=unique_name))
        try:
            assert await reader.between(topic, 1, 1, 2) == []
            assert [r.value for r in await reader.between(topic, 1, 1, 4)] == [b"b"]
        finally:
            await reader.close()

    asyncio.run(run())

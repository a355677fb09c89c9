"""Smoke tests of the real local stack (deploy/local/stack.sh): Kafka through both Python clients, topic
creation with several partitions, transactions with read_committed, and Redis."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterator

import pytest
import redis
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer
from kafka.admin import NewTopic
from kafka.errors import TopicAlreadyExistsError

N = 20


@pytest.fixture
def admin(stack) -> Iterator[KafkaAdminClient]:
    client = KafkaAdminClient(bootstrap_servers=stack.bootstrap_servers, client_id="smoke-admin")
    created: list[str] = []
    client.created_topics = created  # type: ignore[attr-defined]
    try:
        yield client
    finally:
        if created:
            # cleanup only: a leftover topic with a unique name harms nobody
            with contextlib.suppress(Exception):
                client.delete_topics(created)
        client.close()


def create_topic(admin: KafkaAdminClient, name: str, partitions: int = 1) -> None:
    admin.create_topics([NewTopic(name=name, num_partitions=partitions, replication_factor=1)])
    admin.created_topics.append(name)  # type: ignore[attr-defined]
    deadline = time.monotonic() + 30
    while name not in admin.list_topics():
        assert time.monotonic() < deadline, f"topic {name} not visible after create"
        time.sleep(0.1)


def partition_count(admin: KafkaAdminClient, name: str) -> int:
    (described,) = admin.describe_topics([name])
    assert described["error_code"] == 0
    assert described.get("name", described.get("topic")) == name  # kafka-python 3.x says "name", 2.x "topic"
    return len({p.get("partition_index", p.get("partition")) for p in described["partitions"]})


def test_kafka_python_round_trip(stack, admin, unique_name):
    topic = f"{unique_name}.kp"
    create_topic(admin, topic)
    producer = KafkaProducer(bootstrap_servers=stack.bootstrap_servers, acks="all")
    try:
        for i in range(N):
            producer.send(topic, key=f"c-{i % 3}".encode(), value=f'{{"n": {i}}}'.encode())
        producer.flush(timeout=30)
    finally:
        producer.close()

    consumer = KafkaConsumer(
        topic,
        bootstrap_servers=stack.bootstrap_servers,
        group_id=f"{unique_name}-group",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        consumer_timeout_ms=30_000,
    )
    got = []
    try:
        for record in consumer:
            got.append((record.key, record.value))
            if len(got) == N:
                break
        consumer.commit()
    finally:
        consumer.close()
    assert got == [(f"c-{i % 3}".encode(), f'{{"n": {i}}}'.encode()) for i in range(N)]


def test_aiokafka_round_trip(stack, admin, unique_name):
    topic = f"{unique_name}.aio"
    create_topic(admin, topic)

    async def run() -> list[tuple[bytes, bytes, list]]:
        producer = AIOKafkaProducer(bootstrap_servers=stack.broker, acks="all")
        await producer.start()
        try:
            for i in range(N):
                await producer.send(
                    topic, key=b"c-1", value=str(i).encode(), headers=[("ce_id", f"e{i}".encode())]
                )
            await producer.flush()
        finally:
            await producer.stop()

        consumer = AIOKafkaConsumer(
            topic,
            bootstrap_servers=stack.broker,
            group_id=f"{unique_name}-group",
            auto_offset_reset="earliest",
            enable_auto_commit=False,
        )
        await consumer.start()
        got = []
        try:
            async with asyncio.timeout(30):
                async for record in consumer:
                    got.append((record.key, record.value, list(record.headers)))
                    if len(got) == N:
                        break
            await consumer.commit()
        finally:
            await consumer.stop()
        return got

    got = asyncio.run(run())
    assert got == [(b"c-1", str(i).encode(), [("ce_id", f"e{i}".encode())]) for i in range(N)]


def test_topic_with_four_partitions(stack, admin, unique_name):
    topic = f"{unique_name}.p4"
    create_topic(admin, topic, partitions=4)
    assert partition_count(admin, topic) == 4
    with pytest.raises(TopicAlreadyExistsError):
        admin.create_topics([NewTopic(name=topic, num_partitions=4, replication_factor=1)])

    consumer = KafkaConsumer(bootstrap_servers=stack.bootstrap_servers)
    try:
        assert consumer.partitions_for_topic(topic) == {0, 1, 2, 3}
    finally:
        consumer.close()


def test_transactions_read_committed(stack, admin, unique_name):
    topic = f"{unique_name}.tx"
    create_topic(admin, topic)

    async def run() -> tuple[list[bytes], list[bytes]]:
        producer = AIOKafkaProducer(
            bootstrap_servers=stack.broker, transactional_id=f"{unique_name}-tx", enable_idempotence=True
        )
        await producer.start()
        try:
            async with producer.transaction():
                for i in range(3):
                    await producer.send(topic, key=b"k", value=f"committed-{i}".encode())
            await producer.begin_transaction()
            await producer.send(topic, key=b"k", value=b"aborted")
            await producer.abort_transaction()
            async with producer.transaction():
                await producer.send(topic, key=b"k", value=b"committed-3")
        finally:
            await producer.stop()

        async def read(isolation_level: str, expected: int) -> list[bytes]:
            consumer = AIOKafkaConsumer(
                topic,
                bootstrap_servers=stack.broker,
                group_id=None,
                auto_offset_reset="earliest",
                isolation_level=isolation_level,
            )
            await consumer.start()
            values = []
            try:
                async with asyncio.timeout(30):
                    async for record in consumer:
                        values.append(record.value)
                        if len(values) == expected:
                            break
            finally:
                await consumer.stop()
            return values

        return await read("read_committed", 4), await read("read_uncommitted", 5)

    committed, uncommitted = asyncio.run(run())
    assert committed == [b"committed-0", b"committed-1", b"committed-2", b"committed-3"]
    assert uncommitted == [b"committed-0", b"committed-1", b"committed-2", b"aborted", b"committed-3"]


def test_redis_read_write(stack, unique_name):
    client = redis.Redis.from_url(stack.redis_url, decode_responses=True)
    prefix = f"{unique_name}:smoke"
    try:
        client.hset(f"{prefix}:customer:c-1", mapping={"lifecycle": "new", "version": 1})
        client.hincrby(f"{prefix}:customer:c-1", "version", 1)
        client.sadd(f"{prefix}:tier:lifecycle:new", "c-1", "c-2")
        with client.pipeline(transaction=True) as pipe:
            pipe.hincrby(f"{prefix}:tier-counts:lifecycle", "new", 2)
            pipe.hget(f"{prefix}:tier-counts:lifecycle", "new")
            assert pipe.execute() == [2, "2"]
        assert client.hgetall(f"{prefix}:customer:c-1") == {"lifecycle": "new", "version": "2"}
        assert client.smembers(f"{prefix}:tier:lifecycle:new") == {"c-1", "c-2"}
    finally:
        keys = list(client.scan_iter(match=f"{prefix}:*"))
        if keys:
            client.delete(*keys)
        assert not list(client.scan_iter(match=f"{prefix}:*"))
        client.close()

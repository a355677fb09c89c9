"""Shared steps of pipeline tests: produce messages, read outputs, wait for the worker to go quiet."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

import orjson
import redis
from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from tests.integration.workerproc import Names

Message = tuple[str, bytes | None, bytes]


def produce(broker: str, names: Names, messages: Sequence[Message]) -> None:
    """Send in order, keyed; the default (murmur2) partitioner, as every Kafka client uses."""
    producer = KafkaProducer(
        bootstrap_servers=broker.split(","), acks="all", linger_ms=5, max_request_size=2 * 1024 * 1024
    )
    topic_of = {"purchases": names.purchases, "interactions": names.interactions, "profiles": names.profiles}
    try:
        for kind, key, value in messages:
            producer.send(topic_of[kind], key=key, value=value)
        producer.flush(60)
    finally:
        producer.close()


def read_topic(broker: str, topic: str, read_committed: bool = True) -> list:
    """Every record currently in `topic`, in partition order."""
    consumer = KafkaConsumer(
        bootstrap_servers=broker.split(","),
        enable_auto_commit=False,
        isolation_level="read_committed" if read_committed else "read_uncommitted",
        consumer_timeout_ms=3000,
    )
    try:
        partitions = consumer.partitions_for_topic(topic) or set()
        tps = [TopicPartition(topic, p) for p in sorted(partitions)]
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        end = consumer.end_offsets(tps)
        records = []
        deadline = time.monotonic() + 180
        while any(consumer.position(tp) < end[tp] for tp in tps):
            if time.monotonic() > deadline:  # never a silent partial read
                behind = {tp.partition: (consumer.position(tp), end[tp]) for tp in tps}
                raise AssertionError(f"{topic}: not read to its end in 180 s (position, end): {behind}")
            for batch in consumer.poll(timeout_ms=500).values():
                records.extend(batch)
        return records
    finally:
        consumer.close()


def tier_changes(broker: str, names: Names) -> list[dict]:
    return [orjson.loads(record.value) for record in read_topic(broker, names.tier_changes)]


def wait_until_quiet(
    probe: Callable[[], object], quiet_seconds: float = 4.0, timeout: float = 240.0
) -> object:
    """Poll `probe` until its value stops changing for `quiet_seconds`."""
    deadline = time.monotonic() + timeout
    last, since = object(), time.monotonic()
    while time.monotonic() < deadline:
        value = probe()
        if value != last:
            last, since = value, time.monotonic()
        elif time.monotonic() - since >= quiet_seconds:
            return value
        time.sleep(0.5)
    raise AssertionError(f"still changing after {timeout}s: {last!r}")


def topic_size(broker: str, topic: str) -> int:
    consumer = KafkaConsumer(bootstrap_servers=broker.split(","))
    try:
        tps = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
        return sum(consumer.end_offsets(tps).values())
    finally:
        consumer.close()


def redis_state(redis_url: str, prefix: str) -> tuple[dict, dict, dict]:
    """(records by customer, counts by dimension, members by (dimension, tier)) under `prefix`."""
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    records = {
        key[len(f"{prefix}:customer:") :]: client.hgetall(key)
        for key in client.scan_iter(match=f"{prefix}:customer:*", count=1000)
    }
    counts = {
        key.rsplit(":", 1)[1]: {tier: int(n) for tier, n in client.hgetall(key).items()}
        for key in client.scan_iter(match=f"{prefix}:tier-counts:*")
    }
    members = {
        tuple(key[len(f"{prefix}:tier:") :].split(":", 1)): client.smembers(key)
        for key in client.scan_iter(match=f"{prefix}:tier:*", count=1000)
    }
    return records, counts, members


def delete_prefix(redis_url: str, prefix: str) -> None:
    client = redis.Redis.from_url(redis_url)
    for key in client.scan_iter(match=f"{prefix}:*", count=1000):
        client.delete(key)

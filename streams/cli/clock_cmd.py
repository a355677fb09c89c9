"""`segmenter clock advance --to T`: move every partition's event time forward (SPEC section 3)."""

from __future__ import annotations

from collections.abc import Callable

import click

from streams.cli.options import broker_option
from streams.topic_names import TopicNames, topic_options


def parse_time_arg(text: str, param_hint: str = "--to") -> int:
    """RFC 3339 with offset, or a bare date meaning its 00:00:00Z; epoch micros."""
    from segmenter.timeutil import TimestampError, parse_rfc3339_micros

    candidate = f"{text}T00:00:00Z" if len(text) == 10 else text
    try:
        return parse_rfc3339_micros(candidate)
    except TimestampError:
        raise click.BadParameter(
            f"{text!r} is not a date (2026-11-24) or an RFC 3339 time (2026-11-24T10:15:00Z)",
            param_hint=param_hint,
        ) from None


@click.group()
def clock() -> None:
    """Control event time."""


@clock.command()
@broker_option
@topic_options
@click.option("--to", "to", required=True, help="Advance every partition to at least this time (or date).")
def advance(broker: str, topics: TopicNames, to: str) -> None:
    """Raise every partition's watermark to at least T; recorded in Kafka, so restarts and replays see it.

    Running workers evaluate every customer whose tier changes on the days passed (reason `time`).
    """
    from streams.control import encode_advance

    to_micros = parse_time_arg(to)
    partitions = send_control_records(
        broker, topics, b"clock-advance", lambda after: encode_advance(to_micros, after=after)
    )
    click.echo(f"advanced {partitions} partition(s) of {topics.control} to at least {to}")


def send_control_records(
    broker: str, topics: TopicNames, key: bytes, value_of: Callable[[dict[str, int]], bytes]
) -> int:
    """One control record on every partition, made by `value_of` from the partition's input end offsets
    now (the record applies after everything produced before it); returns the partition count."""
    from kafka import KafkaProducer

    from streams.kafka_security import kafka_python_security
    from streams.preflight import input_partitions

    partitions = input_partitions(broker, topics)
    ends = _input_end_offsets(broker, topics, partitions)
    producer = KafkaProducer(
        bootstrap_servers=broker.split(","), acks="all", request_timeout_ms=15_000, **kafka_python_security()
    )
    try:
        for partition in range(partitions):
            after = {topic: ends[(topic, partition)] for topic in topics.inputs()}
            producer.send(topics.control, key=key, value=value_of(after), partition=partition)
        producer.flush(timeout=30)
    finally:
        producer.close(timeout=10)
    return partitions


def _input_end_offsets(broker: str, topics: TopicNames, partitions: int) -> dict[tuple[str, int], int]:
    """Where the inputs end now: the advance applies after everything produced before it."""
    from kafka import KafkaConsumer, TopicPartition

    from streams.kafka_security import kafka_python_security

    consumer = KafkaConsumer(
        bootstrap_servers=broker.split(","), request_timeout_ms=15_000, **kafka_python_security()
    )
    try:
        tps = [TopicPartition(topic, p) for topic in topics.inputs() for p in range(partitions)]
        return {(tp.topic, tp.partition): offset for tp, offset in consumer.end_offsets(tps).items()}
    finally:
        consumer.close()

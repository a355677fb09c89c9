"""`segmenter topics`, `produce` and `simulate` against the real local broker (unique topic names)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest

from segmenter.simulation import SimConfig, generate
from streams.preflight import DEAD_LETTER_MAX_BYTES
from streams.topic_names import TopicNames

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def names(stack, unique_name: str) -> Iterator[TopicNames]:  # type: ignore[no-untyped-def]
    topics = TopicNames(
        purchases=f"{unique_name}.purchases",
        interactions=f"{unique_name}.interactions",
        tier_changes=f"{unique_name}.tier-changes",
        dead_letters=f"{unique_name}.dead-letters",
        control=f"{unique_name}.control",
        profiles=f"{unique_name}.profiles",
    )
    yield topics
    from kafka import KafkaAdminClient

    admin = KafkaAdminClient(bootstrap_servers=stack.bootstrap_servers, request_timeout_ms=10_000)
    try:
        existing = set(admin.list_topics())
        stale = [name for name in topics.all() if name in existing]
        if stale:
            admin.delete_topics(stale)
    finally:
        admin.close()


def cli(stack, names: TopicNames, *args: str, timeout: float = 120, stdin: bytes | None = None,
        broker: str | None = None) -> subprocess.CompletedProcess[str]:  # type: ignore[no-untyped-def]
    env = {**os.environ, "SEGMENTER_BROKER": broker or stack.broker}
    for field_name, name in names.items():
        env[TopicNames.env_var(field_name)] = name
    return subprocess.run(
        [sys.executable, "-m", "streams.cli", *args],
        cwd=REPO, env=env, input=stdin.decode() if stdin is not None else None, capture_output=True,
        text=True, timeout=timeout, check=False,
    )


def consume_all(stack, topics: list[str], expected: int, timeout_s: float = 30.0) -> list:  # type: ignore
    """Every record of the topics from the beginning (stops once `expected` arrived, or at the timeout)."""
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(bootstrap_servers=stack.bootstrap_servers, enable_auto_commit=False,
                             auto_offset_reset="earliest", group_id=None)
    try:
        partitions = [TopicPartition(topic, p) for topic in topics
                      for p in sorted(consumer.partitions_for_topic(topic) or ())]
        consumer.assign(partitions)
        consumer.seek_to_beginning(*partitions)
        records: list = []
        deadline = time.monotonic() + timeout_s
        while len(records) < expected and time.monotonic() < deadline:
            for batch in consumer.poll(timeout_ms=500).values():
                records.extend(batch)
        # a little longer, to catch anything unexpected beyond `expected`
        for batch in consumer.poll(timeout_ms=1000).values():
            records.extend(batch)
        return records
    finally:
        consumer.close()


def partition_counts(stack, topics: TopicNames) -> dict[str, int | None]:  # type: ignore[no-untyped-def]
    from streams.kafka_admin import partition_counts as counts

    return counts(stack.broker, topics.all())


def test_topics_create_is_idempotent_and_reports_mismatches(stack, names: TopicNames) -> None:  # type: ignore
    first = cli(stack, names, "topics", "create", "--partitions", "3")
    assert first.returncode == 0, first.stderr
    assert first.stdout.count("created") >= 6 and "6 created, 0 existed" in first.stdout
    second = cli(stack, names, "topics", "create", "--partitions", "3")
    assert second.returncode == 0, second.stderr
    assert "0 created, 6 existed" in second.stdout
    assert partition_counts(stack, names) == dict.fromkeys(names.all(), 3)

    described = cli(stack, names, "topics", "describe")
    assert described.returncode == 0, described.stderr
    assert "co-partitioned: yes (3 partitions each)" in described.stdout
    for name in names.all():
        assert name in described.stdout

    mismatch = cli(stack, names, "topics", "create", "--partitions", "4")
    assert mismatch.returncode == 1
    assert "Traceback" not in mismatch.stderr
    assert f"{names.purchases} has 3 partition(s), 4 requested" in mismatch.stderr
    assert len(mismatch.stderr.strip().splitlines()) == 1

    from kafka import KafkaAdminClient
    from kafka.admin import ConfigResource, ConfigResourceType

    admin = KafkaAdminClient(bootstrap_servers=stack.bootstrap_servers)
    try:
        configs = admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, names.dead_letters)])
    finally:
        admin.close()
    assert configs["topic"][names.dead_letters]["max.message.bytes"]["value"] == str(DEAD_LETTER_MAX_BYTES)


def test_topics_list_reports_missing_and_not_co_partitioned(stack, names: TopicNames) -> None:  # type: ignore
    from streams.kafka_admin import create_topics

    create_topics(stack.broker, {names.purchases: 2, names.interactions: 3})
    listed = cli(stack, names, "topics", "list")
    assert listed.returncode == 0, listed.stderr
    assert "missing" in listed.stdout
    assert "co-partitioned: NO" in listed.stdout


def test_produce_jsonl_and_csv(stack, names: TopicNames, tmp_path: Path) -> None:  # type: ignore
    assert cli(stack, names, "topics", "create", "--partitions", "2").returncode == 0
    lines = [
        b'{"event_id":"j1","type":"purchase","customer_id":"c-1","ts":"2025-01-01T10:00:00Z","amount":"12.50"}',
        b'{"event_id":"j2","type":"page_view","customer_id":"c-\xc3\xa9","ts":"2025-01-01T10:00:01Z"}',
        b'{ "event_id": "j3", "type": "refund", "customer_id": "c-1", "ts": "2025-01-02T10:00:00+01:00",'
        b' "amount": 2.5 }',
        b"this line is not json",
        b'{"event_id":"j5","type":"email_open","customer_id":"c-1","ts":"2025-01-03T00:00:00Z","x":"' +
        b"y" * 70_000 + b'"}',  # too large for the worker, but produced verbatim
    ]
    jsonl = tmp_path / "events.jsonl"
    jsonl.write_bytes(b"\n".join(lines[:2]) + b"\n\n" + b"\r\n".join(lines[2:]) + b"\n")
    produced = cli(stack, names, "produce", str(jsonl))
    assert produced.returncode == 0, produced.stderr
    assert "produced 5 message(s)" in produced.stdout
    assert "1 line(s) were not JSON objects" in produced.stdout
    assert "skipped 1 (1 blank line)" in produced.stdout

    csv_file = tmp_path / "orders.csv"
    csv_file.write_text(
        "order_no,cust,date,total,note\n"
        "A-1,c-9,20250103,0019.90,first\n"
        "A-2,,20250104,5.00,no customer\n"
        "A-3,c-8,20250105,100.10,third\n",
        encoding="utf-8",
    )
    produced_csv = cli(stack, names, "produce", str(csv_file), "--map", "event_id=order_no",
                       "--map", "customer_id=cust", "--map", "ts=date", "--map", "amount=total",
                       "--ts-format", "%Y%m%d", "--default-type", "purchase")
    assert produced_csv.returncode == 0, produced_csv.stderr
    assert "produced 2 message(s)" in produced_csv.stdout and "skipped 1" in produced_csv.stdout

    records = consume_all(stack, [names.purchases, names.interactions], expected=7)
    assert len(records) == 7
    got = {(r.topic, r.key, r.value) for r in records}
    assert got == {
        (names.purchases, b"c-1", lines[0]),
        (names.interactions, "c-é".encode(), lines[1]),
        (names.purchases, b"c-1", lines[2]),
        (names.purchases, None, lines[3]),
        (names.interactions, b"c-1", lines[4]),
        (names.purchases, b"c-9", b'{"event_id":"A-1","type":"purchase","customer_id":"c-9",'
                                  b'"ts":"2025-01-03T00:00:00Z","amount":"0019.90"}'),
        (names.purchases, b"c-8", b'{"event_id":"A-3","type":"purchase","customer_id":"c-8",'
                                  b'"ts":"2025-01-05T00:00:00Z","amount":"100.10"}'),
    }
    # the same customer's purchases land on one partition, in file order
    c1 = [r for r in records if r.key == b"c-1" and r.topic == names.purchases]
    assert len({r.partition for r in c1}) == 1 and [r.value for r in sorted(c1, key=lambda r: r.offset)] == [
        lines[0], lines[2]]


def test_produce_from_stdin_with_topic_override(stack, names: TopicNames) -> None:  # type: ignore
    assert cli(stack, names, "topics", "create", "--partitions", "1").returncode == 0
    data = b'{"event_id":"s1","type":"purchase","customer_id":"c-1"}\n{"event_id":"s2","customer_id":"c-2"}\n'
    produced = cli(stack, names, "produce", "-", "--topic", "interactions", stdin=data)
    assert produced.returncode == 0, produced.stderr
    records = consume_all(stack, [names.purchases, names.interactions], expected=2)
    assert sorted((r.topic, r.key) for r in records) == [
        (names.interactions, b"c-1"), (names.interactions, b"c-2")]


def test_produce_errors_are_one_line(stack, names: TopicNames, tmp_path: Path) -> None:  # type: ignore
    jsonl = tmp_path / "a.jsonl"
    jsonl.write_text('{"type":"purchase","customer_id":"c"}\n')
    missing_topic = cli(stack, names, "produce", str(jsonl))
    assert missing_topic.returncode == 1
    assert "do not exist" in missing_topic.stderr and "Traceback" not in missing_topic.stderr

    assert cli(stack, names, "topics", "create", "--partitions", "1").returncode == 0
    missing_file = cli(stack, names, "produce", str(tmp_path / "nope.jsonl"))
    assert missing_file.returncode != 0 and "does not exist" in missing_file.stderr

    csv_file = tmp_path / "x.csv"
    csv_file.write_text("a,b\n1,2\n")
    bad_mapping = cli(stack, names, "produce", str(csv_file), "--map", "customer_id=zzz")
    assert bad_mapping.returncode == 1 and "'zzz'" in bad_mapping.stderr
    assert len(bad_mapping.stderr.strip().splitlines()) == 1

    started = time.monotonic()
    down = cli(stack, names, "produce", str(jsonl), broker="127.0.0.1:1")
    assert down.returncode == 1
    assert "cannot reach the Kafka broker at 127.0.0.1:1" in down.stderr
    assert "Traceback" not in down.stderr and len(down.stderr.strip().splitlines()) == 1
    assert time.monotonic() - started < 30


def test_simulate_produces_ordered_events(stack, names: TopicNames) -> None:  # type: ignore
    assert cli(stack, names, "topics", "create", "--partitions", "3").returncode == 0
    run = cli(stack, names, "simulate", "--max-events", "2000", "--customers", "300", "--seed", "7",
              "--start", "2024-01-01", "--days", "200")
    assert run.returncode == 0, run.stderr
    assert "produced 2,000 message(s)" in run.stdout

    records = consume_all(stack, [names.purchases, names.interactions, names.profiles], expected=2000)
    assert len(records) == 2000
    expected = list(generate(SimConfig(customers=300, seed=7, start=date(2024, 1, 1), days=200)))[:2000]
    topic_of = {"purchases": names.purchases, "interactions": names.interactions, "profiles": names.profiles}
    assert sorted((r.topic, r.key, r.value) for r in records) == sorted(
        (topic_of[m.topic], m.key, m.value) for m in expected
    )
    # within every partition: production order = event-time order = event number order
    by_partition: dict[tuple[str, int], list] = {}
    for record in records:
        by_partition.setdefault((record.topic, record.partition), []).append(record)
    for batch in by_partition.values():
        batch.sort(key=lambda r: r.offset)
        events = [json.loads(r.value) for r in batch]
        assert [e["ts"] for e in events] == sorted(e["ts"] for e in events)
        numbers = [int(e["event_id"].rsplit("-", 1)[1]) for e in events]
        assert numbers == sorted(numbers)
        for record, event in zip(batch, events, strict=True):
            assert record.key == event["customer_id"].encode()


def test_simulate_follow_stops_cleanly_on_sigint(stack, names: TopicNames) -> None:  # type: ignore
    import signal

    assert cli(stack, names, "topics", "create", "--partitions", "1").returncode == 0
    env = {**os.environ, "SEGMENTER_BROKER": stack.broker}
    for field_name, name in names.items():
        env[TopicNames.env_var(field_name)] = name
    process = subprocess.Popen(
        [sys.executable, "-m", "streams.cli", "simulate", "--customers", "50", "--days", "5", "--follow",
         "--rate", "500"],
        cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        time.sleep(6)
        process.send_signal(signal.SIGINT)
        stdout, stderr = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 130, stderr
    assert "Traceback" not in stderr
    assert "stopped by signal after" in stdout
    sent = int(stdout.split("stopped by signal after ", 1)[1].split(" ", 1)[0].replace(",", ""))
    assert 500 < sent < 500 * 6 * 1.2  # rate-limited
    records = consume_all(stack, [names.purchases, names.interactions, names.profiles], expected=sent)
    assert len(records) == sent  # everything sent before the stop was flushed
    last = max(json.loads(r.value)["ts"] for r in records)
    assert last >= time.strftime("%Y-%m-%dT", time.gmtime(time.time() - 86_400))  # live: stamped now

"""Restoring stores from changelogs on the real broker: read_committed, up to the last stable offset."""

from __future__ import annotations

import time
from pathlib import Path

from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic

from state.restore import DUE_HEADER, ChangelogTopics, restore
from state.stores import MemoryStore, RocksDBStore


def _topics(broker: str, names: ChangelogTopics) -> None:
    admin = AdminClient({"bootstrap.servers": broker})
    config = {"cleanup.policy": "compact"}
    futures = admin.create_topics([NewTopic(name, 2, 1, config=config) for name in names.all()])
    for future in futures.values():
        future.result(30)


def _transactional(broker: str, name: str) -> Producer:
    producer = Producer({"bootstrap.servers": broker, "transactional.id": name})
    producer.init_transactions(30)
    return producer


def _commit(producer: Producer, records: list[tuple[str, str, bytes, int | None]]) -> None:
    producer.begin_transaction()
    for topic, key, value, due in records:
        headers = [(DUE_HEADER, str(due).encode())] if due is not None else None
        producer.produce(topic, key=key.encode(), value=value, partition=0, headers=headers)
    producer.commit_transaction(30)


def test_restore_reads_committed_records_and_stops_at_an_open_transaction(
    stack, unique_name, tmp_path
) -> None:
    names = ChangelogTopics.of(unique_name)
    _topics(stack.broker, names)
    producer = _transactional(stack.broker, f"{unique_name}-a")
    _commit(producer, [(names.customers, "c-1", b"v1", 100), (names.customers, "c-2", b"w1", None)])
    _commit(producer, [(names.customers, "c-1", b"v2", 120), (names.clocks, "0", b"clock", None)])
    # A worker killed in the middle of a batch: its transaction stays open for its timeout.
    zombie = _transactional(stack.broker, f"{unique_name}-zombie")
    zombie.begin_transaction()
    zombie.produce(names.customers, key=b"c-3", value=b"uncommitted", partition=0)
    zombie.flush(10)

    config = {"bootstrap.servers": stack.broker}
    store = MemoryStore(0)
    started = time.monotonic()
    result = restore(config, names, {0: store}, {0: None})[0]
    assert time.monotonic() - started < 30, "the restore waited for the open transaction"
    assert dict(store.items()) == {"c-1": b"v2", "c-2": b"w1"}
    assert dict(store.due()) == {"c-1": 120}
    assert store.clock() == b"clock"
    assert result.records == 4 and result.to_project == {"c-1", "c-2"}

    # Redis has projected everything before the second batch: only c-1 (written again there) is behind.
    second_batch_start = 3  # offsets 0, 1 + the commit marker at 2
    again = restore(config, names, {0: MemoryStore(0)}, {0: second_batch_start})[0]
    assert again.to_project == {"c-1"}
    zombie.abort_transaction(30)


def test_rocksdb_restore_resumes_from_its_checkpoint(stack, unique_name, tmp_path: Path) -> None:
    names = ChangelogTopics.of(unique_name)
    _topics(stack.broker, names)
    producer = _transactional(stack.broker, f"{unique_name}-a")
    _commit(producer, [(names.customers, f"c-{n}", b"x", None) for n in range(50)])
    config = {"bootstrap.servers": stack.broker}
    store = RocksDBStore(tmp_path / "p0", 0)
    first = restore(config, names, {0: store}, {0: None})[0]
    assert first.records == 50
    store.close()

    _commit(producer, [(names.customers, "c-7", b"y", 3)])
    reopened = RocksDBStore(tmp_path / "p0", 0)
    projected_all = first.customers_end + 1  # Redis is up to date with the first batch
    second = restore(config, names, {0: reopened}, {0: projected_all})[0]
    assert second.records == 1, "the checkpoint was not used"
    assert reopened.get("c-7") == b"y" and len(reopened) == 50 and dict(reopened.due()) == {"c-7": 3}
    assert second.to_project == {"c-7"}
    reopened.close()

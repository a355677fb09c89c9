"""Partition stores: what a committed batch writes is what a reader (and a restart, for RocksDB) sees."""

from __future__ import annotations

from pathlib import Path

import pytest

from state.stores import MemoryStore, PartitionStore, RocksDBStore, StoreWrite, open_store


@pytest.fixture(params=["memory", "rocksdb"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> PartitionStore:
    return open_store(request.param, tmp_path, "app", 3)


def test_a_write_is_read_back(store: PartitionStore) -> None:
    store.write(
        StoreWrite(
            customers={"c-1": b"one", "c-2": b"two"},
            due={"c-1": 20_100, "c-2": None},
            clock=b"clock",
            checkpoint={"app-customers-changelog": 7},
        )
    )
    assert store.get("c-1") == b"one" and store.get("missing") is None
    assert dict(store.items()) == {"c-1": b"one", "c-2": b"two"} and len(store) == 2
    assert dict(store.due()) == {"c-1": 20_100}
    assert store.clock() == b"clock"
    assert store.checkpoint() == {"app-customers-changelog": 7}
    store.write(
        StoreWrite(customers={"c-1": b"uno"}, due={"c-1": None}, checkpoint={"app-clocks-changelog": 2})
    )
    assert store.get("c-1") == b"uno" and dict(store.due()) == {}
    assert store.checkpoint() == {"app-customers-changelog": 7, "app-clocks-changelog": 2}
    assert store.clock() == b"clock"  # unchanged when the batch did not change it
    store.clear()
    assert len(store) == 0 and store.clock() is None and store.checkpoint() == {}
    store.close()


def test_keys_of_any_text_do_not_collide_with_metadata(store: PartitionStore) -> None:
    odd = ["m:clock", "m:checkpoint", "d", "c", "\u0000", "ünïcode"]
    store.write(StoreWrite(customers={name: name.encode() for name in odd}, due=dict.fromkeys(odd, 5)))
    assert dict(store.items()) == {name: name.encode() for name in odd}
    assert dict(store.due()) == dict.fromkeys(odd, 5)
    assert store.clock() is None and store.checkpoint() == {}
    store.close()


def test_rocksdb_keeps_state_and_checkpoint_across_a_restart(tmp_path: Path) -> None:
    first = RocksDBStore(tmp_path / "p0", 0)
    first.write(StoreWrite(customers={"c": b"state"}, due={"c": 9}, clock=b"k", checkpoint={"t": 41}))
    first.close()
    again = RocksDBStore(tmp_path / "p0", 0)
    assert again.get("c") == b"state" and dict(again.due()) == {"c": 9}
    assert again.clock() == b"k" and again.checkpoint() == {"t": 41}
    again.close()


def test_memory_store_starts_empty_every_time(tmp_path: Path) -> None:
    store = open_store("memory", tmp_path, "app", 0)
    assert isinstance(store, MemoryStore) and len(store) == 0 and store.checkpoint() == {}

"""A store keeps msgpack bytes; the engine sees CustomerState objects (fresh copies on every read)."""

from __future__ import annotations

import msgspec
import pytest

from segmenter.clock import PartitionClock
from segmenter.customer import CustomerState
from state.codec import StoreCustomers, decode_clock, decode_customer, encode_clock, encode_customer
from state.stores import MemoryStore


def test_writes_store_the_changelog_bytes_and_reads_decode_fresh_copies() -> None:
    store = MemoryStore(3)
    view = StoreCustomers(store)
    state = CustomerState(customer_id="c-1", partition=3, tiers={"value": "vip"}, next_due=20_000)
    view["c-1"] = state
    assert store.get("c-1") == msgspec.msgpack.encode(state) == encode_customer(state)
    assert list(store.due()) == [("c-1", 20_000)]
    first, second = view.get("c-1"), view["c-1"]
    assert first == second == state and first is not second
    assert first is not None
    first.tiers["value"] = "low"  # a copy: the store changes only when written
    assert decode_customer(store.get("c-1") or b"").tiers == {"value": "vip"}
    assert view.get("missing") is None and "c-1" in view and len(view) == 1
    assert dict(view.items()) == {"c-1": state} and list(view.values()) == [state]
    with pytest.raises(KeyError):
        view["missing"]


def test_clock_round_trip() -> None:
    clock = PartitionClock(partition=2, max_ts={"purchases": 5}, floor_ts=7, pending=[(9, {"t": 3})])
    assert decode_clock(encode_clock(clock)) == clock

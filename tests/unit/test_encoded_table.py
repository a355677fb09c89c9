"""The customers table stores msgpack bytes; the engine sees CustomerState objects."""

from __future__ import annotations

import msgspec

from segmenter.customer import CustomerState
from streams.encoded_table import EncodedCustomers, decode_customer, encode_customer


def test_writes_store_the_changelog_bytes_and_reads_decode_fresh_copies() -> None:
    raw: dict[str, bytes] = {}
    view = EncodedCustomers(raw)
    state = CustomerState(customer_id="c-1", partition=3, tiers={"value": "vip"}, outbox=[b'{"seq":1}'])
    view["c-1"] = state
    assert raw["c-1"] == msgspec.msgpack.encode(state) == encode_customer(state)
    first, second = view.get("c-1"), view["c-1"]
    assert first == second == state and first is not second
    first.tiers["value"] = "low"  # a copy: the table changes only when written
    assert decode_customer(raw["c-1"]).tiers == {"value": "vip"}
    assert view.get("missing") is None and "c-1" in view and len(view) == 1
    assert dict(view.items()) == {"c-1": state} and list(view.values()) == [state]

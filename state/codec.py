"""msgpack encoding of the states (the changelog's and the stores' bytes), and a store seen as a table of
CustomerState objects.

A decoded customer costs ~2.3 KB of Python objects against ~260-420 B encoded, so stores keep the encoded
bytes (the same bytes as the changelog record) and the engine decodes a customer when it reads one (a few
µs with msgspec); it works on that copy until the batch is committed.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, MutableMapping

import msgspec

from segmenter.clock import PartitionClock
from segmenter.customer import CustomerState
from state.stores import PartitionStore, StoreWrite

_encoder = msgspec.msgpack.Encoder()
_customer_decoder = msgspec.msgpack.Decoder(CustomerState)
_clock_decoder = msgspec.msgpack.Decoder(PartitionClock)


def encode_customer(state: CustomerState) -> bytes:
    return _encoder.encode(state)


def decode_customer(raw: bytes) -> CustomerState:
    return _customer_decoder.decode(raw)


def encode_clock(clock: PartitionClock) -> bytes:
    return _encoder.encode(clock)


def decode_clock(raw: bytes) -> PartitionClock:
    return _clock_decoder.decode(raw)


class StoreCustomers(MutableMapping[str, CustomerState]):
    """A partition store as a mapping of decoded customers: reads decode fresh copies, writes encode.

    The worker writes committed batches to the store itself (`PartitionStore.write`); writing through this
    mapping is for tools and tests.
    """

    def __init__(self, store: PartitionStore) -> None:
        self.store = store

    def __getitem__(self, customer_id: str) -> CustomerState:
        raw = self.store.get(customer_id)
        if raw is None:
            raise KeyError(customer_id)
        return _customer_decoder.decode(raw)

    def get(self, customer_id: str, default: object = None) -> CustomerState | None:  # type: ignore[override]
        raw = self.store.get(customer_id)
        return default if raw is None else _customer_decoder.decode(raw)  # type: ignore[return-value]

    def __setitem__(self, customer_id: str, state: CustomerState) -> None:
        self.store.write(
            StoreWrite(customers={customer_id: _encoder.encode(state)}, due={customer_id: state.next_due})
        )

    def __delitem__(self, customer_id: str) -> None:
        raise TypeError("customers are never deleted from a store")

    def __iter__(self) -> Iterator[str]:
        return (customer_id for customer_id, _ in self.store.items())

    def __len__(self) -> int:
        return len(self.store)

    def __contains__(self, customer_id: object) -> bool:
        return isinstance(customer_id, str) and self.store.get(customer_id) is not None

    def items(self) -> Iterator[tuple[str, CustomerState]]:  # type: ignore[override]
        decode = _customer_decoder.decode
        return ((customer_id, decode(raw)) for customer_id, raw in self.store.items())

    def values(self) -> Iterator[CustomerState]:  # type: ignore[override]
        decode = _customer_decoder.decode
        return (decode(raw) for _, raw in self.store.items())


class StoreClocks(MutableMapping[str, PartitionClock]):
    """The partition clocks of the owned stores, keyed `str(partition)` as the engine asks for them.

    Read-only for the worker (committed clocks reach the stores through `PartitionStore.write`).
    """

    def __init__(self, stores: Mapping[int, PartitionStore]) -> None:
        self.stores = stores

    def __getitem__(self, key: str) -> PartitionClock:
        store = self.stores.get(int(key))
        raw = None if store is None else store.clock()
        if raw is None:
            raise KeyError(key)
        return _clock_decoder.decode(raw)

    def __setitem__(self, key: str, clock: PartitionClock) -> None:
        self.stores[int(key)].write(StoreWrite(clock=_encoder.encode(clock)))

    def __delitem__(self, key: str) -> None:
        raise TypeError("clocks are never deleted from a store")

    def __iter__(self) -> Iterator[str]:
        return (str(p) for p, store in self.stores.items() if store.clock() is not None)

    def __len__(self) -> int:
        return sum(1 for _ in self)

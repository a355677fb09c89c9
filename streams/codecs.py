"""Faust codecs for table values: msgpack via msgspec, compact and fast to decode on recovery."""

from __future__ import annotations

from typing import Any

import msgspec
from faust.serializers import codecs

from segmenter.clock import PartitionClock
from segmenter.customer import CustomerState

CUSTOMER_CODEC = "segmenter_customer"
CLOCK_CODEC = "segmenter_clock"


class _StructCodec(codecs.Codec):
    struct_type: type[msgspec.Struct]

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._encoder = msgspec.msgpack.Encoder()
        self._decoder = msgspec.msgpack.Decoder(self.struct_type)

    def _dumps(self, obj: Any) -> bytes:
        return self._encoder.encode(obj)

    def _loads(self, s: bytes) -> Any:
        return self._decoder.decode(s)


class CustomerCodec(_StructCodec):
    struct_type = CustomerState


class ClockCodec(_StructCodec):
    struct_type = PartitionClock


def register() -> None:
    codecs.register(CUSTOMER_CODEC, CustomerCodec())
    codecs.register(CLOCK_CODEC, ClockCodec())

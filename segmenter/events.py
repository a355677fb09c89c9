"""Input event decoding and validation (SPEC section 2).

Every rejection carries one of the dead-letter reasons of the SPEC and a human-readable detail, so the
stream layer can route the original bytes to the dead-letter topic without knowing any rule.
Checks run in a fixed order, which decides the reason when a message has several defects:
too_large, malformed_json, schema, key_mismatch, currency.
"""

from __future__ import annotations

import json
import re
import sys
from decimal import Decimal
from enum import StrEnum
from typing import Any

import msgspec

from segmenter.money import AmountError, parse_amount_cents
from segmenter.timeutil import TimestampError, day_of_micros, parse_rfc3339_micros

MAX_MESSAGE_BYTES = 64 * 1024
MAX_ID_CHARS = 128
_INTERACTION_TYPE = re.compile(r"^[a-z][a-z0-9_]{0,31}\Z", re.ASCII)
_CURRENCY_CODE = re.compile(r"^[A-Z]{3}\Z", re.ASCII)
_ATTRIBUTE_NAME = re.compile(r"^[a-z][a-z0-9_]{0,31}\Z", re.ASCII)
MAX_ATTRIBUTES = 64
MAX_ATTRIBUTE_CHARS = 256
MAX_DOUBLE = Decimal("1.7976931348623157e308")
AttributeValue = str | int | float | bool | None
_decoder = msgspec.json.Decoder(float_hook=Decimal)


class Kind(StrEnum):
    """Which input topic a message came from; decides the schema."""

    PURCHASES = "purchases"
    INTERACTIONS = "interactions"
    PROFILES = "profiles"


class DeadLetterReason(StrEnum):
    MALFORMED_JSON = "malformed_json"
    SCHEMA = "schema"
    KEY_MISMATCH = "key_mismatch"
    TOO_LARGE = "too_large"
    CURRENCY = "currency"


class Event(msgspec.Struct, frozen=True):
    """A validated input event. `ts` keeps the producer's text: it is echoed as `at` and `*_purchase_at`."""

    event_id: str
    customer_id: str
    type: str  # purchase | refund | an interaction type
    ts: str
    ts_micros: int
    day: int
    amount_cents: int  # 0 for interactions and profiles
    category: str | None = None  # purchases and refunds (custom features, SPEC section 11)
    attributes: dict[str, AttributeValue] | None = None  # profile events only (None removes, SPEC 10)

    @property
    def is_purchase(self) -> bool:
        return self.type == "purchase"

    @property
    def is_refund(self) -> bool:
        return self.type == "refund"

    @property
    def is_profile(self) -> bool:
        return self.attributes is not None

    @property
    def is_interaction(self) -> bool:
        return self.amount_cents == 0 and self.attributes is None

    @property
    def reason(self) -> str:
        """The `reason` of tier changes this event causes."""
        if self.attributes is not None:
            return "profile"
        return self.type if self.type in ("purchase", "refund") else "interaction"


class InvalidEvent(Exception):
    """A message that must go to the dead-letter topic."""

    def __init__(self, reason: DeadLetterReason, detail: str) -> None:
        super().__init__(f"{reason.value}: {detail}")
        self.reason = reason
        self.detail = detail


def decode_event(kind: Kind, key: bytes | None, value: bytes | None, currency: str = "USD") -> Event:
    """Decode and validate one input message; raise InvalidEvent with the SPEC's reason otherwise."""
    if value is None:
        raise InvalidEvent(DeadLetterReason.MALFORMED_JSON, "message has no value (tombstone)")
    if len(value) > MAX_MESSAGE_BYTES:
        raise InvalidEvent(
            DeadLetterReason.TOO_LARGE, f"value is {len(value)} bytes, the limit is {MAX_MESSAGE_BYTES}"
        )
    try:
        document = _decode_json(value)
    except (msgspec.DecodeError, UnicodeDecodeError, RecursionError, ValueError) as exc:
        raise InvalidEvent(DeadLetterReason.MALFORMED_JSON, f"not valid UTF-8 JSON: {exc}") from None
    if not isinstance(document, dict):
        raise InvalidEvent(
            DeadLetterReason.SCHEMA, f"event must be a JSON object, not {_json_type(document)}"
        )
    event = _validate(kind, document)
    _check_key(key, event.customer_id)
    if kind is Kind.PURCHASES and "currency" in document and document["currency"] != currency:
        raise InvalidEvent(
            DeadLetterReason.CURRENCY,
            f"currency {document['currency']!r} differs from configured {currency!r}",
        )
    return event


def _decode_json(value: bytes) -> Any:
    """msgspec for speed; JSON numbers have no size limit, so integers beyond 64 bits take the slow path."""
    try:
        return _decoder.decode(value)
    except msgspec.DecodeError as exc:
        if "out of range" not in str(exc):
            raise
    if sys.get_int_max_str_digits() and sys.get_int_max_str_digits() < MAX_MESSAGE_BYTES:
        sys.set_int_max_str_digits(MAX_MESSAGE_BYTES)  # a 64 KiB message can hold a 64k-digit number
    return json.loads(value.decode("utf-8"), parse_float=Decimal, parse_constant=_reject_constant)


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _validate(kind: Kind, doc: dict[str, Any]) -> Event:
    event_id = _identifier(doc, "event_id")
    customer_id = _identifier(doc, "customer_id")
    if kind is Kind.PROFILES:
        return _validate_profile(doc, event_id, customer_id)
    event_type = doc.get("type")
    if not isinstance(event_type, str):
        raise _schema("type is required and must be a string")
    ts, ts_micros = _timestamp(doc)
    amount_cents = 0
    if kind is Kind.PURCHASES:
        if event_type not in ("purchase", "refund"):
            raise _schema(
                f"type must be 'purchase' or 'refund' on the purchases topic, not {event_type[:40]!r}"
            )
        if "amount" not in doc:
            raise _schema("amount is required")
        try:
            amount_cents = parse_amount_cents(doc["amount"])
        except AmountError as exc:
            raise _schema(str(exc)) from None
        if "currency" in doc and not (
            isinstance(doc["currency"], str) and _CURRENCY_CODE.match(doc["currency"])
        ):
            raise _schema("currency must be an ISO 4217 code such as 'USD'")
        for optional in ("order_id", "category"):
            if optional in doc and not isinstance(doc[optional], str):
                raise _schema(f"{optional} must be a string")
    else:
        if not _INTERACTION_TYPE.match(event_type):
            raise _schema(f"interaction type {event_type[:40]!r} must match [a-z][a-z0-9_]{{0,31}}")
        if "properties" in doc and not isinstance(doc["properties"], dict):
            raise _schema("properties must be an object")
    category = doc.get("category") if kind is Kind.PURCHASES else None
    return Event(
        event_id=event_id,
        customer_id=customer_id,
        type=event_type,
        ts=ts,
        ts_micros=ts_micros,
        day=day_of_micros(ts_micros),
        amount_cents=amount_cents,
        category=category,
    )


def _validate_profile(doc: dict[str, Any], event_id: str, customer_id: str) -> Event:
    """SPEC section 10: attributes is an object of 1..64 named strings, numbers, booleans or nulls."""
    ts, ts_micros = _timestamp(doc)
    attributes = doc.get("attributes")
    if not isinstance(attributes, dict):
        raise _schema("attributes is required and must be an object")
    if not 1 <= len(attributes) <= MAX_ATTRIBUTES:
        raise _schema(f"attributes must hold 1..{MAX_ATTRIBUTES} entries, not {len(attributes)}")
    values: dict[str, AttributeValue] = {}
    for name, value in attributes.items():
        if not _ATTRIBUTE_NAME.match(name):
            raise _schema(f"attribute name {name[:40]!r} must match [a-z][a-z0-9_]{{0,31}}")
        values[name] = _attribute_value(name, value)
    return Event(
        event_id=event_id,
        customer_id=customer_id,
        type="profile",
        ts=ts,
        ts_micros=ts_micros,
        day=day_of_micros(ts_micros),
        amount_cents=0,
        attributes=values,
    )


def _attribute_value(name: str, value: Any) -> AttributeValue:
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, str):
        if not 1 <= len(value) <= MAX_ATTRIBUTE_CHARS:
            raise _schema(f"attribute {name!r}: a string must have 1..{MAX_ATTRIBUTE_CHARS} characters")
        return value
    if isinstance(value, int):
        if abs(value) > MAX_DOUBLE:
            raise _schema(f"attribute {name!r}: the number is beyond the range of a double")
        return value if abs(value) < 2**53 else float(value)
    if isinstance(value, Decimal):
        if not value.is_finite() or abs(value) > MAX_DOUBLE:
            raise _schema(f"attribute {name!r}: the number is beyond the range of a double")
        return float(value)
    raise _schema(f"attribute {name!r} must be a string, number, boolean or null, not {_json_type(value)}")


def _timestamp(doc: dict[str, Any]) -> tuple[str, int]:
    ts = doc.get("ts")
    if not isinstance(ts, str):
        raise _schema("ts is required and must be an RFC 3339 string")
    try:
        return ts, parse_rfc3339_micros(ts)
    except TimestampError as exc:
        raise _schema(str(exc)) from None


def _identifier(doc: dict[str, Any], field: str) -> str:
    value = doc.get(field)
    if not isinstance(value, str) or not 1 <= len(value) <= MAX_ID_CHARS:
        raise _schema(f"{field} is required and must be a string of 1..{MAX_ID_CHARS} characters")
    return value


def _check_key(key: bytes | None, customer_id: str) -> None:
    if key is None:
        raise InvalidEvent(
            DeadLetterReason.KEY_MISMATCH, "message has no key; the key must be the customer_id"
        )
    try:
        text = key.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidEvent(DeadLetterReason.KEY_MISMATCH, "key is not UTF-8") from None
    if text != customer_id:
        raise InvalidEvent(
            DeadLetterReason.KEY_MISMATCH, f"key {text[:64]!r} differs from customer_id {customer_id[:64]!r}"
        )


def _schema(detail: str) -> InvalidEvent:
    return InvalidEvent(DeadLetterReason.SCHEMA, detail)


def _json_type(value: object) -> str:
    return {list: "an array", dict: "an object", str: "a string", bool: "a boolean", type(None): "null"}.get(
        type(value), "a number"
    )

"""Input validation of SPEC section 2: every dead-letter reason, exact money, RFC 3339 times."""

from __future__ import annotations

import orjson
import pytest

from segmenter.events import DeadLetterReason, InvalidEvent, Kind, decode_event
from segmenter.money import format_cents, parse_amount_cents
from segmenter.timeutil import day_iso, day_of_micros, parse_rfc3339_micros

GOOD = {
    "event_id": "e1",
    "type": "purchase",
    "customer_id": "c-1",
    "ts": "2026-11-24T10:15:00Z",
    "amount": 19.99,
}


def _decode(doc: object, key: bytes | None = b"c-1", kind: Kind = Kind.PURCHASES, raw: bytes | None = None):
    value = raw if raw is not None else orjson.dumps(doc)
    return decode_event(kind, key, value)


def _reason(*args, **kwargs) -> DeadLetterReason:
    with pytest.raises(InvalidEvent) as info:
        _decode(*args, **kwargs)
    return info.value.reason


def test_valid_purchase_keeps_exact_cents_and_verbatim_ts() -> None:
    event = _decode(GOOD)
    assert event.amount_cents == 1999
    assert event.ts == "2026-11-24T10:15:00Z"
    assert day_iso(event.day) == "2026-11-24"
    assert event.reason == "purchase"


@pytest.mark.parametrize(
    ("amount", "cents"),
    [
        (0.1, 10),
        ("0.07", 7),
        ("10.50", 1050),
        (5, 500),
        ("1234567.89", 123456789),
        ("10.500", 1050),
        (1e2, 10000),
    ],
)
def test_amounts_are_exact(amount: object, cents: int) -> None:
    assert _decode({**GOOD, "amount": amount}).amount_cents == cents


@pytest.mark.parametrize(
    "amount", [0, -1, "0.00", 10.005, "10.005", "abc", "1e3", True, None, [], {}, "NaN", 1e300, "-5"]
)
def test_bad_amounts_are_schema_errors(amount: object) -> None:
    assert _reason({**GOOD, "amount": amount}) is DeadLetterReason.SCHEMA


def test_missing_amount_is_schema() -> None:
    doc = dict(GOOD)
    del doc["amount"]
    assert _reason(doc) is DeadLetterReason.SCHEMA


@pytest.mark.parametrize(
    "ts",
    [
        "2026-11-24T10:15:00",
        "2026-11-24",
        "2026-13-01T00:00:00Z",
        "2026-11-24T10:15:00+25:00",
        "yesterday",
        5,
        "9999-12-31T23:59:59-01:00",  # year 10000 in UTC
        "0001-01-01T00:00:00+01:00",  # year 0 in UTC
    ],
)
def test_bad_timestamps_are_schema_errors(ts: object) -> None:
    assert _reason({**GOOD, "ts": ts}) is DeadLetterReason.SCHEMA


def test_offsets_shift_the_utc_day() -> None:
    assert day_iso(day_of_micros(parse_rfc3339_micros("2026-11-25T01:00:00+08:00"))) == "2026-11-24"
    assert day_iso(day_of_micros(parse_rfc3339_micros("2026-11-24T23:30:00-01:00"))) == "2026-11-25"
    assert parse_rfc3339_micros("1970-01-01T00:00:00.5Z") == 500_000
    assert day_of_micros(parse_rfc3339_micros("1969-12-31T23:59:59Z")) == -1


@pytest.mark.parametrize(
    "doc",
    [
        {**GOOD, "type": "page_view"},
        {**GOOD, "event_id": ""},
        {**GOOD, "event_id": "x" * 129},
        {**GOOD, "customer_id": 42},
        {**GOOD, "currency": "usd"},
        {**GOOD, "order_id": 7},
        [GOOD],
        "purchase",
    ],
)
def test_schema_violations(doc: object) -> None:
    assert _reason(doc) is DeadLetterReason.SCHEMA


def test_interaction_rules() -> None:
    interaction = {"event_id": "i1", "customer_id": "c-1", "ts": "2026-11-24T10:15:00Z", "type": "email_open"}
    assert _decode(interaction, kind=Kind.INTERACTIONS).reason == "interaction"
    assert _reason({**interaction, "type": "Email"}, kind=Kind.INTERACTIONS) is DeadLetterReason.SCHEMA
    assert _reason({**interaction, "type": "a" * 33}, kind=Kind.INTERACTIONS) is DeadLetterReason.SCHEMA
    assert _reason({**interaction, "properties": []}, kind=Kind.INTERACTIONS) is DeadLetterReason.SCHEMA
    assert _decode({**interaction, "properties": {"page": "/"}, "extra": 1}, kind=Kind.INTERACTIONS)


def test_key_mismatch_missing_and_non_utf8_keys() -> None:
    assert _reason(GOOD, key=b"c-2") is DeadLetterReason.KEY_MISMATCH
    assert _reason(GOOD, key=None) is DeadLetterReason.KEY_MISMATCH
    assert _reason(GOOD, key=b"\xff") is DeadLetterReason.KEY_MISMATCH


def test_currency_mismatch() -> None:
    assert _reason({**GOOD, "currency": "EUR"}) is DeadLetterReason.CURRENCY
    assert _decode({**GOOD, "currency": "USD"}).amount_cents == 1999


@pytest.mark.parametrize(
    "raw", [b"{not json", b"\xff\xfe{}", b'{"a": NaN}', b"[" * 30_000 + b"]" * 30_000, b""]
)
def test_malformed_json(raw: bytes) -> None:
    assert _reason(None, raw=raw) is DeadLetterReason.MALFORMED_JSON


def test_too_large_wins_over_everything() -> None:
    assert _reason(None, raw=b"x" * (64 * 1024 + 1)) is DeadLetterReason.TOO_LARGE
    padded = orjson.dumps({**GOOD, "pad": "y" * (64 * 1024 - 200)})
    assert len(padded) <= 64 * 1024
    assert _decode(None, raw=padded).amount_cents == 1999


def test_format_cents_rounding() -> None:
    from fractions import Fraction

    assert format_cents(4150) == "41.50"
    assert format_cents(-300) == "-3.00"
    assert format_cents(5) == "0.05"
    assert format_cents(Fraction(1001, 2)) == "5.01"  # 500.5 cents rounds half up
    assert format_cents(Fraction(1000, 3)) == "3.33"
    assert parse_amount_cents("0.01") == 1

"""Tests of the independent oracle (tests/oracle) on small scenarios computed by hand from SPEC.md.

Dates: 2025 is not a leap year. Day offsets from 2025-01-01: +30 = 01-31, +40 = 02-10, +80 = 03-22,
+90 = 04-01, +100 = 04-11, +120 = 05-01, +160 = 06-10, +180 = 06-30, +200 = 07-20, +365 = 2026-01-01.
"""

from __future__ import annotations

import json
import random
import time
from collections import Counter
from decimal import Decimal
from fractions import Fraction

import pytest

from tests.oracle import eventgen
from tests.oracle.model import (
    DLQ_REASONS,
    CustomFeature,
    Event,
    Rejection,
    attr_cmp,
    attr_in,
    attribute_redis_text,
    compute_custom,
    compute_features,
    day_from_str,
    default_classify,
    feature_cmp,
    format_cents,
    murmur2,
    parse_amount_cents,
    parse_ts,
    partition_for_key,
    run_messages,
    run_partition,
    split_by_partition,
    validate_message,
)

# ---------------------------------------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------------------------------------


def buy(cid, eid, ts, amount, type_="purchase", **extra):
    obj = {"event_id": eid, "type": type_, "customer_id": cid, "ts": ts, "amount": amount, **extra}
    return ("purchases", cid.encode(), json.dumps(obj).encode())


def refund(cid, eid, ts, amount):
    return buy(cid, eid, ts, amount, "refund")


def touch(cid, eid, ts, type_="page_view", **extra):
    obj = {"event_id": eid, "type": type_, "customer_id": cid, "ts": ts, **extra}
    return ("interactions", cid.encode(), json.dumps(obj).encode())


def raw(kind, key, obj):
    value = obj if isinstance(obj, bytes) else json.dumps(obj).encode()
    return (kind, key, value)


def chain(result, cid, dim):
    """[(from, to, at, reason)] of one customer and dimension."""
    return [(t["from"], t["to"], t["at"], t["reason"]) for t in result.transitions_of(cid, dim)]


def midnight(d):
    return f"{d}T00:00:00Z"


# ---------------------------------------------------------------------------------------------------------
# parsing and validation
# ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, utc_day",
    [
        ("2025-01-01T00:00:00Z", "2025-01-01"),
        ("2025-01-01T23:59:59.999999999Z", "2025-01-01"),
        ("2025-01-01T23:30:00-05:00", "2025-01-02"),
        ("2025-01-02T03:00:00+08:00", "2025-01-01"),
        ("2025-01-02T08:00:00+08:00", "2025-01-02"),
        ("2024-02-29T12:00:00+00:00", "2024-02-29"),
        ("2025-01-01T00:00:00-00:00", "2025-01-01"),
    ],
)
def test_parse_ts_utc_day(text, utc_day):
    assert parse_ts(text) // 86400 == day_from_str(utc_day)


def test_parse_ts_exact_fraction():
    assert parse_ts("1970-01-01T00:00:01.5Z") == Fraction(3, 2)
    assert parse_ts("1970-01-01T01:00:00+01:00") == 0


@pytest.mark.parametrize(
    "text",
    [
        "2025-01-01T00:00:00",  # no offset
        "2025-01-01 00:00:00Z",  # space
        "2025-01-01t00:00:00z",  # lowercase
        "2025-02-29T00:00:00Z",  # not a leap year
        "2025-01-01T24:00:00Z",
        "2025-01-01T00:60:00Z",
        "2025-01-01T00:00:60Z",
        "2025-01-01T00:00:00+24:00",
        "2025-01-01T00:00:00+0100",
        "2025-01-01T00:00:00.Z",
        "2025-1-01T00:00:00Z",
        "0000-01-01T00:00:00Z",
        "0001-01-01T00:00:00+01:00",  # UTC day in year 0
        "2025-01-01T00:00:00Z\n",
    ],
)
def test_parse_ts_rejects(text):
    with pytest.raises(ValueError):
        parse_ts(text)


@pytest.mark.parametrize(
    "amount, cents",
    [
        ("10.50", 1050),
        (Decimal("10.5"), 1050),
        (Decimal("10.500"), 1050),
        ("10.500", 1050),
        (Decimal("10"), 1000),
        ("007", 700),
        (Decimal("1E+2"), 10000),
        (Decimal("0.01"), 1),
        ("999999999999.99", 99999999999999),
    ],
)
def test_amount_valid(amount, cents):
    assert parse_amount_cents(amount) == cents


@pytest.mark.parametrize(
    "amount",
    [
        Decimal("10.005"),
        "10.005",
        "10.",
        ".5",
        "1e2",
        "-1",
        " 1",
        "1,00",
        Decimal("0"),
        Decimal("-0.00"),
        Decimal("-5"),
        Decimal("1E+12"),
        "1000000000000",
        Decimal("0.001"),
        Decimal("1E-999999"),
        True,
        None,
        10.5,  # a Python float never comes out of the oracle's JSON parsing
        "",
        "１２",  # non-ASCII digits
    ],
)
def test_amount_invalid(amount):
    assert parse_amount_cents(amount) is None


def test_format_cents():
    assert [format_cents(c) for c in (0, 5, 4150, -300, -5, 123456789)] == [
        "0.00",
        "0.05",
        "41.50",
        "-3.00",
        "-0.05",
        "1234567.89",
    ]


GOOD_P = {
    "event_id": "e1",
    "type": "purchase",
    "customer_id": "c1",
    "ts": "2025-01-01T00:00:00Z",
    "amount": 5,
}
GOOD_I = {"event_id": "i1", "type": "page_view", "customer_id": "c1", "ts": "2025-01-01T00:00:00Z"}


def _reason(kind, key, value):
    verdict = validate_message(kind, key, value if isinstance(value, bytes) else json.dumps(value).encode())
    return verdict.reason if isinstance(verdict, Rejection) else "ok"


@pytest.mark.parametrize(
    "kind, key, value, reason",
    [
        ("purchases", b"c1", GOOD_P, "ok"),
        ("purchases", b"c1", {**GOOD_P, "type": "refund", "amount": "0.01", "currency": "USD"}, "ok"),
        ("purchases", b"c1", {**GOOD_P, "order_id": "o1", "category": "x", "extra": [1, {}]}, "ok"),
        ("interactions", b"c1", GOOD_I, "ok"),
        ("interactions", b"c1", {**GOOD_I, "type": "purchase", "properties": {}}, "ok"),
        ("interactions", b"c1", {**GOOD_I, "currency": 7, "amount": "x"}, "ok"),  # not interaction fields
        ("purchases", "ü".encode(), {**GOOD_P, "customer_id": "ü"}, "ok"),
        ("purchases", b"c1", {**GOOD_P, "event_id": "x" * 128}, "ok"),
        # too_large
        ("purchases", b"c1", {**GOOD_P, "pad": "x" * 65536}, "too_large"),
        ("purchases", b"c1", b"{" * 65537, "too_large"),
        ("purchases", None, b"\xff" * 70000, "too_large"),
        # malformed_json
        ("purchases", b"c1", b"", "malformed_json"),
        ("purchases", b"c1", b"{", "malformed_json"),
        ("purchases", b"c1", b'{"event_id": "e1",}', "malformed_json"),
        ("purchases", b"c1", b"\xff\xfe{}", "malformed_json"),
        ("purchases", b"c1", b"\xef\xbb\xbf" + json.dumps(GOOD_P).encode(), "malformed_json"),  # BOM
        ("purchases", b"c1", json.dumps(GOOD_P).encode()[:-1] + b', "x": NaN}', "malformed_json"),
        ("purchases", b"c1", json.dumps(GOOD_P).encode()[:-1] + b', "x": -Infinity}', "malformed_json"),
        ("interactions", None, b"\xc3\x28", "malformed_json"),
        # schema
        ("purchases", b"c1", [GOOD_P], "schema"),
        ("purchases", b"c1", "a string", "schema"),
        ("purchases", b"c1", {k: v for k, v in GOOD_P.items() if k != "event_id"}, "schema"),
        ("purchases", b"c1", {**GOOD_P, "event_id": ""}, "schema"),
        ("purchases", b"c1", {**GOOD_P, "event_id": "x" * 129}, "schema"),
        ("purchases", b"c1", {**GOOD_P, "event_id": 1}, "schema"),
        ("purchases", b"c1", {**GOOD_P, "customer_id": ""}, "schema"),
        ("purchases", b"c1", {**GOOD_P, "type": "gift"}, "schema"),
        ("purchases", b"c1", {**GOOD_P, "ts": "2025-01-01T00:00:00"}, "schema"),
        ("purchases", b"c1", {**GOOD_P, "amount": 0}, "schema"),
        ("purchases", b"c1", {**GOOD_P, "amount": True}, "schema"),
        ("purchases", b"c1", {**GOOD_P, "amount": "1.001"}, "schema"),
        ("purchases", b"c1", {k: v for k, v in GOOD_P.items() if k != "amount"}, "schema"),
        ("purchases", b"c1", {**GOOD_P, "currency": "usd"}, "schema"),
        ("purchases", b"c1", {**GOOD_P, "currency": None}, "schema"),
        ("purchases", b"c1", {**GOOD_P, "order_id": 5}, "schema"),
        ("interactions", b"c1", {**GOOD_I, "type": "PageView"}, "schema"),
        ("interactions", b"c1", {**GOOD_I, "type": "a" * 33}, "schema"),
        ("interactions", b"c1", {**GOOD_I, "type": "9lives"}, "schema"),
        ("interactions", b"c1", {**GOOD_I, "properties": [1]}, "schema"),
        ("interactions", b"c1", {**GOOD_I, "properties": None}, "schema"),
        # key_mismatch
        ("purchases", None, GOOD_P, "key_mismatch"),
        ("purchases", b"", GOOD_P, "key_mismatch"),
        ("purchases", b"c2", GOOD_P, "key_mismatch"),
        ("interactions", b"C1", GOOD_I, "key_mismatch"),
        ("interactions", b"c1\xff", GOOD_I, "key_mismatch"),
        # currency
        ("purchases", b"c1", {**GOOD_P, "currency": "EUR"}, "currency"),
        ("purchases", b"c1", {**GOOD_P, "type": "refund", "currency": "XYZ"}, "currency"),
        # precedence: too_large > malformed_json > schema > key_mismatch > currency
        ("purchases", None, {**GOOD_P, "amount": 0, "currency": "EUR", "pad": "x" * 70000}, "too_large"),
        ("purchases", None, b"\xff", "malformed_json"),
        ("purchases", None, {**GOOD_P, "amount": -1, "currency": "EUR"}, "schema"),
        ("purchases", b"c2", {**GOOD_P, "currency": "eur"}, "schema"),
        ("purchases", b"c2", {**GOOD_P, "currency": "EUR"}, "key_mismatch"),
    ],
)
def test_validation(kind, key, value, reason):
    assert _reason(kind, key, value) == reason


def test_validation_size_boundary():
    obj = {**GOOD_P, "pad": ""}
    base = len(json.dumps(obj).encode())
    exact = json.dumps({**obj, "pad": "x" * (65536 - base)}).encode()
    assert len(exact) == 65536
    assert _reason("purchases", b"c1", exact) == "ok"
    assert _reason("purchases", b"c1", exact[:-1] + b" }") == "too_large"


def test_validation_configured_currency():
    value = json.dumps({**GOOD_P, "currency": "EUR"}).encode()
    assert isinstance(validate_message("purchases", b"c1", value, currency="EUR"), Event)
    value = json.dumps({**GOOD_P, "currency": "USD"}).encode()
    assert validate_message("purchases", b"c1", value, currency="EUR").reason == "currency"


def test_json_numbers_are_exact():
    value = b'{"event_id":"e","type":"purchase","customer_id":"c1","ts":"2025-01-01T00:00:00Z","amount":0.29}'
    ev = validate_message("purchases", b"c1", value)
    assert ev.cents == 29 and ev.role == "purchase"
    value = value.replace(b"0.29", b"1.1e1")
    assert validate_message("purchases", b"c1", value).cents == 1100


# ---------------------------------------------------------------------------------------------------------
# features and rules
# ---------------------------------------------------------------------------------------------------------


def _events(*messages):
    return [validate_message(*m) for m in messages]


def test_features_windows_and_nulls():
    evs = _events(
        buy("c", "p1", "2024-01-01T00:00:00Z", "100.00"),  # outside W at 2025-01-01 (366 days before)
        buy("c", "p2", "2024-01-03T00:00:00Z", "10.00"),  # first day of W (D - 364; 2024 is a leap year)
        refund("c", "r1", "2024-12-31T00:00:00Z", "30.00"),
        buy("c", "p3", "2025-01-01T10:00:00Z", "5.01"),
        touch("c", "i1", "2024-12-03T00:00:00Z"),  # first day of E (D - 29)
        touch("c", "i2", "2024-12-02T23:59:59Z"),  # outside E
        buy("c", "p4", "2025-01-02T00:00:00Z", "1000"),  # after D: ignored
    )
    f = compute_features(evs, day_from_str("2025-01-01"))
    assert f.lifetime_purchases == 3
    assert f.lifetime_monetary_cents == 10000 + 1000 - 3000 + 501
    assert f.frequency == 2
    assert f.monetary_cents == 0  # max(0, 15.01 - 30)
    assert f.engagement == 1
    assert (f.recency_days, f.tenure_days, f.days_since_last_interaction) == (0, 366, 29)
    assert f.avg_order_value_cents == Fraction(1501, 2)
    assert f.as_redis() == {
        "lifetime_purchases": "3",
        "lifetime_monetary": "85.01",
        "frequency": "2",
        "monetary": "0.00",
        "engagement": "1",
        "recency_days": "0",
        "tenure_days": "366",
        "days_since_last_interaction": "29",
        "avg_order_value": "7.51",  # 7.505 rounded half up
    }
    empty = compute_features([], day_from_str("2025-01-01"))
    assert empty.as_redis() == {
        "lifetime_purchases": "0",
        "lifetime_monetary": "0.00",
        "frequency": "0",
        "monetary": "0.00",
        "engagement": "0",
    }
    assert default_classify(empty.rule_inputs()) == {
        "lifecycle": "prospect",
        "value": "none",
        "engagement": "passive",
    }


def _inputs(**kw):
    base = {
        "lifetime_purchases": 1,
        "lifetime_monetary": Fraction(0),
        "frequency": 1,
        "monetary": Fraction(0),
        "engagement": 0,
        "recency_days": 0,
        "tenure_days": 0,
        "days_since_last_interaction": None,
        "avg_order_value": None,
    }
    return {**base, **kw}


@pytest.mark.parametrize(
    "kw, expected",
    [
        ({}, ("new", "low", "passive")),
        ({"recency_days": 180, "tenure_days": 400, "frequency": 9}, ("churned", "low", "passive")),
        ({"recency_days": 179, "tenure_days": 400, "frequency": 9}, ("at_risk", "low", "passive")),
        ({"recency_days": 89, "tenure_days": 29, "frequency": 9}, ("new", "low", "passive")),
        ({"recency_days": 89, "tenure_days": 180, "frequency": 6}, ("loyal", "low", "passive")),
        ({"recency_days": 89, "tenure_days": 179, "frequency": 6}, ("active", "low", "passive")),
        ({"recency_days": 0, "tenure_days": 180, "frequency": 5}, ("active", "low", "passive")),
        ({"monetary": Fraction(99999, 100), "frequency": 6}, ("new", "high", "passive")),
        ({"monetary": Fraction(1000), "frequency": 6}, ("new", "vip", "passive")),
        ({"monetary": Fraction(1000), "frequency": 5}, ("new", "high", "passive")),
        ({"monetary": Fraction(300)}, ("new", "high", "passive")),
        ({"monetary": Fraction(4999, 100)}, ("new", "low", "passive")),
        ({"monetary": Fraction(50)}, ("new", "medium", "passive")),
        ({"engagement": 2}, ("new", "low", "passive")),
        ({"engagement": 3}, ("new", "low", "engaged")),
        ({"engagement": 19}, ("new", "low", "engaged")),
        ({"engagement": 20}, ("new", "low", "highly_engaged")),
        (
            {"lifetime_purchases": 0, "recency_days": None, "tenure_days": None, "monetary": Fraction(5000)},
            ("prospect", "none", "passive"),
        ),
    ],
)
def test_default_rules(kw, expected):
    assert tuple(default_classify(_inputs(**kw)).values()) == expected
    assert list(default_classify(_inputs(**kw))) == ["lifecycle", "value", "engagement"]


def test_feature_cmp_null_is_false_and_exact():
    inputs = {"recency_days": None, "monetary": Fraction(1, 10)}
    assert not feature_cmp(inputs, "recency_days", ">=", 0)
    assert not feature_cmp(inputs, "recency_days", "<", 0)
    assert not feature_cmp(inputs, "recency_days", "!=", 0)
    assert feature_cmp(inputs, "monetary", "==", "0.1")
    assert feature_cmp(inputs, "monetary", "==", 0.1)


# ---------------------------------------------------------------------------------------------------------
# replay scenarios
# ---------------------------------------------------------------------------------------------------------


def test_single_purchase_then_silence():
    ts = "2025-01-01T10:00:00Z"
    r = run_partition([buy("c1", "e1", ts, "20.00")], "2026-01-05T00:00:00Z")
    assert r.transitions[:3] == [
        {
            "event_id": f"c1:{dim}:1",
            "customer_id": "c1",
            "dimension": dim,
            "seq": 1,
            "from": None,
            "to": to,
            "at": ts,
            "reason": "purchase",
            "cause_event_id": "e1",
        }
        for dim, to in (("lifecycle", "new"), ("value", "low"), ("engagement", "passive"))
    ]
    assert chain(r, "c1", "lifecycle") == [
        (None, "new", ts, "purchase"),
        ("new", "active", "2025-01-31T00:00:00Z", "time"),
        ("active", "at_risk", "2025-04-01T00:00:00Z", "time"),
        ("at_risk", "churned", "2025-06-30T00:00:00Z", "time"),
    ]
    ids = [t["event_id"] for t in r.transitions_of("c1", "lifecycle")]
    assert ids == [f"c1:lifecycle:{i}" for i in (1, 2, 3, 4)]
    assert all(t["cause_event_id"] is None for t in r.transitions[3:])
    assert chain(r, "c1", "value") == [(None, "low", ts, "purchase")]  # monetary 0 after a year: still low
    assert len(r.transitions) == 6
    view = r.final["c1"]
    assert view.tiers == {"lifecycle": "churned", "value": "low", "engagement": "passive"}
    assert view.as_of == "2025-06-30"  # last write; the customer was evaluated later without change
    assert view.eval_day == "2026-01-05"
    expected_hash = {
        "lifecycle": "churned",
        "value": "low",
        "as_of": "2025-06-30",
        "lifetime_purchases": "1",
        "lifetime_monetary": "20.00",
        "frequency": "1",
        "monetary": "20.00",
        "recency_days": "180",
        "tenure_days": "180",
        "avg_order_value": "20.00",
        "first_purchase_at": ts,
        "last_purchase_at": ts,
    }
    # SPEC 7 ambiguity: the dimension "engagement" and the feature "engagement" share a field name.
    assert view.redis_hash() == {**expected_hash, "engagement": "passive"}
    assert view.redis_hash(prefer="feature") == {**expected_hash, "engagement": "0"}
    assert view.features["engagement"] == "0"
    assert r.tier_counts == {"lifecycle": {"churned": 1}, "value": {"low": 1}, "engagement": {"passive": 1}}
    assert r.transition_features[3]["recency_days"] == 30


def test_burst_to_vip_and_window_expiry():
    msgs = [buy("c2", f"e{i}", f"2025-03-01T0{i}:00:00Z", "200.00") for i in range(1, 7)]
    r = run_partition(msgs, "2026-03-05T00:00:00Z")
    assert chain(r, "c2", "value") == [
        (None, "medium", "2025-03-01T01:00:00Z", "purchase"),
        ("medium", "high", "2025-03-01T02:00:00Z", "purchase"),
        ("high", "vip", "2025-03-01T06:00:00Z", "purchase"),
        ("vip", "low", "2026-03-01T00:00:00Z", "time"),
    ]
    assert [t["cause_event_id"] for t in r.transitions_of("c2", "value")] == ["e1", "e2", "e6", None]
    assert chain(r, "c2", "lifecycle") == [
        (None, "new", "2025-03-01T01:00:00Z", "purchase"),
        ("new", "active", midnight("2025-03-31"), "time"),
        ("active", "at_risk", midnight("2025-05-30"), "time"),
        ("at_risk", "churned", midnight("2025-08-28"), "time"),
    ]
    view = r.final["c2"]
    assert view.as_of == "2026-03-01"
    assert view.features["monetary"] == "0.00" and view.features["lifetime_monetary"] == "1200.00"
    assert view.features["frequency"] == "0" and "avg_order_value" not in view.features
    assert view.first_purchase_at == "2025-03-01T01:00:00Z"
    assert view.last_purchase_at == "2025-03-01T06:00:00Z"


def test_loyal():
    days = ["01-01", "02-10", "03-22", "05-01", "06-10", "07-20"]  # +0, 40, 80, 120, 160, 200
    msgs = [buy("c3", f"e{i}", f"2025-{d}T12:00:00Z", "10") for i, d in enumerate(days)]
    r = run_partition(msgs)
    assert chain(r, "c3", "lifecycle") == [
        (None, "new", "2025-01-01T12:00:00Z", "purchase"),
        ("new", "active", midnight("2025-01-31"), "time"),
        ("active", "loyal", "2025-07-20T12:00:00Z", "purchase"),  # freq 6, tenure 200
    ]
    assert chain(r, "c3", "value") == [
        (None, "low", "2025-01-01T12:00:00Z", "purchase"),
        ("low", "medium", "2025-06-10T12:00:00Z", "purchase"),  # 5 x 10 = 50
    ]
    assert r.final["c3"].features["avg_order_value"] == "10.00"


def test_engagement():
    msgs = [touch("c4", f"i{h}", f"2025-01-10T0{h}:00:00Z") for h in range(1, 4)]
    msgs += [touch("c5", f"j{i}", f"2025-01-10T12:00:{i:02d}Z", "email_open") for i in range(20)]
    r = run_partition(msgs, "2025-03-01T00:00:00Z")
    first = "2025-01-10T01:00:00Z"
    assert chain(r, "c4", "lifecycle") == [(None, "prospect", first, "interaction")]
    assert chain(r, "c4", "value") == [(None, "none", first, "interaction")]
    assert chain(r, "c4", "engagement") == [
        (None, "passive", first, "interaction"),
        ("passive", "engaged", "2025-01-10T03:00:00Z", "interaction"),
        ("engaged", "passive", midnight("2025-02-09"), "time"),  # 01-10 + 30
    ]
    assert chain(r, "c5", "engagement") == [
        (None, "passive", "2025-01-10T12:00:00Z", "interaction"),
        ("passive", "engaged", "2025-01-10T12:00:02Z", "interaction"),
        ("engaged", "highly_engaged", "2025-01-10T12:00:19Z", "interaction"),
        ("highly_engaged", "passive", midnight("2025-02-09"), "time"),
    ]
    view = r.final["c4"]
    assert view.as_of == "2025-02-09"
    assert view.features == {
        "lifetime_purchases": "0",
        "lifetime_monetary": "0.00",
        "frequency": "0",
        "monetary": "0.00",
        "engagement": "0",
        "days_since_last_interaction": "30",
    }
    assert view.first_purchase_at is None and "first_purchase_at" not in view.redis_hash()


def test_refunds():
    r = run_partition(
        [
            buy("c6", "p1", "2025-01-01T12:00:00Z", "100.00"),
            refund("c6", "r1", "2025-01-02T12:00:00Z", "60.00"),
            refund("c7", "r2", "2025-01-02T13:00:00Z", 3),
        ]
    )
    assert chain(r, "c6", "value") == [
        (None, "medium", "2025-01-01T12:00:00Z", "purchase"),
        ("medium", "low", "2025-01-02T12:00:00Z", "refund"),
    ]
    assert r.transitions_of("c6", "value")[1]["cause_event_id"] == "r1"
    assert chain(r, "c6", "lifecycle") == [(None, "new", "2025-01-01T12:00:00Z", "purchase")]
    assert r.final["c6"].features["lifetime_monetary"] == "40.00"
    assert r.final["c6"].as_of == "2025-01-02"
    assert r.final["c6"].last_purchase_at == "2025-01-01T12:00:00Z"  # a refund is not a purchase
    assert chain(r, "c7", "lifecycle") == [(None, "prospect", "2025-01-02T13:00:00Z", "refund")]
    assert r.final["c7"].features == {
        "lifetime_purchases": "0",
        "lifetime_monetary": "-3.00",
        "frequency": "0",
        "monetary": "0.00",
        "engagement": "0",
    }


def test_duplicates_and_horizon():
    # SPEC 2: the horizon counts from the newest applied ts of the customer ON THE SAME INPUT TOPIC.
    e1 = buy("c8", "e1", "2025-01-01T00:00:00Z", "20.00")
    msgs = [
        e1,
        touch("c8", "i1", "2025-01-05T00:00:00Z"),
        e1,  # duplicate
        touch("c8", "i2", "2025-01-08T00:00:01Z"),
        e1,  # 7 days + 1 s older than the newest interaction, but the newest PURCHASE is e1: duplicate
        touch("c8", "e1", "2025-01-08T00:00:00Z"),  # same event_id on the other topic: duplicate
        buy("c8", "p2", "2025-01-08T00:00:00Z", "5.00"),
        e1,  # exactly 7 days older than the newest purchase: still a duplicate
        touch("c8", "i3", "2025-01-08T00:00:02Z"),
        buy("c8", "p3", "2025-01-08T00:00:01Z", "5.00"),
        e1,  # now beyond the horizon of the purchases topic: applied again, evaluated at 2025-01-08
    ]
    r = run_partition(msgs)
    assert [o for o, _ in r.message_outcomes] == [
        "applied",
        "applied",
        "duplicate",
        "applied",
        "duplicate",
        "duplicate",
        "applied",
        "duplicate",
        "applied",
        "applied",
        "applied",
    ]
    assert r.outcomes == Counter(
        {
            ("purchases", "applied"): 4,
            ("purchases", "duplicate"): 3,
            ("interactions", "applied"): 3,
            ("interactions", "duplicate"): 1,
        }
    )
    assert r.final["c8"].features["lifetime_purchases"] == "4"
    assert r.final["c8"].as_of == "2025-01-08"
    assert chain(r, "c8", "engagement") == [
        (None, "passive", "2025-01-01T00:00:00Z", "purchase"),
        ("passive", "engaged", "2025-01-08T00:00:02Z", "interaction"),
    ]
    assert chain(r, "c8", "value") == [
        (None, "low", "2025-01-01T00:00:00Z", "purchase"),  # 20 + 5 + 5 < 50
        ("low", "medium", "2025-01-01T00:00:00Z", "purchase"),  # e1 applied again: 50
    ]


def test_dedupe_horizon_option():
    e1 = buy("c8", "e1", "2025-01-01T00:00:00Z", "20.00")
    msgs = [e1, buy("c8", "e2", "2025-01-02T00:00:01Z", "1.00"), e1]
    assert run_partition(msgs).message_outcomes[2][0] == "duplicate"
    assert run_partition(msgs, dedupe_horizon_days=1).message_outcomes[2][0] == "applied"
    # a newer event on the OTHER topic does not move the horizon
    msgs = [e1, touch("c8", "i1", "2025-01-02T00:00:01Z"), e1]
    assert run_partition(msgs, dedupe_horizon_days=1).message_outcomes[2][0] == "duplicate"


def test_late_event_is_evaluated_at_current_day():
    late_ts = "2025-04-06T08:00:00Z"  # day +95, before D_c = +100
    r = run_partition(
        [
            buy("a", "a1", "2025-01-01T10:00:00Z", "20.00"),
            buy("b", "b1", "2025-04-11T10:00:00Z", "20.00"),  # watermark (purchases only) -> +100
            buy("a", "a2", late_ts, "40.00"),
        ]
    )
    assert chain(r, "a", "lifecycle") == [
        (None, "new", "2025-01-01T10:00:00Z", "purchase"),
        ("new", "active", midnight("2025-01-31"), "time"),
        ("active", "at_risk", midnight("2025-04-01"), "time"),
        ("at_risk", "active", late_ts, "purchase"),  # recency 5 at 04-11
    ]
    assert chain(r, "a", "value")[-1] == ("low", "medium", late_ts, "purchase")
    view = r.final["a"]
    assert view.as_of == "2025-04-11"
    assert view.features["recency_days"] == "5" and view.features["tenure_days"] == "100"
    assert view.last_purchase_at == late_ts
    # b is evaluated at its own event only
    assert [t["reason"] for t in r.transitions_of("b")] == ["purchase"] * 3
    # the time-driven transitions of a come right after b's event, a's customer record first
    assert [t["customer_id"] for t in r.transitions[3:8]] == ["b", "b", "b", "a", "a"]


def test_watermark_is_min_over_topics_and_clock():
    r = run_partition(
        [
            buy("a", "a1", "2025-01-01T10:00:00Z", "20.00"),
            touch("b", "b1", "2025-01-01T11:00:00Z"),
            buy("b", "b2", "2025-06-01T00:00:00Z", "20.00"),  # interactions still at 01-01
        ]
    )
    assert len(r.transitions_of("a")) == 3
    assert r.final["a"].eval_day == "2025-01-01"
    assert chain(r, "b", "lifecycle") == [
        (None, "prospect", "2025-01-01T11:00:00Z", "interaction"),
        ("prospect", "new", "2025-06-01T00:00:00Z", "purchase"),
    ]
    assert r.watermarks[0] == parse_ts("2025-01-01T11:00:00Z")

    r2 = run_partition(
        [
            buy("a", "a1", "2025-01-01T10:00:00Z", "20.00"),
            touch("b", "b1", "2025-01-01T11:00:00Z"),
            buy("b", "b2", "2025-06-01T00:00:00Z", "20.00"),
        ],
        "2025-04-01T00:00:00Z",
    )
    assert chain(r2, "a", "lifecycle")[1:] == [
        ("new", "active", midnight("2025-01-31"), "time"),
        ("active", "at_risk", midnight("2025-04-01"), "time"),
    ]
    assert r2.final["a"].eval_day == "2025-04-01"
    assert r2.final["b"].eval_day == "2025-06-01"


def test_clock_entries_in_the_message_list():
    r = run_partition(
        [
            buy("a", "a1", "2025-01-01T10:00:00Z", "20.00"),
            ("clock", None, b"2025-02-01T00:00:00Z"),
            buy("a", "a2", "2025-01-15T10:00:00Z", "20.00"),  # late
        ]
    )
    assert chain(r, "a", "lifecycle")[1:] == [("new", "active", midnight("2025-01-31"), "time")]
    assert r.final["a"].features["tenure_days"] == "31" and r.final["a"].as_of == "2025-02-01"


def test_dead_letters_do_not_move_watermark_duplicates_do():
    msgs = [
        buy("a", "a1", "2025-01-01T10:00:00Z", "20.00"),
        touch("a", "i1", "2025-01-01T10:00:00Z"),
        buy("a", "x1", "2025-12-01T00:00:00Z", "20.00", currency="EUR"),
        raw("interactions", b"zz", {**GOOD_I, "customer_id": "a", "ts": "2025-12-01T00:00:00Z"}),
    ]
    r = run_partition(msgs)
    assert [(o, why) for o, why in r.message_outcomes] == [
        ("applied", None),
        ("applied", None),
        ("dead_letter", "currency"),
        ("dead_letter", "key_mismatch"),
    ]
    assert r.final["a"].eval_day == "2025-01-01"
    # duplicates (same event_id, later ts, within the horizon) move the watermark
    msgs += [
        buy("a", "a1", "2025-03-01T00:00:00Z", "20.00"),
        touch("a", "i1", "2025-03-01T00:00:00Z"),
    ]
    r = run_partition(msgs)
    assert [o for o, _ in r.message_outcomes[4:]] == ["duplicate", "duplicate"]
    assert r.final["a"].eval_day == "2025-03-01"
    assert chain(r, "a", "lifecycle")[-1] == ("new", "active", midnight("2025-01-31"), "time")
    assert r.final["a"].features["lifetime_purchases"] == "1"


def test_dead_letter_bookkeeping():
    msgs = [
        raw("purchases", b"c1", b"{oops"),
        raw("purchases", b"c1", b"\xff"),
        raw("interactions", b"c1", b"[]"),
        raw("purchases", b"c1", {**GOOD_P, "pad": "x" * 70000}),
        raw("purchases", None, GOOD_P),
        raw("purchases", b"c1", {**GOOD_P, "currency": "EUR"}),
        raw("purchases", b"c1", GOOD_P),
    ]
    r = run_partition(msgs)
    assert r.dead_letter_reasons == Counter(
        {"malformed_json": 2, "schema": 1, "too_large": 1, "key_mismatch": 1, "currency": 1}
    )
    assert [d[0] for d in r.dead_letters] == [
        "malformed_json",
        "malformed_json",
        "schema",
        "too_large",
        "key_mismatch",
        "currency",
    ]
    assert r.dead_letters[4] == ("key_mismatch", None, json.dumps(GOOD_P).encode())
    assert r.dead_letter_sources == [
        ("purchases", 0, 0),
        ("purchases", 0, 1),
        ("interactions", 0, 0),
        ("purchases", 0, 2),
        ("purchases", 0, 3),
        ("purchases", 0, 4),
    ]
    assert r.outcomes == Counter(
        {("purchases", "dead_letter"): 5, ("interactions", "dead_letter"): 1, ("purchases", "applied"): 1}
    )
    assert list(r.final) == ["c1"]


def test_offset_timestamps_use_the_utc_day():
    ts = "2025-01-01T23:30:00-05:00"  # 2025-01-02 04:30 UTC
    r = run_partition([buy("a", "a1", ts, "20.00")], "2025-02-01T00:00:00Z")
    assert chain(r, "a", "lifecycle") == [
        (None, "new", ts, "purchase"),
        ("new", "active", midnight("2025-02-01"), "time"),
    ]


def test_first_and_last_purchase_by_instant():
    r = run_partition(
        [
            buy("a", "p1", "2025-01-05T00:00:00+01:00", "1"),  # 2025-01-04T23:00Z
            buy("a", "p2", "2025-01-04T23:30:00Z", "1"),
            buy("a", "p3", "2025-01-04T23:00:00Z", "1"),  # same instant as p1: p1 stays first
            buy("a", "p4", "2025-01-04T23:30:00.000Z", "1"),  # same instant as p2: p2 stays last
            refund("a", "r1", "2025-01-06T00:00:00Z", "1"),
        ]
    )
    assert r.final["a"].first_purchase_at == "2025-01-05T00:00:00+01:00"
    assert r.final["a"].last_purchase_at == "2025-01-04T23:30:00Z"


def test_no_evaluation_before_first_applied_event():
    r = run_partition(
        [
            buy("a", "a1", "2025-01-01T00:00:00Z", "20.00"),
            touch("a", "i1", "2025-01-01T00:00:00Z"),
            touch("a", "i2", "2025-05-01T00:00:00Z"),
            buy("z", "z1", "2025-05-01T00:00:00Z", "20.00"),
        ],
        "2025-06-01T00:00:00Z",
    )
    # z is first evaluated at its event, then advanced from 05-01; no transitions before that.
    assert chain(r, "z", "lifecycle") == [
        (None, "new", "2025-05-01T00:00:00Z", "purchase"),
        ("new", "active", midnight("2025-05-31"), "time"),
    ]


def test_custom_classify_hook():
    def classify(f):
        return {"spend": "big" if feature_cmp(f, "lifetime_monetary", ">", "12.5") else "small"}

    r = run_partition(
        [buy("a", "a1", "2025-01-01T00:00:00Z", "12.50"), buy("a", "a2", "2025-01-02T00:00:00Z", "0.01")],
        classify=classify,
    )
    assert [(t["event_id"], t["from"], t["to"]) for t in r.transitions] == [
        ("a:spend:1", None, "small"),
        ("a:spend:2", "small", "big"),
    ]
    assert r.tier_counts == {"spend": {"big": 1}}


def test_windows_options():
    r = run_partition([buy("a", "a1", "2025-01-01T00:00:00Z", "60")], "2025-01-11T00:00:00Z", value_days=10)
    assert chain(r, "a", "value") == [
        (None, "medium", "2025-01-01T00:00:00Z", "purchase"),
        ("medium", "low", midnight("2025-01-11"), "time"),
    ]


# ---------------------------------------------------------------------------------------------------------
# partitioning
# ---------------------------------------------------------------------------------------------------------


def _signed(x):
    return x - (1 << 32) if x & 0x80000000 else x


def test_murmur2_java_vectors():
    # org.apache.kafka.common.utils.UtilsTest#testMurmur2
    vectors = {
        b"21": -973932308,
        b"foobar": -790332482,
        b"a-little-bit-long-string": -985981536,
        b"a-little-bit-longer-string": -1486304829,
        b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8": -58897971,
        b"abc": 479470107,
    }
    for data, expected in vectors.items():
        assert _signed(murmur2(data)) == expected, data


def test_partition_for_key_matches_kafka_python():
    default = pytest.importorskip("kafka.partitioner.default")
    rng = random.Random(7)
    keys = [b"", b"c-00001", "kundé".encode()] + [rng.randbytes(rng.randrange(0, 40)) for _ in range(300)]
    for key in keys:
        assert murmur2(key) == default.murmur2(key) & 0xFFFFFFFF
        for n in (1, 3, 4, 12):
            assert partition_for_key(key, n) == (default.murmur2(key) & 0x7FFFFFFF) % n


def test_multi_partition_merge():
    msgs = eventgen.generate(3, n_customers=12, days=120, duplicates=5)
    one = run_messages(msgs, 1, "2025-06-01T00:00:00Z")
    parts = split_by_partition(msgs, 3)
    assert sum(len(v) for v in parts.values()) == len(msgs)
    for p, part in parts.items():
        assert all(key is None or partition_for_key(key, 3) == p for _, key, _ in part)
    three = run_messages(msgs, 3, "2025-06-01T00:00:00Z")
    assert three.outcomes == one.outcomes
    assert three.dead_letter_reasons == one.dead_letter_reasons
    assert set(three.final) == set(one.final)
    assert sum(sum(c.values()) for c in three.tier_counts.values()) == 3 * len(three.final)


# ---------------------------------------------------------------------------------------------------------
# generator + whole-run invariants
# ---------------------------------------------------------------------------------------------------------


def test_eventgen_deterministic_and_fast():
    t0 = time.perf_counter()
    msgs = eventgen.generate(11, n_customers=150, days=730)
    elapsed = time.perf_counter() - t0
    assert len(msgs) >= 10_000 and elapsed < 2.0, (len(msgs), elapsed)
    assert msgs == eventgen.generate(11, n_customers=150, days=730)
    assert msgs != eventgen.generate(12, n_customers=120, days=730)


def test_eventgen_content_matches_oracle():
    tagged = eventgen.generate_with_expectations(5, n_customers=60, days=500, late_events=5)
    msgs = [m for m, _ in tagged]
    r = run_partition(msgs)
    got = [o if o != "dead_letter" else f"dead_letter:{why}" for o, why in r.message_outcomes]
    assert got == [e for _, e in tagged]
    for reason in DLQ_REASONS:
        assert r.dead_letter_reasons[reason] >= 3, reason
    assert any(key is None for _, key, _ in r.dead_letters)
    assert r.outcomes[("purchases", "duplicate")] + r.outcomes[("interactions", "duplicate")] >= 5
    # event-time order (except the late ones): the first ts of each valid message is non-decreasing mostly
    kinds = Counter(kind for kind, _, _ in msgs)
    assert kinds["purchases"] > 300 and kinds["interactions"] > 300
    events = [ev for ev in (validate_message(*m) for m in msgs) if isinstance(ev, Event)]
    by_customer: dict[str, list] = {}
    for ev in events:
        by_customer.setdefault(ev.customer_id, []).append(ev)
    gaps = [
        max((b.day - a.day for a, b in zip(evs, evs[1:], strict=False)), default=0)
        for evs in (sorted(v, key=lambda e: e.instant) for v in by_customer.values())
    ]
    assert any(100 <= g <= 260 for g in gaps)  # a quiet period
    assert any(all(e.role == "interaction" for e in v) for v in by_customer.values())
    bursts = Counter((e.customer_id, e.day) for e in events if e.role == "purchase")
    assert max(bursts.values()) >= 3
    assert any(e.ts.endswith(("+08:00", "+05:30", "-05:00", "-08:00")) for e in events)
    assert any(e.role == "refund" for e in events)
    assert any(not c.isascii() for c in by_customer)


def test_invariants_on_generated_run():
    msgs = eventgen.generate(21, n_customers=40, days=400)
    r = run_messages(msgs, 2, "2026-03-01T00:00:00Z")
    per: dict[tuple[str, str], list[dict]] = {}
    for t in r.transitions:
        per.setdefault((t["customer_id"], t["dimension"]), []).append(t)
        assert t["event_id"] == f"{t['customer_id']}:{t['dimension']}:{t['seq']}"
        if t["reason"] == "time":
            assert t["at"].endswith("T00:00:00Z") and t["cause_event_id"] is None
        else:
            assert t["reason"] in ("purchase", "refund", "interaction") and t["cause_event_id"]
    for (cid, dim), ts in per.items():
        assert [t["seq"] for t in ts] == list(range(1, len(ts) + 1))
        assert ts[0]["from"] is None
        assert all(a["to"] == b["from"] != b["to"] for a, b in zip(ts, ts[1:], strict=False))
        assert r.final[cid].tiers[dim] == ts[-1]["to"]
        assert r.final[cid].seq[dim] == len(ts)
    for dim in ("lifecycle", "value", "engagement"):
        assert sum(r.tier_counts[dim].values()) == len(r.final)
    for view in r.final.values():
        assert view.as_of <= view.eval_day == "2026-03-01"


# ---------------------------------------------------------------------------------------------------------
# v2: profiles and attributes (SPEC 10), custom features (SPEC 11)
# ---------------------------------------------------------------------------------------------------------


def prof(cid, eid, ts, attributes, **extra):
    obj = {"event_id": eid, "customer_id": cid, "ts": ts, "attributes": attributes, **extra}
    return ("profiles", cid.encode(), json.dumps(obj).encode())


def attr_classify(f):
    """Two dimensions: one on an attribute, one on a custom feature and an attribute."""
    if attr_in(f, "region", ["EU", "UK"]):
        region = "emea"
    elif attr_in(f, "region", ["EU", "UK"], negate=True):
        region = "elsewhere"
    else:
        region = "unknown"
    if feature_cmp(f, "toys_30d", ">=", 50) and attr_cmp(f, "vip", "==", True):
        toys = "toy_vip"
    elif feature_cmp(f, "toys_30d", ">=", 50):
        toys = "toy_buyer"
    else:
        toys = "none"
    return {"region": region, "toys": toys}


TOYS = (CustomFeature("toys_30d", "sum_purchases", 30, ("toys",)),)


def test_profile_validation_valid_and_currency_ignored():
    cid = "c1"
    ev = validate_message(
        *prof(cid, "p1", "2025-01-01T00:00:00Z", {"region": "EU", "x": None}, currency="EUR")
    )
    assert isinstance(ev, Event) and ev.role == "profile" and ev.transition_reason == "profile"
    assert ev.attributes == (("region", "EU"), ("x", None))
    many = {f"a{i}": i for i in range(64)}
    assert isinstance(validate_message(*prof(cid, "p1", "2025-01-01T00:00:00Z", many)), Event)
    edge = {"a" * 32: "y" * 256, "n": Decimal("1.7976931348623157E+308"), "b": False, "z9_": -0.5}
    value = json.dumps(
        {
            "event_id": "p",
            "customer_id": cid,
            "ts": "2025-01-01T00:00:00Z",
            "attributes": {k: (float(v) if isinstance(v, Decimal) else v) for k, v in edge.items()},
        }
    )
    assert isinstance(validate_message("profiles", b"c1", value.encode()), Event)


@pytest.mark.parametrize(
    "attributes",
    [
        {},
        None,
        [["region", "EU"]],
        "region=EU",
        {f"a{i}": i for i in range(65)},
        {"Region": "EU"},
        {"1st": 1},
        {"a" * 33: 1},
        {"a-b": 1},
        {"region": ""},
        {"region": "x" * 257},
        {"region": ["EU"]},
        {"region": {"code": "EU"}},
    ],
)
def test_profile_attribute_schema_violations(attributes):
    verdict = validate_message(*prof("c1", "p1", "2025-01-01T00:00:00Z", attributes))
    assert isinstance(verdict, Rejection) and verdict.reason == "schema", verdict


def test_profile_dead_letter_reasons_and_precedence():
    base = {"event_id": "p1", "customer_id": "c1", "ts": "2025-01-01T00:00:00Z", "attributes": {"r": "EU"}}
    no_attributes = {k: v for k, v in base.items() if k != "attributes"}
    cases = [
        (b"c1", json.dumps({**base, "attributes": {"r": "x" * 70000}}).encode(), "too_large"),
        (b"c1", b"{" + b" " * 65600, "too_large"),
        (b"c1", json.dumps(base).encode()[:-2], "malformed_json"),
        (b"c1", json.dumps(base).encode().replace(b'"EU"', b"NaN"), "malformed_json"),
        (b"c1", json.dumps(base).encode().replace(b'"EU"', b"1e400"), "schema"),  # beyond the double range
        (b"other", json.dumps(no_attributes).encode(), "schema"),  # schema beats key_mismatch
        (None, json.dumps(base).encode(), "key_mismatch"),
        (b"c1\xff", json.dumps(base).encode(), "key_mismatch"),
        (b"c1", json.dumps({**base, "ts": "2025-01-01T00:00:00"}).encode(), "schema"),
    ]
    for key, value, reason in cases:
        verdict = validate_message("profiles", key, value)
        assert isinstance(verdict, Rejection) and verdict.reason == reason, (value[:60], verdict)


def test_last_writer_by_event_time_and_removals():
    msgs = [
        prof("c1", "p1", "2025-03-10T00:00:00Z", {"region": "EU", "tier": "gold"}),
        prof("c1", "p2", "2025-03-05T00:00:00Z", {"region": None, "tier": "silver", "age": 40}),  # older
        prof("c1", "p3", "2025-03-20T00:00:00Z", {"tier": None}),  # removal
        prof("c1", "p4", "2025-03-15T00:00:00Z", {"tier": "bronze"}),  # older than the removal
        prof("c1", "p5", "2025-03-01T10:00:00Z", {"city": "Paris"}),
        prof("c1", "p6", "2025-03-01T18:00:00+08:00", {"city": "Lyon"}),  # same instant, later offset
        prof("c2", "q1", "2025-03-01T18:00:00+08:00", {"city": "Lyon"}),
        prof("c2", "q2", "2025-03-01T10:00:00Z", {"city": "Paris"}),
    ]
    r = run_partition(msgs, classify=attr_classify, custom_features=TOYS)
    view = r.final["c1"]
    assert view.attributes == {"age": "40", "city": "Lyon", "region": "EU"}
    assert r.final["c2"].attributes == {"city": "Paris"}
    assert view.redis_hash()["attr.region"] == "EU" and "attr.tier" not in view.redis_hash()
    assert view.features["lifetime_purchases"] == "0" and view.tiers == {"region": "emea", "toys": "none"}
    assert [t["reason"] for t in r.transitions_of("c1")] == ["profile", "profile"]
    assert r.transition_attributes[0] == {"region": "EU", "tier": "gold"}


def test_attribute_redis_text():
    assert attribute_redis_text("Zoë") == "Zoë"
    assert attribute_redis_text(True) == "true" and attribute_redis_text(False) == "false"
    assert attribute_redis_text(Decimal("1985")) == "1985"
    assert attribute_redis_text(Decimal("1985.0")) == "1985.0"
    assert attribute_redis_text(Decimal("4.50")) == "4.5"
    assert attribute_redis_text(Decimal("-0.5")) == "-0.5"


def test_attribute_comparisons_follow_spec_10():
    f = {
        "attr.s": "EU",
        "attr.n": Decimal("1985"),
        "attr.f": Decimal("1985.0"),
        "attr.b": True,
        "attr.one": Decimal("1"),
    }
    for op in ("==", "!=", "<", "<=", ">", ">="):
        assert not attr_cmp(f, "missing", op, 1)
    assert not attr_in(f, "missing", ["EU"]) and not attr_in(f, "missing", ["EU"], negate=True)
    assert attr_cmp(f, "s", "==", "EU") and not attr_cmp(f, "s", "==", "eu") and attr_cmp(f, "s", "!=", "eu")
    assert attr_cmp(f, "n", "==", 1985.0) and attr_cmp(f, "f", "==", 1985) and attr_cmp(f, "n", "<=", 1985)
    assert not attr_cmp(f, "s", "<", 5) and not attr_cmp(f, "s", ">=", "A") and not attr_cmp(f, "b", ">", 0)
    assert (
        not attr_cmp(f, "b", "==", 1) and not attr_cmp(f, "one", "==", True) and attr_cmp(f, "b", "==", True)
    )
    assert attr_cmp(f, "one", "!=", True) and attr_cmp(f, "n", "!=", "1985")
    assert attr_in(f, "s", ["UK", "EU"]) and attr_in(f, "s", ["UK"], negate=True)
    assert not attr_in(f, "s", ["UK", "EU"], negate=True) and attr_in(f, "n", ["x", 1985])


def test_custom_features_literally():
    msgs = [
        buy("c1", "a", "2025-01-01T10:00:00Z", "100.00", category="toys"),
        buy("c1", "b", "2025-01-02T10:00:00Z", "30.00", category="books"),
        buy("c1", "c", "2025-01-03T10:00:00Z", "20.00"),
        refund("c1", "d", "2025-01-04T10:00:00Z", "40.00"),  # no category: not a toys refund
        buy("c1", "e", "2025-01-05T10:00:00Z", "25.00", "refund", category="toys"),
        buy("c1", "f", "2025-01-06T10:00:00Z", "5.00", "refund", category="books"),
        touch("c1", "g", "2025-01-06T11:00:00Z", "support_ticket"),
        touch("c1", "h", "2025-01-06T12:00:00Z", "email_click"),
        touch("c1", "i", "2025-01-07T12:00:00Z", "complaint"),
    ]
    events = [validate_message(*m) for m in msgs]
    assert events[0].category == "toys" and events[3].category is None
    day = day_from_str("2025-01-07")

    def value(kind, days, only=None, at=day):
        return compute_custom(events, at, CustomFeature("x", kind, days, only))

    assert value("sum_purchases", 30, ("toys",)) == 7500
    assert value("sum_purchases", 30, ("books",)) == 2500
    assert value("sum_purchases", 30) == 15000 - 7000
    assert value("sum_purchases", 3, ("toys",)) == 0  # the refund alone: max(0, -25.00)
    assert value("count_purchases", 30) == 3 and value("count_purchases", 30, ("toys", "books")) == 2
    assert value("count_purchases", 6) == 2  # [01-02, 01-07]
    assert value("count_interactions", 30) == 3
    assert value("count_interactions", 30, ("support_ticket", "complaint")) == 2
    assert value("distinct_categories", 30) == 2 and value("distinct_categories", 6) == 1
    assert value("distinct_categories", 5) == 0  # [01-03, 01-07]: only a purchase without a category
    assert value("count_purchases", 30, at=day_from_str("2025-01-01")) == 1  # events after D not seen
    with pytest.raises(ValueError):
        CustomFeature("x", "distinct_categories", 30, ("toys",))


def test_custom_feature_window_expiry_is_time_driven_and_in_redis():
    msgs = [
        prof("c1", "p1", "2024-12-01T00:00:00Z", {"vip": True}),
        buy("c1", "a", "2025-01-01T10:00:00Z", "60.00", category="toys"),
    ]
    r = run_partition(msgs, "2025-03-01T00:00:00Z", classify=attr_classify, custom_features=TOYS)
    assert chain(r, "c1", "toys") == [
        (None, "none", "2024-12-01T00:00:00Z", "profile"),
        ("none", "toy_vip", "2025-01-01T10:00:00Z", "purchase"),
        ("toy_vip", "none", "2025-01-31T00:00:00Z", "time"),  # the purchase leaves [D - 29, D]
    ]
    toys = [f for t, f in zip(r.transitions, r.transition_features, strict=True) if t["dimension"] == "toys"]
    assert [f["toys_30d"] for f in toys] == ["0.00", "60.00", "0.00"]
    record = r.final["c1"].redis_hash()
    assert record["toys_30d"] == "0.00" and record["attr.vip"] == "true" and record["as_of"] == "2025-01-31"
    assert r.as_of_range("c1") == (day_from_str("2025-01-31"), day_from_str("2025-03-01"))
    assert r.record_at("c1", "2025-02-10") == {
        **record,
        "as_of": "2025-02-10",
        "recency_days": "40",
        "tenure_days": "40",
        "frequency": "1",
        "monetary": "60.00",
    }


def test_profiles_do_not_move_the_watermark_but_move_d_c():
    msgs = [
        buy("a", "a1", "2025-01-01T10:00:00Z", "60.00"),
        prof("b", "b1", "2025-06-01T10:00:00Z", {"region": "EU"}),  # does not advance "a"
        prof("a", "a2", "2025-04-11T10:00:00Z", {"region": "US"}),  # moves a's D_c to +100
    ]
    r = run_partition(msgs)
    assert r.watermarks[0] == parse_ts("2025-01-01T10:00:00Z")
    assert chain(r, "a", "lifecycle") == [
        (None, "new", "2025-01-01T10:00:00Z", "purchase"),
        ("new", "active", midnight("2025-01-31"), "time"),
        ("active", "at_risk", midnight("2025-04-01"), "time"),
    ]
    assert r.final["a"].as_of == "2025-04-11" and r.final["a"].attributes == {"region": "US"}
    assert r.final["b"].tiers["lifecycle"] == "prospect"
    # a partition with profiles only has no watermark
    only = run_partition([prof("b", "b1", "2025-06-01T10:00:00Z", {"region": "EU"})])
    assert only.watermarks[0] is None and only.final["b"].as_of == "2025-06-01"


def test_profile_duplicates_use_the_profiles_topic_horizon():
    p1 = prof("c1", "p1", "2025-01-01T00:00:00Z", {"region": "EU"})
    msgs = [
        p1,
        buy("c1", "x", "2025-02-01T00:00:00Z", "5.00"),  # another topic: not the profiles horizon
        p1,
        prof("c1", "p2", "2025-01-08T00:00:01Z", {"region": "US"}),
        p1,  # beyond the horizon of the profiles topic: applied again, but p2 is newer
    ]
    r = run_partition(msgs)
    assert [o for o, _ in r.message_outcomes] == ["applied", "applied", "duplicate", "applied", "applied"]
    assert r.final["c1"].attributes == {"region": "US"}


def test_eventgen_v2_history():
    tagged = eventgen.generate_with_expectations(
        3, n_customers=40, days=300, categories=True, profiles=True, bad_profiles_per_reason=1
    )
    messages = [m for m, _ in tagged]
    assert messages == eventgen.generate(
        3, n_customers=40, days=300, categories=True, profiles=True, bad_profiles_per_reason=1
    )
    r = run_messages(messages, n_partitions=1)  # message_outcomes in delivery order
    profile_dead = Counter(
        reason
        for (kind, _p, _i), (reason, _k, _v) in zip(r.dead_letter_sources, r.dead_letters, strict=True)
        if kind == "profiles"
    )
    assert set(profile_dead) == {"too_large", "malformed_json", "schema", "key_mismatch"}
    assert r.outcomes[("profiles", "applied")] > 40
    for (message, expect), (outcome, reason) in zip(tagged, r.message_outcomes, strict=True):
        if expect.startswith("dead_letter"):
            assert (outcome, reason) == ("dead_letter", expect.split(":")[1]), message
    profiles = [validate_message(*m) for m in messages if m[0] == "profiles"]
    last: dict = {}
    late = 0
    for ev in profiles:
        if isinstance(ev, Event):
            late += ev.instant < last.get(ev.customer_id, ev.instant)
            last[ev.customer_id] = max(ev.instant, last.get(ev.customer_id, ev.instant))
    assert late >= 2
    purchases = [validate_message(*m) for m in messages if m[0] == "purchases"]
    refunds = [e for e in purchases if isinstance(e, Event) and e.role == "refund"]
    assert sum(e.category is not None for e in refunds) >= 5
    kinds = {m[0] for m in eventgen.generate(3, n_customers=40, days=300)}
    assert kinds == {"purchases", "interactions"}

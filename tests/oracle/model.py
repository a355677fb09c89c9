"""A deliberately simple, slow, literal model of SPEC.md sections 2-7, 10 and 11.

It replays the messages of ONE partition in delivery order, day by day, with no cleverness: features are
recomputed from the full event list for every evaluation, and time is advanced one day at a time.

Messages are ``(topic_kind, key, value)`` with ``topic_kind`` in ``"purchases"`` / ``"interactions"`` /
``"profiles"``
(``key``: bytes or None; ``value``: bytes).  As an extension, ``("clock", None, b"<RFC 3339>")`` in the list
is a ``segmenter clock advance --to T`` at that point of the delivery order.

Interpretation choices where SPEC.md is silent or ambiguous (see also the docstrings below):

* Validation precedence when several problems apply: too_large, malformed_json, schema, key_mismatch,
  currency.  ``too_large`` means ``len(value) > 65536`` bytes (the key is not counted).
* ``malformed_json``: value not strict UTF-8 (a BOM is malformed too), not JSON, uses the
  ``NaN``/``Infinity`` literals, or nests deeper than Python's json module can parse.  Valid JSON that is
  not an object (array, string, ...) is ``schema``.
* Optional fields present with JSON ``null`` are schema violations (``currency: null``,
  ``properties: null``, ``order_id: null``); ``order_id``/``category`` must be strings when present.
* ``currency``: a string of 3 uppercase ASCII letters, else ``schema``; a well-formed code that differs from
  the configured one is ``currency``.  Interactions have no currency field (ignored there).
* ``ts``: ``YYYY-MM-DDTHH:MM:SS[.fraction](Z|+HH:MM|-HH:MM)``, uppercase ``T``/``Z`` only, real calendar
  date, hour <= 23, minute/second <= 59 (no leap second), offset hour <= 23, minute <= 59; any number of
  fraction digits, kept exactly.  The UTC day must be in years 1..9999.
* ``amount``: JSON number (not bool) or string matching ``[0-9]+(\\.[0-9]+)?``; 0 < amount < 1e12 and a whole
  number of cents BY VALUE (``10.50``, ``10.5``, ``1e2``, ``"10.500"`` are fine; ``10.005`` is not).
* Lengths ``1..128 chars`` are counted in Unicode code points.
* Keys are compared as UTF-8: a key that is not valid UTF-8 is a ``key_mismatch``.
* The de-dup set is one per customer, shared by both topics.  A duplicate is an event whose event_id was
  already applied for the customer and whose ts >= (newest applied ts of the customer) - horizon (inclusive);
  an older re-send is applied again (SPEC only promises de-dup within the horizon).
* "refunds excluded": recency/tenure/first/last purchase use ``type == "purchase"`` events only.
* De-duplication (SPEC 2): the set of applied event_ids is one per customer; the horizon is measured from
  the newest applied ts of the customer ON THE SAME INPUT TOPIC as the candidate duplicate.
* Profiles (SPEC 10): ``attributes`` must be an object of 1..64 entries, names ``[a-z][a-z0-9_]{0,31}``,
  values a string of 1..256 code points, a JSON number with ``abs(x) <= DBL_MAX`` (compared exactly as a
  decimal), a boolean or null; anything else is ``schema``.  ``currency`` does not apply (a ``currency``
  field on a profile is an ignored extra field).  Last writer by event time per attribute: a write replaces
  the stored one when its instant is >= the stored one's (delivery order = offset order, so an equal ts
  means a later offset).  Profiles never move the watermark.
* Attribute values in Redis (``attr.NAME``): strings verbatim, booleans ``true``/``false``, numbers as the
  JSON text of the number: an integer literal (no fraction, no exponent) as its decimal digits, anything
  else as Python's ``repr`` of the double (``4.5`` -> ``"4.5"``).  SPEC 10 leaves two cases open, which the
  generator avoids: an exponent that makes an integer (``2.5E1``: "25" here, the engine writes "25.0"), and
  integers beyond 2**53 (``12345678901234567890``: verbatim here, the engine keeps the nearest double and
  writes "1.2345678901234567e+19").  In tier-change ``attributes`` numbers
  are ints for integer literals, else floats.
* Custom features (SPEC 11) are given as :class:`CustomFeature` specs; ``sum`` is in cents internally,
  a 2-place money string in Redis and tier-change ``features``, an exact Fraction of currency units in rule
  inputs.  Rule inputs also carry ``attr.NAME`` for every present attribute (str, bool or Decimal).
* SPEC 7's hash has "one field per dimension" AND "every feature": the dimension ``engagement`` and the
  feature ``engagement`` collide.  :meth:`CustomerView.redis_hash` lets the caller choose which one wins
  (default: the tier); ``CustomerView.tiers`` / ``.features`` keep both.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal
from fractions import Fraction
from typing import Any

MAX_VALUE_BYTES = 64 * 1024
SECONDS_PER_DAY = 86400
EPOCH = date(1970, 1, 1)
KINDS = ("purchases", "interactions", "profiles")
WATERMARK_KINDS = ("purchases", "interactions")  # SPEC 10: profiles do not take part in the watermark
DLQ_REASONS = ("too_large", "malformed_json", "schema", "key_mismatch", "currency")
DEFAULT_DIMENSIONS = ("lifecycle", "value", "engagement")
FEATURE_NAMES = (
    "lifetime_purchases",
    "lifetime_monetary",
    "frequency",
    "monetary",
    "engagement",
    "recency_days",
    "tenure_days",
    "days_since_last_interaction",
    "avg_order_value",
)
MONEY_FEATURES = ("lifetime_monetary", "monetary", "avg_order_value")
DBL_MAX = Decimal("1.7976931348623157E+308")

Message = tuple[str, "bytes | None", bytes]

# --------------------------------------------------------------------------------------------------------
# Time
# --------------------------------------------------------------------------------------------------------

_TS_RE = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})T([0-9]{2}):([0-9]{2}):([0-9]{2})(?:\.([0-9]+))?"
    r"(?:(Z)|([+-])([0-9]{2}):([0-9]{2}))"
)


def parse_ts(text: str) -> Fraction:
    """Exact instant of an RFC 3339 timestamp, as epoch seconds (a Fraction). Raises ValueError."""
    if not isinstance(text, str):
        raise ValueError("ts is not a string")
    m = _TS_RE.fullmatch(text)
    if m is None:
        raise ValueError(f"not RFC 3339 with offset: {text!r}")
    year, month, mday, hour, minute, second = (int(m.group(i)) for i in range(1, 7))
    if hour > 23 or minute > 59 or second > 59:
        raise ValueError(f"time of day out of range: {text!r}")
    local_date = date(year, month, mday)  # ValueError for a non-existent date or year 0
    fraction = Fraction(int(m.group(7)), 10 ** len(m.group(7))) if m.group(7) else Fraction(0)
    offset = 0
    if m.group(8) is None:
        off_h, off_m = int(m.group(10)), int(m.group(11))
        if off_h > 23 or off_m > 59:
            raise ValueError(f"offset out of range: {text!r}")
        offset = (off_h * 3600 + off_m * 60) * (1 if m.group(9) == "+" else -1)
    local_seconds = (local_date - EPOCH).days * SECONDS_PER_DAY + hour * 3600 + minute * 60 + second
    instant = local_seconds - offset + fraction
    format_day(day_of(instant))  # the UTC day must be representable (years 1..9999)
    return instant


def day_of(instant: Fraction | int) -> int:
    """UTC day number (days since 1970-01-01) of an instant in epoch seconds."""
    return int(instant // SECONDS_PER_DAY)


def format_day(day: int) -> str:
    """``YYYY-MM-DD`` of a day number. Raises ValueError/OverflowError outside years 1..9999."""
    try:
        return (EPOCH + timedelta(days=day)).isoformat()
    except OverflowError as exc:
        raise ValueError("day out of range") from exc


def day_from_str(text: str) -> int:
    return (date.fromisoformat(text) - EPOCH).days


def midnight(day: int) -> str:
    """The ``at`` of a time-driven transition: day k at 00:00:00Z."""
    return f"{format_day(day)}T00:00:00Z"


# --------------------------------------------------------------------------------------------------------
# Money
# --------------------------------------------------------------------------------------------------------

_DECIMAL_STRING_RE = re.compile(r"[0-9]+(?:\.[0-9]+)?")
_MAX_AMOUNT = Decimal(10) ** 12


def parse_amount_cents(raw: Any) -> int | None:
    """Cents of a valid ``amount`` (JSON number parsed as Decimal, or decimal string), else None."""
    if isinstance(raw, bool):
        return None
    if isinstance(raw, str):
        if _DECIMAL_STRING_RE.fullmatch(raw) is None:
            return None
        value = Decimal(raw)
    elif isinstance(raw, Decimal):
        value = raw
    else:
        return None
    if not value.is_finite() or not (0 < value < _MAX_AMOUNT):
        return None
    _sign, digits_t, exponent = value.as_tuple()
    digits = list(digits_t)
    while len(digits) > 1 and digits[-1] == 0:  # 10.500 -> 105e-1
        digits.pop()
        exponent += 1
    if exponent < -2:  # a non-zero digit below the cent
        return None
    return int("".join(map(str, digits))) * 10 ** (exponent + 2)


def format_cents(cents: int) -> str:
    """Integer cents -> decimal string with 2 places: 4150 -> "41.50", -300 -> "-3.00"."""
    sign = "-" if cents < 0 else ""
    whole, frac = divmod(abs(cents), 100)
    return f"{sign}{whole}.{frac:02d}"


def round_half_up(x: Fraction) -> int:
    """Nearest integer, halves away from zero."""
    if x >= 0:
        return int((x + Fraction(1, 2)) // 1)
    return -int((-x + Fraction(1, 2)) // 1)


# --------------------------------------------------------------------------------------------------------
# Validation (SPEC section 2)
# --------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Event:
    """A valid input event."""

    kind: str  # topic kind: "purchases" | "interactions"
    type: str  # purchase | refund | interaction type (e.g. page_view)
    event_id: str
    customer_id: str
    ts: str  # verbatim
    instant: Fraction  # epoch seconds, exact
    day: int  # UTC day number
    cents: int  # purchases/refunds; 0 for interactions and profiles
    role: str  # "purchase" | "refund" | "interaction" | "profile" (an interaction may have type "purchase"!)
    category: str | None = None  # purchases/refunds: the optional ``category`` field
    # profiles: ((name, value), ...) in message order; value is str | bool | Decimal | None (null = removal)
    attributes: tuple[tuple[str, Any], ...] = ()

    @property
    def is_purchase(self) -> bool:
        return self.role == "purchase"

    @property
    def transition_reason(self) -> str:
        """The ``reason`` of the event-driven transitions it causes."""
        if self.kind == "profiles":
            return "profile"
        return self.type if self.kind == "purchases" else "interaction"


@dataclass(frozen=True)
class Rejection:
    reason: str  # one of DLQ_REASONS
    detail: str


_INTERACTION_TYPE_RE = re.compile(r"[a-z][a-z0-9_]{0,31}")
_CURRENCY_RE = re.compile(r"[A-Z]{3}")


def _reject_constant(name: str) -> Any:
    raise ValueError(f"non-finite number literal {name}")


def _id_ok(value: Any) -> bool:
    return isinstance(value, str) and 1 <= len(value) <= 128


def validate_message(kind: str, key: bytes | None, value: bytes, currency: str = "USD") -> Event | Rejection:
    """Validate one message; precedence too_large > malformed_json > schema > key_mismatch > currency."""
    if kind not in KINDS:
        raise ValueError(f"unknown topic kind {kind!r}")
    if len(value) > MAX_VALUE_BYTES:
        return Rejection("too_large", f"value is {len(value)} bytes")
    try:
        text = value.decode("utf-8")
        obj = json.loads(text, parse_float=Decimal, parse_int=Decimal, parse_constant=_reject_constant)
    except (UnicodeDecodeError, ValueError) as exc:  # JSONDecodeError is a ValueError
        return Rejection("malformed_json", str(exc))
    except RecursionError:
        return Rejection("malformed_json", "JSON nested too deeply")

    schema_problem = _schema_problem(kind, obj)
    if schema_problem is not None:
        return Rejection("schema", schema_problem)

    customer_id = obj["customer_id"]
    if key is None:
        return Rejection("key_mismatch", "message has no key")
    try:
        key_text = key.decode("utf-8")
    except UnicodeDecodeError:
        return Rejection("key_mismatch", "key is not UTF-8")
    if key_text != customer_id:
        return Rejection("key_mismatch", f"key {key_text!r} != customer_id {customer_id!r}")

    if kind == "purchases" and "currency" in obj and obj["currency"] != currency:
        return Rejection("currency", f"currency {obj['currency']} != {currency}")

    instant = parse_ts(obj["ts"])
    if kind == "profiles":
        return Event(
            kind=kind,
            type="profile",
            event_id=obj["event_id"],
            customer_id=customer_id,
            ts=obj["ts"],
            instant=instant,
            day=day_of(instant),
            cents=0,
            role="profile",
            attributes=tuple(obj["attributes"].items()),
        )
    return Event(
        kind=kind,
        type=obj["type"],
        event_id=obj["event_id"],
        customer_id=customer_id,
        ts=obj["ts"],
        instant=instant,
        day=day_of(instant),
        cents=_cents(obj["amount"]) if kind == "purchases" else 0,
        role=obj["type"] if kind == "purchases" else "interaction",
        category=obj.get("category") if kind == "purchases" else None,
    )


def _cents(raw: Any) -> int:
    cents = parse_amount_cents(raw)
    assert cents is not None
    return cents


def _schema_problem(kind: str, obj: Any) -> str | None:
    if not isinstance(obj, dict):
        return "not a JSON object"
    if not _id_ok(obj.get("event_id")):
        return "event_id must be a string of 1..128 chars"
    if not _id_ok(obj.get("customer_id")):
        return "customer_id must be a string of 1..128 chars"
    try:
        parse_ts(obj.get("ts"))
    except ValueError:
        return "ts must be RFC 3339 with offset"
    if kind == "profiles":
        return _attributes_problem(obj.get("attributes", None), "attributes" in obj)
    event_type = obj.get("type")
    if kind == "purchases":
        if event_type not in ("purchase", "refund"):
            return "type must be purchase or refund"
        if "amount" not in obj or parse_amount_cents(obj["amount"]) is None:
            return "amount must be > 0, < 1e12, with at most 2 decimal places"
        if "currency" in obj and (
            not isinstance(obj["currency"], str) or _CURRENCY_RE.fullmatch(obj["currency"]) is None
        ):
            return "currency must be 3 uppercase letters"
        for optional in ("order_id", "category"):
            if optional in obj and not isinstance(obj[optional], str):
                return f"{optional} must be a string"
    else:
        if not isinstance(event_type, str) or _INTERACTION_TYPE_RE.fullmatch(event_type) is None:
            return "type must match [a-z][a-z0-9_]{0,31}"
        if "properties" in obj and not isinstance(obj["properties"], dict):
            return "properties must be an object"
    return None


_ATTRIBUTE_NAME_RE = re.compile(r"[a-z][a-z0-9_]{0,31}")


def _attributes_problem(attributes: Any, present: bool) -> str | None:
    """SPEC 10: an object of 1..64 entries, good names, values string/number/boolean/null."""
    if not present or not isinstance(attributes, dict):
        return "attributes must be an object"
    if not 1 <= len(attributes) <= 64:
        return "attributes must have 1..64 entries"
    for name, value in attributes.items():
        if _ATTRIBUTE_NAME_RE.fullmatch(name) is None:
            return f"bad attribute name {name!r}"
        if value is None or isinstance(value, bool):
            continue
        if isinstance(value, str):
            if not 1 <= len(value) <= 256:
                return f"attribute {name}: a string must have 1..256 chars"
            continue
        if isinstance(value, Decimal):
            if not value.is_finite() or abs(value) > DBL_MAX:
                return f"attribute {name}: number out of the double range"
            continue
        return f"attribute {name}: must be a string, number, boolean or null"
    return None


def attribute_redis_text(value: Any) -> str:
    """``attr.NAME`` field of the Redis record (see the module docstring)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    assert isinstance(value, Decimal)
    if value.as_tuple().exponent == 0:  # an integer literal: 1985, -3
        return str(value)
    return repr(float(value))


def attribute_json(value: Any) -> Any:
    """An attribute as it reads in a tier-change event's ``attributes`` (JSON types)."""
    if isinstance(value, Decimal):
        return int(value) if value.as_tuple().exponent == 0 else float(value)
    return value


# --------------------------------------------------------------------------------------------------------
# Features (SPEC section 4)
# --------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Features:
    """Features at day ``day``; money in integer cents (avg order value: exact Fraction of cents)."""

    day: int
    lifetime_purchases: int
    lifetime_monetary_cents: int
    frequency: int
    monetary_cents: int
    engagement: int
    recency_days: int | None
    tenure_days: int | None
    days_since_last_interaction: int | None
    avg_order_value_cents: Fraction | None
    # custom features (SPEC 11): (name, value, is_money) in declaration order; money in cents
    custom: tuple[tuple[str, int, bool], ...] = ()

    def rule_inputs(self) -> dict[str, int | Fraction | None]:
        """Feature name -> value for rule conditions; money as exact Fraction in currency units."""
        out: dict[str, int | Fraction | None] = {
            "lifetime_purchases": self.lifetime_purchases,
            "lifetime_monetary": Fraction(self.lifetime_monetary_cents, 100),
            "frequency": self.frequency,
            "monetary": Fraction(self.monetary_cents, 100),
            "engagement": self.engagement,
            "recency_days": self.recency_days,
            "tenure_days": self.tenure_days,
            "days_since_last_interaction": self.days_since_last_interaction,
            "avg_order_value": None
            if self.avg_order_value_cents is None
            else self.avg_order_value_cents / 100,
        }
        for name, value, is_money in self.custom:
            out[name] = Fraction(value, 100) if is_money else value
        return out

    def _money(self, name: str) -> str | None:
        if name == "avg_order_value":
            cents = self.avg_order_value_cents
            return None if cents is None else format_cents(round_half_up(cents))
        return format_cents(getattr(self, f"{name}_cents"))

    def as_redis(self) -> dict[str, str]:
        """SPEC 7 hash fields: ints as decimal strings, money as 2-place strings, null features absent."""
        out: dict[str, str] = {}
        for name in FEATURE_NAMES:
            value = self._money(name) if name in MONEY_FEATURES else getattr(self, name)
            if value is not None:
                out[name] = str(value)
        for name, value, is_money in self.custom:
            out[name] = format_cents(value) if is_money else str(value)
        return out

    def as_json(self) -> dict[str, Any]:
        """Features as in a tier-change event: ints as numbers, money as 2-place strings, null as None."""
        out = {
            name: (self._money(name) if name in MONEY_FEATURES else getattr(self, name))
            for name in FEATURE_NAMES
        }
        for name, value, is_money in self.custom:
            out[name] = format_cents(value) if is_money else value
        return out


@dataclass(frozen=True)
class CustomFeature:
    """One entry of a rules file's ``features:`` (SPEC 11)."""

    name: str
    kind: str  # "count_purchases" | "count_interactions" | "sum_purchases" | "distinct_categories"
    days: int
    only: tuple[str, ...] | None = None  # category filter (purchases) or type filter (interactions)

    def __post_init__(self) -> None:
        kinds = ("count_purchases", "count_interactions", "sum_purchases", "distinct_categories")
        if self.kind not in kinds:
            raise ValueError(f"unknown custom feature kind {self.kind!r}")
        if self.kind == "distinct_categories" and self.only is not None:
            raise ValueError("distinct: categories takes no filter")

    @property
    def is_money(self) -> bool:
        return self.kind == "sum_purchases"


def compute_custom(events: Iterable[Event], day: int, spec: CustomFeature) -> int:
    """SPEC 11, literally: over the applied events with day in ``[day - days + 1, day]``; money in cents."""
    first = day - spec.days + 1
    window = [e for e in events if first <= e.day <= day]

    def keep(value: str | None) -> bool:
        return spec.only is None or value in spec.only

    if spec.kind == "count_interactions":
        return sum(1 for e in window if e.role == "interaction" and keep(e.type))
    if spec.kind == "count_purchases":
        return sum(1 for e in window if e.role == "purchase" and keep(e.category))
    if spec.kind == "sum_purchases":
        bought = sum(e.cents for e in window if e.role == "purchase" and keep(e.category))
        refunded = sum(e.cents for e in window if e.role == "refund" and keep(e.category))
        return max(0, bought - refunded)
    return len({e.category for e in window if e.role == "purchase" and e.category is not None})


def compute_features(
    events: Iterable[Event],
    day: int,
    value_days: int = 365,
    engagement_days: int = 30,
    custom_features: Sequence[CustomFeature] = (),
) -> Features:
    """SPEC 4 (and 11), literally: over the applied events with event day <= ``day``."""
    events = list(events)
    w_first = day - value_days + 1  # window W = [w_first, day]
    e_first = day - engagement_days + 1  # window E = [e_first, day]
    seen = [e for e in events if e.day <= day]
    purchases = [e for e in seen if e.role == "purchase"]
    refunds = [e for e in seen if e.role == "refund"]
    interactions = [e for e in seen if e.role == "interaction"]
    purchases_w = [e for e in purchases if e.day >= w_first]
    refunds_w = [e for e in refunds if e.day >= w_first]
    interactions_e = [e for e in interactions if e.day >= e_first]
    frequency = len(purchases_w)
    purchase_cents_w = sum(e.cents for e in purchases_w)
    return Features(
        day=day,
        lifetime_purchases=len(purchases),
        lifetime_monetary_cents=sum(e.cents for e in purchases) - sum(e.cents for e in refunds),
        frequency=frequency,
        monetary_cents=max(0, purchase_cents_w - sum(e.cents for e in refunds_w)),
        engagement=len(interactions_e),
        recency_days=day - max(e.day for e in purchases) if purchases else None,
        tenure_days=day - min(e.day for e in purchases) if purchases else None,
        days_since_last_interaction=day - max(e.day for e in interactions) if interactions else None,
        avg_order_value_cents=Fraction(purchase_cents_w, frequency) if frequency else None,
        custom=tuple((f.name, compute_custom(seen, day, f), f.is_money) for f in custom_features),
    )


# --------------------------------------------------------------------------------------------------------
# Rules (SPEC section 5, default rules as plain Python)
# --------------------------------------------------------------------------------------------------------

Classify = Callable[[Mapping[str, Any]], dict[str, str]]

_OPS: dict[str, Callable[[Any, Any], bool]] = {
    "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b,
    ">": lambda a, b: a > b,
    ">=": lambda a, b: a >= b,
    "==": lambda a, b: a == b,
    "!=": lambda a, b: a != b,
}


def feature_cmp(inputs: Mapping[str, Any], feature: str, op: str, number: float | str | Fraction) -> bool:
    """``FEATURE OP NUMBER`` with SPEC semantics: false on a null feature; exact (number may be "12.5")."""
    value = inputs[feature]
    if value is None:
        return False
    if isinstance(number, float):
        number = Fraction(repr(number))  # 0.1 means 1/10
    elif isinstance(number, str):
        number = Fraction(number)
    return _OPS[op](value, number)  # int / Fraction comparisons are exact


def attr_cmp(inputs: Mapping[str, Any], name: str, op: str, literal: str | bool | int | float | str) -> bool:
    """``attr.NAME OP LITERAL`` with SPEC 10 semantics.

    Missing attribute: false for every operator.  ``==``: same type (string / number / boolean) and value,
    numbers by exact decimal value; ``!=`` its negation; ``< <= > >=`` only between numbers.
    A literal number may be given as int, float (its repr is the decimal text) or Decimal.
    """
    key = f"attr.{name}"
    if key not in inputs:
        return False
    value = inputs[key]
    if op == "!=":
        return not attr_cmp(inputs, name, "==", literal)
    lit_is_number = isinstance(literal, (int, float, Decimal)) and not isinstance(literal, bool)
    value_is_number = isinstance(value, Decimal)
    if op == "==":
        if isinstance(literal, bool) or isinstance(value, bool):
            return isinstance(literal, bool) and isinstance(value, bool) and literal == value
        if isinstance(literal, str) or isinstance(value, str):
            return isinstance(literal, str) and isinstance(value, str) and literal == value
        return lit_is_number and value_is_number and value == _literal_decimal(literal)
    if not (lit_is_number and value_is_number):
        return False
    return _OPS[op](value, _literal_decimal(literal))


def attr_in(inputs: Mapping[str, Any], name: str, literals: Sequence[Any], negate: bool = False) -> bool:
    """``attr.NAME in [...]`` / ``not in``: false on a missing attribute (both forms)."""
    if f"attr.{name}" not in inputs:
        return False
    hit = any(attr_cmp(inputs, name, "==", literal) for literal in literals)
    return not hit if negate else hit


def _literal_decimal(literal: int | float | Decimal) -> Decimal:
    if isinstance(literal, float):
        return Decimal(repr(literal))
    return Decimal(literal)


def default_classify(f: Mapping[str, Any]) -> dict[str, str]:
    """The built-in default rules of SPEC 5, first match wins; dict order = dimension order."""
    if feature_cmp(f, "lifetime_purchases", "==", 0):
        lifecycle = "prospect"
    elif feature_cmp(f, "recency_days", ">=", 180):
        lifecycle = "churned"
    elif feature_cmp(f, "recency_days", ">=", 90):
        lifecycle = "at_risk"
    elif feature_cmp(f, "tenure_days", "<", 30):
        lifecycle = "new"
    elif feature_cmp(f, "frequency", ">=", 6) and feature_cmp(f, "tenure_days", ">=", 180):
        lifecycle = "loyal"
    else:
        lifecycle = "active"

    if feature_cmp(f, "lifetime_purchases", "==", 0):
        value = "none"
    elif feature_cmp(f, "monetary", ">=", 1000) and feature_cmp(f, "frequency", ">=", 6):
        value = "vip"
    elif feature_cmp(f, "monetary", ">=", 300):
        value = "high"
    elif feature_cmp(f, "monetary", ">=", 50):
        value = "medium"
    else:
        value = "low"

    if feature_cmp(f, "engagement", ">=", 20):
        engagement = "highly_engaged"
    elif feature_cmp(f, "engagement", ">=", 3):
        engagement = "engaged"
    else:
        engagement = "passive"

    return {"lifecycle": lifecycle, "value": value, "engagement": engagement}


# --------------------------------------------------------------------------------------------------------
# Replay (SPEC sections 2, 3, 6)
# --------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CustomerView:
    """Final state of a customer, as its Redis record (SPEC 7) should read (minus rules_version/version)."""

    customer_id: str
    tiers: dict[str, str]
    as_of: str  # D of the evaluation that last wrote the record
    features: dict[str, str]  # at as_of, Redis formatting (null features absent)
    first_purchase_at: str | None
    last_purchase_at: str | None
    eval_day: str  # final D_c (>= as_of)
    seq: dict[str, int]  # number of tier changes per dimension so far
    writes: int  # applied events + time-driven evaluations that changed a tier
    attributes: dict[str, str] = field(default_factory=dict)  # name -> Redis text (present ones only)

    def redis_hash(self, prefer: str = "tier") -> dict[str, str]:
        """The SPEC 7 hash; ``prefer`` ("tier" | "feature") decides a dimension/feature name collision
        (the default rules have one: ``engagement``)."""
        if prefer not in ("tier", "feature"):
            raise ValueError("prefer must be 'tier' or 'feature'")
        out = dict(self.features)
        if prefer == "tier":
            out.update(self.tiers)
        else:
            out = {**self.tiers, **out}
        out["as_of"] = self.as_of
        for name, text in self.attributes.items():
            out[f"attr.{name}"] = text
        if self.first_purchase_at is not None:
            out["first_purchase_at"] = self.first_purchase_at
        if self.last_purchase_at is not None:
            out["last_purchase_at"] = self.last_purchase_at
        return out


@dataclass
class Result:
    transitions: list[dict[str, Any]] = field(default_factory=list)
    transition_features: list[dict[str, Any]] = field(default_factory=list)  # aligned with transitions
    # the tier-change ``attributes`` (SPEC 6 v2), aligned with transitions
    transition_attributes: list[dict[str, Any]] = field(default_factory=list)
    outcomes: Counter[tuple[str, str]] = field(default_factory=Counter)  # (kind, outcome) -> n
    dead_letter_reasons: Counter[str] = field(default_factory=Counter)  # reason -> n
    dead_letters: list[tuple[str, bytes | None, bytes]] = field(default_factory=list)  # (reason, key, value)
    dead_letter_sources: list[tuple[str, int, int]] = field(default_factory=list)  # (kind, partition, index)
    # (outcome, dlq reason) per input message except clock entries; for several partitions: partition order
    message_outcomes: list[tuple[str, str | None]] = field(default_factory=list)
    final: dict[str, CustomerView] = field(default_factory=dict)
    tier_counts: dict[str, dict[str, int]] = field(default_factory=dict)
    watermarks: dict[int, Fraction | None] = field(default_factory=dict)  # partition -> epoch seconds
    # customer -> (applied events, final attributes) for record_at / as_of_range; and how to evaluate
    histories: dict[str, tuple[list[Event], dict[str, Any]]] = field(default_factory=dict)
    evaluator: Any = None  # a _PartitionReplay-like object with .features_at / .classify_at

    def record_at(self, customer_id: str, day: int | str) -> dict[str, str]:
        """The Redis hash (as :meth:`CustomerView.redis_hash`) of a record written at ``day`` AFTER all of
        the customer's events were applied (the last write of a record always is, see :meth:`as_of_range`)."""
        d = day_from_str(day) if isinstance(day, str) else day
        view = self.final[customer_id]
        events, attributes = self.histories[customer_id]
        features = self.evaluator.features_at(events, d)
        tiers = self.evaluator.classify_at(features, attributes)
        return CustomerView(
            customer_id=customer_id,
            tiers=tiers,
            as_of=format_day(d),
            features=features.as_redis(),
            first_purchase_at=view.first_purchase_at,
            last_purchase_at=view.last_purchase_at,
            eval_day=view.eval_day,
            seq=view.seq,
            writes=view.writes,
            attributes={n: attribute_redis_text(v) for n, v in attributes.items()},
        ).redis_hash()

    def as_of_range(self, customer_id: str) -> tuple[int, int]:
        """Days the record's ``as_of`` may take whatever the interleaving of the input topics.

        The last write of a record is the last applied event (at D >= M, the newest event day) or a later
        time-driven change, so ``as_of`` is in [lo, hi]: hi = the final D_c, lo = max(M, the last day in
        (M, hi] at which a tier changes when evaluated with all events).
        """
        view = self.final[customer_id]
        events, attributes = self.histories[customer_id]
        newest = max(e.day for e in events)
        hi = day_from_str(view.eval_day)
        lo = newest
        previous = self.evaluator.classify_at(self.evaluator.features_at(events, newest), attributes)
        for k in range(newest + 1, hi + 1):
            tiers = self.evaluator.classify_at(self.evaluator.features_at(events, k), attributes)
            if tiers != previous:
                lo = k
            previous = tiers
        return lo, hi

    def transitions_of(self, customer_id: str, dimension: str | None = None) -> list[dict[str, Any]]:
        return [
            t
            for t in self.transitions
            if t["customer_id"] == customer_id and (dimension is None or t["dimension"] == dimension)
        ]

    def transition_counts(self) -> Counter[tuple[str, str | None, str, str]]:
        """(dimension, from, to, reason) -> n, like segmenter_tier_transitions_total."""
        return Counter((t["dimension"], t["from"], t["to"], t["reason"]) for t in self.transitions)


@dataclass
class _Customer:
    customer_id: str
    day: int  # D_c
    events: list[Event] = field(default_factory=list)
    applied_ids: set[str] = field(default_factory=set)
    newest_instant: dict[str, Fraction] = field(default_factory=dict)  # topic kind -> newest applied ts
    # attribute name -> (instant of the write, value or None for a removal)
    attribute_writes: dict[str, tuple[Fraction, Any]] = field(default_factory=dict)
    tiers: dict[str, str] = field(default_factory=dict)
    seq: Counter[str] = field(default_factory=Counter)
    as_of: int | None = None
    writes: int = 0
    first_purchase: Event | None = None
    last_purchase: Event | None = None

    def attributes(self) -> dict[str, Any]:
        """Present attributes (name -> str | bool | Decimal), sorted by name."""
        return {n: v for n, (_i, v) in sorted(self.attribute_writes.items()) if v is not None}


class _PartitionReplay:
    """Replays the messages of one partition.

    Watermark choice: only VALID events (applied or duplicate) count as "an event seen on the topic";
    dead-lettered messages never move the watermark, duplicates do (they are well-formed events that were
    delivered).  The watermark is kept monotone: ``wm = max(previous wm, min over kinds seen of max ts)``,
    so a topic whose first event is older does not pull it back, nor below a ``clock advance``.
    Profiles (SPEC 10) never count: a partition with only profile events has no watermark.
    """

    def __init__(
        self,
        partition: int,
        result: Result,
        *,
        currency: str,
        dedupe_horizon_days: int,
        value_days: int,
        engagement_days: int,
        classify: Classify,
        custom_features: Sequence[CustomFeature] = (),
    ) -> None:
        self.partition = partition
        self.result = result
        self.currency = currency
        self.horizon_seconds = dedupe_horizon_days * SECONDS_PER_DAY
        self.value_days = value_days
        self.engagement_days = engagement_days
        self.classify = classify
        self.custom_features = tuple(custom_features)
        self.max_ts: dict[str, Fraction] = {}  # kind -> largest ts of a valid event
        self.watermark: Fraction | None = None
        self.customers: dict[str, _Customer] = {}  # insertion order = first applied event
        self.swept_day: int | None = None
        self.index_in_topic: Counter[str] = Counter()

    # -- time --------------------------------------------------------------------------------------------

    def _raise_watermark(self, instant: Fraction) -> None:
        if self.watermark is None or instant > self.watermark:
            self.watermark = instant

    def watermark_day(self) -> int | None:
        return None if self.watermark is None else day_of(self.watermark)

    def features_at(self, events: Sequence[Event], day: int) -> Features:
        return compute_features(events, day, self.value_days, self.engagement_days, self.custom_features)

    def classify_at(self, features: Features, attributes: Mapping[str, Any]) -> dict[str, str]:
        inputs: dict[str, Any] = dict(features.rule_inputs())
        inputs.update({f"attr.{name}": value for name, value in attributes.items()})
        return self.classify(inputs)

    def _evaluate(self, c: _Customer, day: int, at: str, reason: str, cause: str | None) -> bool:
        """Evaluate c at ``day``; emit one transition per changed dimension. True if anything changed."""
        features = self.features_at(c.events, day)
        attributes = c.attributes()
        tiers = self.classify_at(features, attributes)
        changed = False
        for dimension, tier in tiers.items():
            previous = c.tiers.get(dimension)
            if previous == tier:
                continue
            changed = True
            c.seq[dimension] += 1
            seq = c.seq[dimension]
            self.result.transitions.append(
                {
                    "event_id": f"{c.customer_id}:{dimension}:{seq}",
                    "customer_id": c.customer_id,
                    "dimension": dimension,
                    "seq": seq,
                    "from": previous,
                    "to": tier,
                    "at": at,
                    "reason": reason,
                    "cause_event_id": cause,
                }
            )
            self.result.transition_features.append(features.as_json())
            self.result.transition_attributes.append({n: attribute_json(v) for n, v in attributes.items()})
        c.tiers = dict(tiers)
        return changed

    def _advance(self, c: _Customer, target: int) -> None:
        """Time-driven: evaluate c at every day k in (D_c, target], in order."""
        for k in range(c.day + 1, target + 1):
            if self._evaluate(c, k, midnight(k), "time", None):
                c.as_of = k
                c.writes += 1
        c.day = max(c.day, target)

    def _sweep(self) -> None:
        """Advance every known customer with D_c < watermark day to the watermark day (first-seen order)."""
        wm_day = self.watermark_day()
        if wm_day is None or wm_day == self.swept_day:
            return  # every customer is already at >= wm_day: new ones start there, D_c never decreases
        for c in self.customers.values():
            if c.day < wm_day:
                self._advance(c, wm_day)
        self.swept_day = wm_day

    # -- messages ----------------------------------------------------------------------------------------

    def clock_advance(self, to: str | bytes) -> None:
        text = to.decode("utf-8") if isinstance(to, bytes) else to
        self._raise_watermark(parse_ts(text))
        self._sweep()

    def process(self, kind: str, key: bytes | None, value: bytes) -> None:
        if kind == "clock":
            self.clock_advance(value)
            return
        index = self.index_in_topic[kind]
        self.index_in_topic[kind] += 1
        verdict = validate_message(kind, key, value, self.currency)
        if isinstance(verdict, Rejection):
            self.result.outcomes[(kind, "dead_letter")] += 1
            self.result.dead_letter_reasons[verdict.reason] += 1
            self.result.dead_letters.append((verdict.reason, key, value))
            self.result.dead_letter_sources.append((kind, self.partition, index))
            self.result.message_outcomes.append(("dead_letter", verdict.reason))
            return
        ev = verdict

        # The partition watermark: min over kinds seen of the largest ts, never decreasing (not profiles).
        if kind in WATERMARK_KINDS:
            self.max_ts[kind] = max(self.max_ts.get(kind, ev.instant), ev.instant)
            self._raise_watermark(min(self.max_ts.values()))
        wm_day = self.watermark_day()
        floor = ev.day if wm_day is None else wm_day

        c = self.customers.get(ev.customer_id)
        if (
            c is not None
            and ev.event_id in c.applied_ids
            and kind in c.newest_instant
            and ev.instant >= c.newest_instant[kind] - self.horizon_seconds
        ):
            self.result.outcomes[(kind, "duplicate")] += 1
            self.result.message_outcomes.append(("duplicate", None))
        else:
            if c is None:  # first evaluation ever happens with the first applied event
                target = max(ev.day, floor)
                c = _Customer(customer_id=ev.customer_id, day=target)
                self.customers[ev.customer_id] = c
            else:
                target = max(c.day, ev.day, floor)
                self._advance(c, target)
            self._apply(c, ev)
            self._evaluate(c, target, ev.ts, ev.transition_reason, ev.event_id)
            c.as_of = target
            c.writes += 1
            self.result.outcomes[(kind, "applied")] += 1
            self.result.message_outcomes.append(("applied", None))
        self._sweep()

    @staticmethod
    def _apply(c: _Customer, ev: Event) -> None:
        c.events.append(ev)
        c.applied_ids.add(ev.event_id)
        if ev.kind not in c.newest_instant or ev.instant > c.newest_instant[ev.kind]:
            c.newest_instant[ev.kind] = ev.instant
        for name, value in ev.attributes:  # last writer by event time; equal ts: the later offset wins
            stored = c.attribute_writes.get(name)
            if stored is None or ev.instant >= stored[0]:
                c.attribute_writes[name] = (ev.instant, value)
        if ev.is_purchase:
            if c.first_purchase is None or ev.instant < c.first_purchase.instant:
                c.first_purchase = ev
            if c.last_purchase is None or ev.instant > c.last_purchase.instant:
                c.last_purchase = ev

    def finish(self) -> None:
        self.result.watermarks[self.partition] = self.watermark
        for c in self.customers.values():
            assert c.as_of is not None
            features = self.features_at(c.events, c.as_of)
            attributes = c.attributes()
            self.result.histories[c.customer_id] = (list(c.events), attributes)
            self.result.evaluator = self
            self.result.final[c.customer_id] = CustomerView(
                customer_id=c.customer_id,
                tiers=dict(c.tiers),
                as_of=format_day(c.as_of),
                features=features.as_redis(),
                first_purchase_at=None if c.first_purchase is None else c.first_purchase.ts,
                last_purchase_at=None if c.last_purchase is None else c.last_purchase.ts,
                eval_day=format_day(c.day),
                seq=dict(c.seq),
                writes=c.writes,
                attributes={n: attribute_redis_text(v) for n, v in attributes.items()},
            )


def _tier_counts(final: Mapping[str, CustomerView]) -> dict[str, dict[str, int]]:
    """dimension -> tier -> customers currently in it (tiers with 0 customers are absent)."""
    counts: dict[str, dict[str, int]] = {}
    for view in final.values():
        for dimension, tier in view.tiers.items():
            per_dim = counts.setdefault(dimension, {})
            per_dim[tier] = per_dim.get(tier, 0) + 1
    return counts


def run_partition(
    messages: Sequence[Message],
    clock_advance_to: str | None = None,
    *,
    partition: int = 0,
    currency: str = "USD",
    dedupe_horizon_days: int = 7,
    value_days: int = 365,
    engagement_days: int = 30,
    classify: Classify = default_classify,
    custom_features: Sequence[CustomFeature] = (),
) -> Result:
    """Replay the messages of ONE partition in delivery order, then apply ``clock_advance_to``.

    Per message: validate; for a valid purchase/interaction raise the watermark with its ts (profiles never
    move it); then either count it as a
    duplicate, or (applied) advance its customer day by day from D_c to max(D_c, day(ts), day(watermark)),
    apply it and evaluate at that day (event-driven).  Then every known customer with D_c below the watermark
    day is advanced day by day to it (time-driven).
    """
    result = Result()
    replay = _PartitionReplay(
        partition,
        result,
        currency=currency,
        dedupe_horizon_days=dedupe_horizon_days,
        value_days=value_days,
        engagement_days=engagement_days,
        classify=classify,
        custom_features=custom_features,
    )
    for kind, key, value in messages:
        replay.process(kind, key, value)
    if clock_advance_to is not None:
        replay.clock_advance(clock_advance_to)
    replay.finish()
    result.tier_counts = _tier_counts(result.final)
    return result


def run_partitions(
    messages_by_partition: Mapping[int, Sequence[Message]],
    clock_advance_to: str | None = None,
    **options: Any,
) -> Result:
    """Run every partition independently (the clock advance applies to all) and merge the results.

    Transitions are concatenated in partition order; per customer they are in emission order.
    """
    result = Result()
    for partition in sorted(messages_by_partition):
        before = set(result.final)
        part = run_partition(
            messages_by_partition[partition], clock_advance_to, partition=partition, **options
        )
        clash = before & set(part.final)
        if clash:
            raise ValueError(f"customers applied on more than one partition: {sorted(clash)[:5]}")
        result.transitions += part.transitions
        result.transition_features += part.transition_features
        result.transition_attributes += part.transition_attributes
        result.outcomes += part.outcomes
        result.dead_letter_reasons += part.dead_letter_reasons
        result.dead_letters += part.dead_letters
        result.dead_letter_sources += part.dead_letter_sources
        result.message_outcomes += part.message_outcomes
        result.final.update(part.final)
        result.histories.update(part.histories)
        result.evaluator = part.evaluator or result.evaluator
        result.watermarks.update(part.watermarks)
    result.tier_counts = _tier_counts(result.final)
    return result


# --------------------------------------------------------------------------------------------------------
# Partitioning (Kafka default partitioner)
# --------------------------------------------------------------------------------------------------------


def murmur2(data: bytes) -> int:
    """Kafka's murmur2 (org.apache.kafka.common.utils.Utils.murmur2) as an unsigned 32-bit int."""
    mask = 0xFFFFFFFF
    m = 0x5BD1E995
    length = len(data)
    h = (0x9747B28C ^ length) & mask
    whole = length // 4
    for i in range(whole):
        k = int.from_bytes(data[4 * i : 4 * i + 4], "little")
        k = (k * m) & mask
        k ^= k >> 24
        k = (k * m) & mask
        h = (h * m) & mask
        h ^= k
    tail = data[4 * whole :]
    if len(tail) >= 3:
        h ^= tail[2] << 16
    if len(tail) >= 2:
        h ^= tail[1] << 8
    if len(tail) >= 1:
        h ^= tail[0]
        h = (h * m) & mask
    h ^= h >> 13
    h = (h * m) & mask
    h ^= h >> 15
    return h


def partition_for_key(key: bytes, n: int) -> int:
    """Kafka's default partitioner for a non-null key: ``toPositive(murmur2(key)) % n``."""
    return (murmur2(key) & 0x7FFFFFFF) % n


def split_by_partition(messages: Iterable[Message], n: int) -> dict[int, list[Message]]:
    """Route messages like a keyed producer would, keeping their order within each partition.

    A message without a key goes to partition 0 (a real producer picks any partition; such a message is a
    dead letter wherever it lands and does not move a watermark, so the choice does not change transitions).
    ``("clock", None, T)`` entries are copied to every partition.
    """
    out: dict[int, list[Message]] = {p: [] for p in range(n)}
    for message in messages:
        kind, key, _value = message
        if kind == "clock":
            for p in range(n):
                out[p].append(message)
        else:
            out[0 if key is None else partition_for_key(key, n)].append(message)
    return out


def run_messages(
    messages: Iterable[Message], n_partitions: int = 1, clock_advance_to: str | None = None, **options: Any
) -> Result:
    """Partition ``messages`` by key (see :func:`split_by_partition`) and run :func:`run_partitions`."""
    return run_partitions(split_by_partition(messages, n_partitions), clock_advance_to, **options)

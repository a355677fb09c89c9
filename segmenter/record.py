"""Feature values read back from a Redis record (SPEC section 7): what `explain` and the UI evaluate.

The record renders money as 2-place decimals, counts and days as integers and attributes as `attr.NAME`
(strings verbatim, numbers as JSON text, booleans `true`/`false`). `avg_order_value` is rendered rounded to
the cent: a condition on it within half a cent of its threshold may read differently from the exact ratio
the worker compared (documented in docs/DESIGN.md).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from decimal import Decimal, InvalidOperation

import orjson

ATTRIBUTE_PREFIX = "attr."


def features_from_record(
    fields: Mapping[str, str], feature_names: Collection[str], money: Collection[str]
) -> dict[str, object]:
    """Name -> value as conditions read them: money in cents, counts as int, floats as float; absent or
    unreadable fields are null; every `attr.*` field as its JSON value."""
    values: dict[str, object] = {}
    for name in feature_names:
        text = fields.get(name)
        values[name] = None if text is None else _number(text, name in money)
    for name, text in fields.items():
        if name.startswith(ATTRIBUTE_PREFIX):
            values[name] = _attribute(text)
    return values


def _number(text: str, is_money: bool) -> object:
    try:
        number = Decimal(text)
    except InvalidOperation:
        return None
    if is_money:
        return int(number * 100)
    if number == number.to_integral_value() and "." not in text:
        return int(number)
    return float(number)


def _attribute(text: str) -> object:
    if text in ("true", "false"):
        return text == "true"
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError:
        return text
    return value if isinstance(value, int | float) and not isinstance(value, bool) else text

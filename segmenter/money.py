"""Exact money in integer minor units (SPEC section 2): parsing amounts and rendering 2-place decimals."""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation
from fractions import Fraction

_DECIMAL_STRING = re.compile(r"^[0-9]+(\.[0-9]+)?$", re.ASCII)
# Far above any real order, far below anything that strains Redis or JSON consumers.
MAX_AMOUNT_UNITS = 10**12


class AmountError(ValueError):
    """The amount is not a positive money value with at most 2 decimal places."""


def parse_amount_cents(raw: object) -> int:
    """Return the amount in cents; `raw` is a JSON number (int or Decimal) or a decimal string."""
    if isinstance(raw, bool):
        raise AmountError("amount must be a number or a decimal string, not a boolean")
    if isinstance(raw, int):
        value = Decimal(raw)
    elif isinstance(raw, Decimal):
        value = raw
    elif isinstance(raw, float):  # only reached when a caller decoded JSON without Decimal floats
        value = Decimal(repr(raw))
    elif isinstance(raw, str):
        if not _DECIMAL_STRING.match(raw):
            raise AmountError(f"amount {raw[:40]!r} is not a decimal string like '19.99'")
        value = Decimal(raw)
    else:
        raise AmountError("amount must be a number or a decimal string")
    if not value.is_finite():
        raise AmountError("amount must be finite")
    if value <= 0:
        raise AmountError("amount must be > 0")
    if value >= MAX_AMOUNT_UNITS:
        raise AmountError(f"amount must be < {MAX_AMOUNT_UNITS}")
    try:
        cents = value * 100
        if cents != cents.to_integral_value():
            raise AmountError("amount must have at most 2 decimal places")
    except InvalidOperation:
        raise AmountError("amount is not a valid number") from None
    return int(cents)


def format_cents(cents: int | Fraction) -> str:
    """Render minor units as a decimal string with exactly 2 places; fractions round half up (away from 0)."""
    if isinstance(cents, Fraction):
        if cents.denominator == 1:
            cents = cents.numerator
        else:
            sign = -1 if cents < 0 else 1
            magnitude = abs(cents)
            whole, remainder = divmod(magnitude.numerator, magnitude.denominator)
            if remainder * 2 >= magnitude.denominator:
                whole += 1
            cents = sign * whole
    prefix = "-" if cents < 0 else ""
    units, minor = divmod(abs(cents), 100)
    return f"{prefix}{units}.{minor:02d}"

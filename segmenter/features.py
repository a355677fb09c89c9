"""Features of a customer at an evaluation day (SPEC section 4), in exact units.

Counts and days are ints; money is in minor units (cents): `avg_order_value` is an exact Fraction.
`WindowSums` precomputes suffix sums once so that evaluating many days (time-driven scans) costs a bisect
per feature instead of a pass over the buckets.
"""

from __future__ import annotations

from bisect import bisect_left
from fractions import Fraction
from itertools import accumulate

from segmenter.customer import CustomerState
from segmenter.money import format_cents

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
MONEY_FEATURES = frozenset({"lifetime_monetary", "monetary", "avg_order_value"})

Features = dict[str, int | Fraction | None]


class WindowSums:
    """Suffix sums over a customer's buckets: window totals for any day >= its evaluation day."""

    __slots__ = ("_state", "_value_days", "_engagement_days", "_p_count", "_p_net", "_p_cents", "_i_count")

    def __init__(self, state: CustomerState, value_days: int, engagement_days: int) -> None:
        self._state = state
        self._value_days = value_days
        self._engagement_days = engagement_days
        self._p_count = _suffix(state.p_count)
        self._p_cents = _suffix(state.p_cents)
        self._p_net = _suffix([p - r for p, r in zip(state.p_cents, state.r_cents, strict=True)])
        self._i_count = _suffix(state.i_count)

    def at(self, day: int) -> Features:
        state = self._state
        w = bisect_left(state.p_days, day - self._value_days + 1)
        e = bisect_left(state.i_days, day - self._engagement_days + 1)
        frequency = self._p_count[w]
        purchase_cents = self._p_cents[w]
        first, last, interaction = (
            state.first_purchase_day,
            state.last_purchase_day,
            state.last_interaction_day,
        )
        return {
            "lifetime_purchases": state.lifetime_purchases,
            "lifetime_monetary": state.lifetime_cents,
            "frequency": frequency,
            "monetary": max(0, self._p_net[w]),
            "engagement": self._i_count[e],
            "recency_days": None if last is None else day - last,
            "tenure_days": None if first is None else day - first,
            "days_since_last_interaction": None if interaction is None else day - interaction,
            "avg_order_value": Fraction(purchase_cents, frequency) if frequency else None,
        }


def features_at(state: CustomerState, day: int, value_days: int, engagement_days: int) -> Features:
    return WindowSums(state, value_days, engagement_days).at(day)


def render_feature(name: str, value: int | Fraction | None) -> str | int | None:
    """JSON rendering: money as 2-place decimal strings, everything else as is."""
    if value is None:
        return None
    if name in MONEY_FEATURES:
        return format_cents(value)
    return value


def _suffix(values: list[int]) -> list[int]:
    """sums[i] = sum(values[i:]), with a trailing 0 so that an index past the end reads as empty."""
    total = sum(values)
    return [total - prefix for prefix in accumulate(values, initial=0)]

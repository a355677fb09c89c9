"""Features of a customer at an evaluation day (SPEC section 4), in exact units.

Counts and days are ints; money is in minor units (cents): `avg_order_value` is an exact ratio of cents
per order (`AvgOrderValue`, compared exactly, rounded half up only when rendered).

Two ways to get them: `current_features` at the day the buckets were pruned for (the common case after an
event: window totals are then plain sums of the retained buckets), and `WindowSums`, which precomputes
suffix sums once so that evaluating many later days (time-driven scans) costs a bisect per feature.
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


class AvgOrderValue:
    """Exact `cents / orders`, compared with int or Fraction thresholds by cross-multiplication (a Fraction
    would normalise with a gcd on every evaluation)."""

    __slots__ = ("cents", "orders")

    def __init__(self, cents: int, orders: int) -> None:
        self.cents = cents
        self.orders = orders

    def _cross(self, other: object) -> tuple[int, int]:
        if isinstance(other, AvgOrderValue):
            return self.cents * other.orders, other.cents * self.orders
        if isinstance(other, int | Fraction):
            return self.cents * other.denominator, other.numerator * self.orders
        raise TypeError(f"cannot compare avg_order_value with {type(other).__name__}")

    def __lt__(self, other: object) -> bool:
        a, b = self._cross(other)
        return a < b

    def __le__(self, other: object) -> bool:
        a, b = self._cross(other)
        return a <= b

    def __gt__(self, other: object) -> bool:
        a, b = self._cross(other)
        return a > b

    def __ge__(self, other: object) -> bool:
        a, b = self._cross(other)
        return a >= b

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, AvgOrderValue | int | Fraction):
            return NotImplemented
        a, b = self._cross(other)
        return a == b

    def __ne__(self, other: object) -> bool:
        return not self == other

    def __hash__(self) -> int:
        return hash(Fraction(self.cents, self.orders))

    def __repr__(self) -> str:
        return f"AvgOrderValue({self.cents}/{self.orders})"

    def as_fraction(self) -> Fraction:
        return Fraction(self.cents, self.orders)


# Feature name -> value; attributes under `attr.NAME` (strings, numbers, booleans).
Features = dict[str, int | float | str | bool | Fraction | AvgOrderValue | None]


def current_features(state: CustomerState, day: int) -> Features:
    """Features at `day` when the buckets were pruned for `day` and none is later (after `_apply` or at
    `as_of`): the window totals are the sums of every retained bucket."""
    frequency = sum(state.p_count)
    purchase_cents = sum(state.p_cents)
    first, last, interaction = state.first_purchase_day, state.last_purchase_day, state.last_interaction_day
    features: Features = {
        "lifetime_purchases": state.lifetime_purchases,
        "lifetime_monetary": state.lifetime_cents,
        "frequency": frequency,
        "monetary": max(0, purchase_cents - sum(state.r_cents)),
        "engagement": sum(state.i_count),
        "recency_days": None if last is None else day - last,
        "tenure_days": None if first is None else day - first,
        "days_since_last_interaction": None if interaction is None else day - interaction,
        "avg_order_value": AvgOrderValue(purchase_cents, frequency) if frequency else None,
    }
    if state.attributes:
        features.update(state.attribute_values())
    return features


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
        features: Features = {
            "lifetime_purchases": state.lifetime_purchases,
            "lifetime_monetary": state.lifetime_cents,
            "frequency": frequency,
            "monetary": max(0, self._p_net[w]),
            "engagement": self._i_count[e],
            "recency_days": None if last is None else day - last,
            "tenure_days": None if first is None else day - first,
            "days_since_last_interaction": None if interaction is None else day - interaction,
            "avg_order_value": AvgOrderValue(purchase_cents, frequency) if frequency else None,
        }
        if state.attributes:
            features.update(state.attribute_values())
        return features


def features_at(state: CustomerState, day: int, value_days: int, engagement_days: int) -> Features:
    return WindowSums(state, value_days, engagement_days).at(day)


def render_feature(
    name: str, value: object, money: frozenset[str] | set[str] = MONEY_FEATURES
) -> str | int | None:
    """JSON rendering: money (cents) as 2-place decimal strings, floats (predictive features) with 6
    places, counts and days as they are."""
    if value.__class__ is int and name not in money:  # the common case: counts and days
        return value
    if value is None:
        return None
    if isinstance(value, AvgOrderValue):  # purchase cents are never negative: round half up in integers
        whole, remainder = divmod(value.cents, value.orders)
        return format_cents(whole + 1 if remainder * 2 >= value.orders else whole)
    if name in money:
        assert isinstance(value, int | Fraction)
        return format_cents(value)
    if isinstance(value, float):
        return f"{value:.6f}"
    assert isinstance(value, int)
    return value


def _suffix(values: list[int]) -> list[int]:
    """sums[i] = sum(values[i:]), with a trailing 0 so that an index past the end reads as empty."""
    total = sum(values)
    return [total - prefix for prefix in accumulate(values, initial=0)]

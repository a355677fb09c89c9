"""Exact time-driven evaluation (SPEC section 6) without visiting every day.

Between events a customer's features move in only two ways: day-count features (`recency_days`,
`tenure_days`, `days_since_last_interaction`) grow by one a day, and window features drop when a bucket
leaves its window. The tiers depend only on the truth values of the rules' comparisons, so they can only
change on a day where some comparison flips:

- a day-count comparison flips where the feature crosses the comparison's number (known offsets from the
  base day);
- a window comparison can only flip on a day a bucket leaves the window; walking the buckets in expiry
  order with running totals finds the first expiry that flips one (most expiries flip nothing).

`first_candidate` is the earliest such day: the customer's timer. `advance` walks them up to a day and
evaluates the rules on each, which gives exactly the tiers of a day-by-day evaluation (a hypothesis test
checks this against a brute force).
"""

from __future__ import annotations

import math
from bisect import bisect_left, bisect_right
from collections.abc import Callable
from itertools import accumulate
from typing import Any

import msgspec

from segmenter.customer import CustomerState
from segmenter.derived import Derived
from segmenter.features import AvgOrderValue, Features, WindowSums
from segmenter.rules import RuleSet
from segmenter.rules.model import OPERATOR_FUNCTIONS, ORDERING_FUNCTIONS

_DAY_FEATURES = ("recency_days", "tenure_days", "days_since_last_interaction")
_VALUE_WINDOW_FEATURES = frozenset({"frequency", "monetary", "avg_order_value"})
_Check = tuple[str, Callable[[Any, Any], bool], Any]  # (feature, operator, threshold in value units)


class Change(msgspec.Struct, frozen=True):
    """Tiers at `day` differ from those of the day before."""

    day: int
    tiers: tuple[str, ...]
    features: Features


class Timeline:
    """Candidate days and change scans for one rule set."""

    def __init__(self, rules: RuleSet) -> None:
        self.rules = rules
        self.derived = Derived(rules)
        offsets: dict[str, set[int]] = {name: set() for name in _DAY_FEATURES}
        value_checks: dict[tuple[str, str, Any], _Check] = {}
        engagement_checks: dict[tuple[str, str, Any], _Check] = {}
        for comparison in rules.comparisons:
            feature = comparison.feature
            if feature in offsets:
                number = comparison.number
                # The truth of `x OP number` over integer x can only flip at these x.
                offsets[feature].update({math.ceil(number), math.floor(number) + 1})
                continue
            check = (feature, OPERATOR_FUNCTIONS[comparison.op], comparison.threshold)
            if feature in _VALUE_WINDOW_FEATURES:
                value_checks[(feature, comparison.op, comparison.threshold)] = check
            elif feature == "engagement":
                engagement_checks[(feature, comparison.op, comparison.threshold)] = check
        self._offsets = {name: sorted(values) for name, values in offsets.items() if values}
        self._value_checks = tuple(value_checks.values())
        self._engagement_checks = tuple(engagement_checks.values())
        # A bucket leaving a window matters only to rules that read a feature of that window.
        self._value_window = bool(self._value_checks)
        self._engagement_window = bool(self._engagement_checks)
        ordering = ORDERING_FUNCTIONS
        self._value_monotone = all(
            feature != "avg_order_value" and compare in ordering for feature, compare, _ in self._value_checks
        )
        self._engagement_monotone = all(compare in ordering for _, compare, _ in self._engagement_checks)

    def first_candidate(self, state: CustomerState, after: int) -> int | None:
        """The first day > `after` on which some comparison of the rules flips (None: never, without
        events). Valid when no bucket is later than `after` (the customer's buckets end at its `D_c`)."""
        best: int | None = None
        if self._value_window:
            best = self._value_flip(state, after)
        if self._engagement_window:
            day = self._engagement_flip(state, after)
            if day is not None and (best is None or day < best):
                best = day
        bases = {
            "recency_days": state.last_purchase_day,
            "tenure_days": state.first_purchase_day,
            "days_since_last_interaction": state.last_interaction_day,
        }
        for feature, offsets in self._offsets.items():
            base = bases[feature]
            if base is None:
                continue
            index = bisect_right(offsets, after - base)
            if index < len(offsets):
                day = base + offsets[index]
                if best is None or day < best:
                    best = day
        if self.derived.active:  # last: the built-in candidate bounds its walks
            day = self.derived.first_flip(state, after, best)
            if day is not None and (best is None or day < best):
                best = day
        return best

    def _value_flip(self, state: CustomerState, after: int) -> int | None:
        """First expiry of a purchase bucket after `after` that flips a value-window comparison."""
        window = self.rules.value_days
        days = state.p_days
        first = bisect_right(days, after - window)
        if first >= len(days):
            return None
        p_count, p_cents, r_cents = state.p_count, state.p_cents, state.r_cents
        refunds = sum(r_cents[first:])
        if self._value_monotone and not refunds:
            # Without refunds in the window, frequency and monetary only fall as buckets leave: each
            # ordering comparison flips at most once, found by bisection over the remaining totals.
            index = _first_flip(self._value_checks, {"frequency": p_count, "monetary": p_cents}, first)
            return None if index is None else days[first + index] + window
        checks = self._value_checks
        columns = (p_count, p_cents, r_cents)
        return _walk_flip(days, first, window, columns, lambda t: _value_truths(checks, t[0], t[1], t[2]))

    def _engagement_flip(self, state: CustomerState, after: int) -> int | None:
        """First expiry of an interaction bucket after `after` that flips an engagement comparison."""
        window = self.rules.engagement_days
        days = state.i_days
        first = bisect_right(days, after - window)
        if first >= len(days):
            return None
        counts = state.i_count
        checks = self._engagement_checks
        if self._engagement_monotone:
            index = _first_flip(checks, {"engagement": counts}, first)
            return None if index is None else days[first + index] + window
        return _walk_flip(
            days, first, window, (counts,), lambda t: tuple(c(t[0], threshold) for _, c, threshold in checks)
        )

    def advance(
        self, state: CustomerState, after: int, tiers: tuple[str | None, ...], until: int
    ) -> tuple[list[Change], int | None]:
        """The days in (`after`, `until`] whose tiers differ from the previous day's, in day order; and the
        first candidate day after `until` (the customer's next timer: the search for the next change ends
        on it, so it costs nothing more)."""
        sums = WindowSums(state, self.rules.value_days, self.rules.engagement_days)
        classify = self.rules.classify
        changes: list[Change] = []
        current = tiers
        day = after
        while True:
            found = self.first_candidate(state, day)
            if found is None or found > until:
                return changes, found
            day = found
            features = sums.at(day)
            if self.derived.active:
                features.update(self.derived.values(state, day))
            new = classify(features)
            if new != current:
                current = new
                changes.append(Change(day, new, features))


def _walk_flip(
    days: list[int],
    first: int,
    window: int,
    columns: tuple[list[int], ...],
    truths: Callable[[list[int]], tuple[bool, ...]],
) -> int | None:
    """The first expiry (day) after which `truths` of the remaining column totals differ from now: the
    general case (equality tests, `avg_order_value`, refunds), one step per bucket."""
    totals = [sum(column[first:]) for column in columns]
    current = truths(totals)
    for index in range(first, len(days)):
        for position, column in enumerate(columns):
            totals[position] -= column[index]
        if truths(totals) != current:
            return days[index] + window
    return None


def _first_flip(checks: tuple[_Check, ...], columns: dict[str, list[int]], first: int) -> int | None:
    """Index (from `first`) of the bucket whose expiry first flips one of `checks`, for ordering
    comparisons on totals that only fall as buckets expire (each flips at most once), else None.

    `columns[feature]`: the per-bucket amounts behind the feature's total. A check that holds the same on
    the whole window and on an empty one never flips; the others are found by bisection over prefix sums.
    """
    best: int | None = None
    prefixes: dict[str, list[int]] = {}
    totals: dict[str, int] = {}
    for feature, compare, threshold in checks:
        total = totals.get(feature)
        if total is None:
            total = totals[feature] = sum(columns[feature][first:])
        now = compare(total, threshold)
        if compare(0, threshold) == now:
            continue
        prefix = prefixes.get(feature)
        if prefix is None:
            prefix = prefixes[feature] = list(accumulate(columns[feature][first:], initial=0))
        # prefix[k]: amount expired with the first k buckets; the flip is the least k whose rest differs.
        k = bisect_left(
            range(1, len(prefix)), True, key=lambda i: compare(total - prefix[i], threshold) != now
        )
        if best is None or k < best:
            best = k
    return best


def _value_truths(checks: tuple[_Check, ...], count: int, cents: int, refunds: int) -> tuple[bool, ...]:
    values: dict[str, object] = {
        "frequency": count,
        "monetary": max(0, cents - refunds),
        "avg_order_value": AvgOrderValue(cents, count) if count else None,
    }
    truths = []
    for feature, compare, threshold in checks:
        value = values[feature]
        truths.append(value is not None and compare(value, threshold))
    return tuple(truths)
